import ArgumentParser
import Checkpoint
import Foundation

/// Flags shared by the commands that read one checkpoint and write another (`convert`, `rename`).
struct TransferOptions: ParsableArguments {
    @Option(help: "Output format: ckpt, pt, safetensors, or dcp (a PyTorch Distributed Checkpoint directory) (default: from OUT's extension).")
    var format: CheckpointFormat?

    @Flag(help: "Skip CRC-32 verification of the input's tensor data.")
    var noVerify = false

    @Flag(help: "Do not fsync the output (still atomic, not durable).")
    var noSync = false

    @OptionGroup var data: DataGlobalOptions

    @OptionGroup var limits: LimitOptions

    /// The format to write: `--format`, else the output's extension.
    func outputFormat(for output: String) -> CheckpointFormat? {
        format ?? CheckpointFormat(pathExtension: URL(fileURLWithPath: output).pathExtension)
    }

    /// A usage error unless the output format is known.
    func validate(output: String) throws {
        if format == .dcp, output == "-" {
            throw ValidationError("a DCP checkpoint is a directory: OUT cannot be '-' (standard output) with --format dcp")
        }
        guard outputFormat(for: output) == nil else { return }
        if output == "-" { throw ValidationError("OUT '-' (standard output) needs --format ckpt|pt|safetensors") }
        let ext = URL(fileURLWithPath: output).pathExtension
        throw ValidationError(
            "cannot tell the output format from \(ext.isEmpty ? "a name without extension" : "the extension .\(ext)"); "
                + "pass --format ckpt|pt|safetensors|dcp or use .ckpt, .pt, .pth or .safetensors")
    }

    /// Loads the input (`-` is standard input), verifying CRCs unless `--no-verify`, reading the data
    /// globals `--allow-data-globals` allows as values.
    func load(_ input: String) throws -> StateValue {
        try StateValue(
            contentsOf: InputPath.url(input), options: LoadOptions(verifyChecksums: !noVerify, allowDataGlobals: data.dataGlobals, limits: limits.limits))
    }

    /// Saves atomically (durably unless `--no-sync`) in the output format; `-` is standard output.
    ///
    /// safetensors to safetensors keeps the input's `__metadata__` pairs (Hugging Face's
    /// `{"format": "pt"}`), which the tree itself does not carry.
    /// `keepObjects` writes Python-object placeholders back as read (`convert --keep-objects`), and
    /// the data values `--allow-data-globals` read are written back as read.
    /// A progress bar labelled `label` follows the tensor bytes written (on a terminal only).
    ///
    /// A DCP output (`--format dcp`) is a directory of `ranks` data files; `maximumShardSize` writes a
    /// Hugging Face sharded checkpoint into the directory OUT instead (safetensors unless `--format pt`).
    func save(
        _ tree: StateValue, from input: String, to output: String, keepObjects: Bool = false, label: String,
        ranks: Int = 1, maximumShardSize: Int? = nil
    ) throws {
        if let maximumShardSize {
            try ShardedCheckpoint.write(
                tree, to: URL(fileURLWithPath: output), format: format ?? .safetensors, maximumShardSize: maximumShardSize,
                options: SaveOptions(durable: !noSync))
            return
        }
        guard let outputFormat = outputFormat(for: output) else { throw ValidationError("no output format") }
        if outputFormat == .dcp {
            try DistributedCheckpoint.write(
                tree, to: URL(fileURLWithPath: output), ranks: ranks, options: SaveOptions(durable: !noSync, keepObjects: keepObjects))
            return
        }
        let output = OutputPath.resolve(output)
        let bar = ProgressBar(label: label)
        defer { bar.finish() }
        let options = SaveOptions(durable: !noSync, keepObjects: keepObjects, allowDataGlobals: data.dataGlobals) { done, total in
            bar.update(done: done, total: total)
        }
        if outputFormat == .safetensors, let metadata = try? Safetensors.metadata(contentsOf: InputPath.url(input)), !metadata.isEmpty {
            try Safetensors.write(tree, to: URL(fileURLWithPath: output), metadata: metadata, options: options)
        } else {
            try tree.write(to: URL(fileURLWithPath: output), format: outputFormat, options: options)
        }
    }
}
