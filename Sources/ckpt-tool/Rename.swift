import ArgumentParser
import Checkpoint
import Foundation
import Optim

/// `ckpt-tool rename IN OUT --map map.json [--dry-run] [--json]`.
struct Rename: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rename a checkpoint's model keys and optimizer param_names with a rename map.",
        discussion: """
            The map is a JSON file of rules tried in order, the first match winning: \
            {"rules": [{"exact": "fc.weight", "to": "head.weight"}, {"prefix": "encoder.", "to": "model.encoder."}, \
            {"regex": "layers\\\\.(\\\\d+)\\\\.attn", "to": "blocks.$1.attention"}, {"drop": "aux\\\\..*"}]} \
            (see docs/RENAME.md). The model state dict (under "model" or "model_state_dict", or the whole \
            file) has its keys and _metadata renamed; the optimizer state dict (under "optimizer" or \
            "optimizer_state_dict", or the whole file) has its param_names renamed, dropped names removed \
            with their state. The report lists what changed; --dry-run writes nothing. The input format is \
            detected from its contents; the output format comes from --format or OUT's extension.
            """
    )

    @Argument(help: "The checkpoint to read.")
    var input: String

    @Argument(help: "The file to write (not written with --dry-run).")
    var output: String

    @Option(help: "The rename map (JSON).")
    var map: String

    @Flag(help: "Print the report without writing OUT.")
    var dryRun = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "Output format: ckpt, pt or safetensors (default: from OUT's extension).")
    var format: CheckpointFormat?

    @Flag(help: "Skip CRC-32 verification of the input's tensor data.")
    var noVerify = false

    @Flag(help: "Do not fsync the output (still atomic, not durable).")
    var noSync = false

    @OptionGroup var outputOptions: OutputOptions

    var outputFormat: CheckpointFormat? {
        format ?? CheckpointFormat(pathExtension: URL(fileURLWithPath: output).pathExtension)
    }

    func validate() throws {
        guard outputFormat != nil else {
            let ext = URL(fileURLWithPath: output).pathExtension
            throw ValidationError(
                "cannot tell the output format from \(ext.isEmpty ? "a name without extension" : "the extension .\(ext)"); "
                    + "pass --format ckpt|pt|safetensors or use .ckpt, .pt, .pth or .safetensors")
        }
    }

    func run() throws {
        guard let outputFormat else { throw ValidationError("no output format") }
        let renameMap = try RenameMap(contentsOf: URL(fileURLWithPath: map))
        let tree = try Checkpoint.load(
            contentsOf: URL(fileURLWithPath: input), options: LoadOptions(verifyChecksums: !noVerify))
        let renamed = try renameMap.renameCheckpoint(tree)
        if !dryRun {
            if outputFormat == .safetensors, let metadata = try? Safetensors.metadata(path: input), !metadata.isEmpty {
                try Safetensors.write(renamed.value, to: output, sync: !noSync, metadata: metadata)
            } else {
                try Checkpoint.save(
                    renamed.value, to: URL(fileURLWithPath: output), format: outputFormat,
                    options: SaveOptions(durable: !noSync))
            }
        }
        if json {
            Terminal.standardOutput.write(reportJSON(renamed) + "\n")
        } else {
            Terminal.standardOutput.write(reportText(renamed))
        }
    }

    private func reportJSON(_ renamed: RenamedStateDict) -> String {
        func quoted(_ text: String) -> String {
            let data =
                (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes]))
                ?? Data("[\"\"]".utf8)
            return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
        }
        return "{\"input\": \(quoted(input)), \"output\": \(quoted(output)), \"written\": \(!dryRun), "
            + "\"model\": \(renamed.model?.json ?? "null"), \"optimizer\": \(renamed.optimizer?.json ?? "null")}"
    }

    private func reportText(_ renamed: RenamedStateDict) -> String {
        let style = outputOptions.style
        var text = ""
        for (label, report) in [("model keys", renamed.model), ("optimizer param_names", renamed.optimizer)] {
            guard let report else { continue }
            text += style.key(label) + "\n"
            text +=
                report.text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(
                    separator: "\n") + "\n"
        }
        text +=
            dryRun
            ? style.dim("dry run: \(output) not written") + "\n"
            : "\(input) → \(style.key(output)) (\(outputFormat?.rawValue ?? ""))\n"
        return text
    }
}
