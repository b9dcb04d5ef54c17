import ArgumentParser
import Checkpoint
import Foundation
import Optim

/// `ckpt-tool rename IN OUT --map map.json [--dry-run] [--json]`.
struct Rename: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rename",
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

    @OptionGroup var transfer: TransferOptions

    @OptionGroup var outputOptions: OutputOptions

    func validate() throws {
        try transfer.validate(output: output)
    }

    func run() throws {
        let renameMap = try RenameMap(contentsOf: URL(fileURLWithPath: map))
        let tree = try transfer.load(input)
        let report = dryRun ? Terminal.standardOutput : OutputPath.reportStream(for: output)
        let renamed = try renameMap.renameCheckpoint(tree)
        if !dryRun {
            try transfer.save(renamed.value, from: input, to: output, label: "rename")
        }
        if json {
            let document = RenameDocument(renamed, input: input, output: output, written: !dryRun)
            report.write(try JSONOutput.render(document, style: .singleLine))
        } else {
            report.write(reportText(renamed))
        }
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
            : "\(input) → \(style.key(output)) (\(transfer.outputFormat(for: output)?.rawValue ?? ""))\n"
        return text
    }
}
