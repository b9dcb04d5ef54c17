import ArgumentParser
import Catalog
import Checkpoint
import Foundation

/// `ckpt-tool reconcile DIR [--rebuild] [--verify] [--json]`: makes the catalog match the files.
struct Reconcile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Make a run directory's catalog match its checkpoint files, and report every repair.",
        discussion: """
            Settles what a process that died left behind (saves that did not commit, deletions that did \
            not finish, temporary files), removes rows whose file is gone, marks rows whose file is not \
            the recorded one corrupt, and records checkpoint files the catalog lacks, from their metadata. \
            A catalog that is not SQLite, is damaged or is another application's database is moved aside \
            (catalog.sqlite.broken-<ms>) and rebuilt from the files; --rebuild does so for any catalog, \
            losing metrics recorded only in the catalog. Creates the catalog when there is none (the \
            directory must exist). Stop every process using the directory before --rebuild. Exit \
            status: 0, or 1 when the catalog cannot be opened or repaired. The --json schema is in docs/CLI.md.
            """
    )

    @OptionGroup var location: RunDirectoryArgument

    @Flag(help: "Move the catalog aside and rebuild it from the checkpoint files.")
    var rebuild = false

    @Flag(help: "Also verify every committed checkpoint's CRC-32s (reads all the data).")
    var verify = false

    @Flag(help: "Print JSON (schema ckpt-tool/reconcile, version 1) instead of text.")
    var json = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        let report = try CheckpointManager.reconcile(directory: location.existingURL(), rebuild: rebuild, verify: verify)
        if json {
            Terminal.standardOutput.write(try JSONOutput.render(ReconcileDocument(self, report), style: .indented))
            return
        }
        let style = output.style
        // A repair a line: a detail's own continuation lines (an error's cause) joined to it.
        Terminal.standardOutput.write(
            report.description.replacingOccurrences(of: "\n  ", with: "; ") + "\n\n" + style.key("totals: ")
                + Plural.count(report.repairs.count, "repair") + ", "
                + Plural.count(report.filesChecked, "checkpoint file") + " checked\n")
    }
}

/// The `--json` document of `ckpt-tool reconcile` (schema `ckpt-tool/reconcile`, version 1; see docs/CLI.md).
struct ReconcileDocument: Encodable {
    /// One repair.
    struct Repair: Encodable {
        let kind: String
        @Nullable var run: String?
        @Nullable var step: Int?
        let path: String
        @Nullable var detail: String?
    }

    /// A checkpoint a live process is still writing or deleting, left alone.
    struct InProgress: Encodable {
        let run: String
        let step: Int
        let path: String
        let status: String
    }

    let schema = "ckpt-tool/reconcile"
    let schemaVersion = 1
    let directory: String
    let rebuild: Bool
    let verify: Bool
    let filesChecked: Int
    let repairs: [Repair]
    let inProgress: [InProgress]
    let unrecognized: [String]

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", directory, rebuild, verify, filesChecked = "files_checked", repairs
        case inProgress = "in_progress", unrecognized
    }

    init(_ command: Reconcile, _ report: ReconcileReport) {
        directory = command.location.directory
        rebuild = command.rebuild
        verify = command.verify
        filesChecked = report.filesChecked
        repairs = report.repairs.map { Repair(kind: $0.kind.rawValue, run: $0.run, step: $0.step, path: $0.path, detail: $0.detail) }
        inProgress = report.inProgress.map { InProgress(run: $0.run, step: $0.step, path: $0.relativePath, status: $0.status.rawValue) }
        unrecognized = report.unrecognized
    }
}
