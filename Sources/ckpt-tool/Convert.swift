import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool convert IN OUT [--format ckpt|pt|safetensors] [--dtype bf16|f16|f32|f64] [--only GLOB]`.
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
            --only keeps the values whose key path matches GLOB (and the containers leading to them). \
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

    @Option(help: "Keep only values whose key path matches this pattern (* and ? within a key, ** across keys).")
    var only: String?

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
        if let only {
            guard let kept = tree.filtered(by: KeyGlob(only)) else {
                throw CheckpointError(.invalidArgument, "no key path matches --only", file: input, found: only)
            }
            tree = kept
        }
        if let targetDType {
            tree = try tree.castingTensors(to: targetDType, where: \.isFloatingPoint)
        }
        let report = OutputPath.reportStream(for: output)
        try transfer.save(tree, from: input, to: output, keepObjects: keepObjects)
        let summary = TreeSummary(tree)
        let style = outputOptions.style
        report.write(
            "\(input) → \(style.key(output)) (\(transfer.outputFormat(for: output)?.rawValue ?? "?"), \(Plural.count(summary.tensorCount, "tensor")), "
                + "\(TreeSummary.formatBytes(summary.tensorBytes)))\n")
    }
}
