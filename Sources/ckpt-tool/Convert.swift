import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool convert IN OUT [--format ckpt|pt|safetensors] [--dtype bf16|f16|f32|f64] [--select GLOB]
/// [--strip-prefix P] [--add-prefix P]`.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a checkpoint between .ckpt, .pt and .safetensors.",
        discussion: """
            The input format is detected from its contents; the output format comes from --format or else \
            from OUT's extension (.ckpt, .pt/.pth/.bin, .safetensors). The output is replaced atomically; \
            a symlink there is followed and kept, a device or FIFO is written to, and OUT '-' is standard \
            output (then the summary goes to stderr). \
            safetensors cannot share storage, so tied tensors become copies there; trees that are not a \
            flat dict of tensors keep their structure in the file's __metadata__. From safetensors to \
            safetensors, the input's __metadata__ string pairs are kept. \
            IN '-' reads standard input. \
            --select keeps the values whose key path matches GLOB (and the containers leading to them). \
            Then --strip-prefix takes a prefix off keys, as torch's consume_prefix_in_state_dict_if_present \
            does: 'model.' renames the root's keys 'model.x' to 'x' (others stay), 'model/' puts the dict at \
            'model' in its place (alone, it becomes the root), and earlier parts go into dicts first \
            ('state_dict/model.'). --add-prefix does the inverse ('model.' prefixes every root key, 'model/' \
            wraps the tree in a dict under 'model'). So `convert lightning.ckpt model.safetensors --select \
            state_dict --strip-prefix state_dict/ --strip-prefix model.` gives the keys model.load_state_dict \
            expects. \
            --dtype casts floating-point tensors (float8 included) as tensor.to(dtype) does; integer, \
            bool and complex tensors are left as they are, and tied tensors stay tied. \
            A Python object outside torch's weights-only allow-list is read as a placeholder and refused on \
            write unless --keep-objects, which writes it back as read to .pt or .ckpt (safetensors cannot hold one).
            """
    )

    @Argument(help: "The checkpoint to read.")
    var input: String

    @Argument(help: "The file to write.")
    var output: String

    @Option(help: "Cast floating-point tensors to bf16, f16, f32 or f64 (or a torch name: bfloat16, float16, ...).")
    var dtype: String?

    @OptionGroup var selection: SelectionOptions

    @Option(help: ArgumentHelp("Take this prefix off keys ('model.' or 'model/'; repeatable, applied in order after --select).", valueName: "prefix"))
    var stripPrefix: [String] = []

    @Option(help: ArgumentHelp("Put this prefix in front of keys ('model.' or 'model/'; repeatable, applied after --strip-prefix).", valueName: "prefix"))
    var addPrefix: [String] = []

    @Flag(help: "Write Python objects (argparse.Namespace, numpy values, ...) back as read; torch then needs weights_only=False.")
    var keepObjects = false

    @OptionGroup var transfer: TransferOptions

    @OptionGroup var outputOptions: OutputOptions

    /// The dtype `--dtype` names: the short names, or any floating torch name.
    var targetDType: DType? {
        guard let dtype else { return nil }
        let short: [String: DType] = ["bf16": .bfloat16, "f16": .float16, "f32": .float32, "f64": .float64]
        if let match = short[dtype.lowercased()] { return match }
        return DType(torchName: dtype).flatMap { $0.isFloatingPoint ? $0 : nil }
    }

    func validate() throws {
        if let dtype, targetDType == nil {
            throw ValidationError("--dtype '\(dtype)' is not a floating-point dtype (expected bf16, f16, f32, f64 or a torch name)")
        }
        try transfer.validate(output: output)
    }

    func run() throws {
        var tree = try transfer.load(input)
        if let glob = selection.glob {
            guard let kept = tree.filtered(by: glob) else { throw selection.noMatch(in: InputPath.display(input), tree: tree) }
            tree = kept
        }
        do {
            for prefix in stripPrefix { tree = try tree.strippingPrefix(prefix) }
            for prefix in addPrefix { tree = try tree.addingPrefix(prefix) }
        } catch var error as CheckpointError {
            error.file = InputPath.display(input)
            throw error
        }
        if let targetDType {
            tree = try tree.castingTensors(to: targetDType, where: \.isFloatingPoint)
        }
        let report = OutputPath.reportStream(for: output)
        try transfer.save(tree, from: input, to: output, keepObjects: keepObjects, label: "convert")
        let summary = TreeSummary(tree)
        let style = outputOptions.style
        report.write(
            "\(input) → \(style.key(output)) (\(transfer.outputFormat(for: output)?.rawValue ?? "?"), \(Plural.count(summary.tensorCount, "tensor")), "
                + "\(TreeSummary.formatBytes(summary.tensorBytes)))\n")
    }
}
