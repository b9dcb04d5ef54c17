import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool convert IN OUT [--format ckpt|pt|safetensors|dcp] [--ranks N] [--max-shard-size SIZE]
/// [--dtype bf16|f16|f32|f64] [--select GLOB] [--strip-prefix P] [--add-prefix P]`.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a checkpoint between .ckpt, .pt, .safetensors, DCP directories and Hugging Face shards.",
        discussion: """
            The input format is detected from its contents; the output format comes from --format or else \
            from OUT's extension (.ckpt, .pt/.pth/.bin, .safetensors). IN may be a directory: a PyTorch \
            Distributed Checkpoint (.metadata and __<rank>_<n>.distcp files) or a Hugging Face sharded \
            checkpoint (its *.index.json, or the directory holding it), read as one tree. \
            --format dcp writes OUT as a DCP directory that torch.distributed.checkpoint.load reads, with \
            --ranks N data files (each tensor of two or more rows split along its first dimension; \
            converting a DCP checkpoint to another --ranks reshards it). --max-shard-size SIZE writes OUT as a \
            directory of Hugging Face shards split by huggingface_hub's rule (model-00001-of-00003.safetensors \
            and model.safetensors.index.json, or pytorch_model-*.bin with --format pt). \
            The output is replaced atomically; \
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

    @Option(help: ArgumentHelp(
        "With --format dcp: write this many ranks' data files, each tensor of two or more rows split along its first dimension as torch.chunk splits it (default 1).",
        valueName: "n"))
    var ranks: Int?

    @Option(help: ArgumentHelp(
        "Write OUT as a directory of Hugging Face shards of at most this size (5GB, 500MB, 1.5KB: decimal units, as huggingface_hub; or bytes), safetensors unless --format pt.",
        valueName: "size"))
    var maxShardSize: String?

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
        if let ranks {
            guard transfer.format == .dcp else { throw ValidationError("--ranks needs --format dcp") }
            guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1") }
        }
        if let maxShardSize {
            do {
                _ = try ShardedCheckpoint.parseSize(maxShardSize)
            } catch let error as CheckpointError {
                throw ValidationError("--max-shard-size '\(maxShardSize)': \(error.message) (expected \(error.expected ?? "a size"))")
            }
            guard transfer.format == nil || transfer.format == .safetensors || transfer.format == .pt else {
                throw ValidationError("--max-shard-size writes safetensors or pt shards, not \(transfer.format!.rawValue)")
            }
            guard output != "-" else { throw ValidationError("--max-shard-size writes a directory: OUT cannot be '-' (standard output)") }
            return
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
        let shardSize = try maxShardSize.map(ShardedCheckpoint.parseSize)
        try transfer.save(
            tree, from: input, to: output, keepObjects: keepObjects, label: "convert", ranks: ranks ?? 1, maximumShardSize: shardSize)
        let summary = TreeSummary(tree)
        let style = outputOptions.style
        var layout = (shardSize != nil ? transfer.format ?? .safetensors : transfer.outputFormat(for: output))?.rawValue ?? "?"
        if transfer.outputFormat(for: output) == .dcp, shardSize == nil { layout += ", \(Plural.count(ranks ?? 1, "rank"))" }
        if shardSize != nil, let checkpoint = try? ShardedCheckpoint(contentsOf: URL(fileURLWithPath: output)) {
            layout += ", \(Plural.count(checkpoint.files.count, "shard"))"
        } else if shardSize != nil {
            layout += ", 1 shard"
        }
        report.write(
            "\(input) → \(style.key(output)) (\(layout), \(Plural.count(summary.tensorCount, "tensor")), "
                + "\(ByteCount.text(summary.tensorBytes)))\n")
    }
}
