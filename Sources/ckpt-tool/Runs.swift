import ArgumentParser
import Catalog
import CheckpointTools
import Foundation

/// `ckpt-tool runs DIR [--json]`: the runs a run directory's catalog records.
struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List the runs in a run directory's catalog: checkpoints by status, latest step, committed size.",
        discussion: """
            Reads the catalog (catalog.sqlite) only; nothing is created or changed. Exit status: 0, or 1 when \
            the directory or its catalog cannot be read (missing, not a catalog, damaged). The --json \
            schema is in docs/CLI.md.
            """
    )

    @OptionGroup var location: RunDirectoryArgument

    @Flag(help: "Print JSON (schema ckpt-tool/runs, version 1) instead of a table.")
    var json = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        let runs = try CheckpointManager.runs(in: location.existingURL())
        if json {
            Terminal.standardOutput.write(try JSONOutput.render(RunsDocument(runs, directory: location.directory), style: .indented))
            return
        }
        guard !runs.isEmpty else {
            Terminal.standardOutput.write("no runs recorded in \(location.directory)\n")
            return
        }
        var table = TextTable(
            header: ["run", "created", "committed", "writing", "deleting", "corrupt", "latest step", "committed size"],
            alignments: [.left, .left, .right, .right, .right, .right, .right, .right])
        for run in runs {
            table.rows.append(
                [run.name, Timestamp.local(run.created)] + CheckpointStatus.ordered.map { String(run.counts[$0] ?? 0) }
                    + [run.latestStep.map(String.init) ?? "-", ByteCount.text(run.committedBytes, exact: false)])
        }
        let style = output.style
        Terminal.standardOutput.write(table.render { row, column, _, padded in
            row == nil || column == 0 ? style.key(padded) : padded
        })
    }
}

extension CheckpointStatus {
    /// The statuses in the order of a checkpoint's life, as the tables and documents list them.
    static let ordered: [CheckpointStatus] = [.committed, .writing, .deleting, .corrupt]
}

/// The `--json` document of `ckpt-tool runs` (schema `ckpt-tool/runs`, version 1; see docs/CLI.md).
struct RunsDocument: Encodable {
    /// One run.
    struct Run: Encodable {
        let name: String
        let created: String
        let counts: [String: Int]
        @Nullable var latestStep: Int?
        let committedBytes: Int

        enum CodingKeys: String, CodingKey {
            case name, created, counts, latestStep = "latest_step", committedBytes = "committed_bytes"
        }
    }

    let schema = "ckpt-tool/runs"
    let schemaVersion = 1
    let directory: String
    let runs: [Run]

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", directory, runs
    }

    init(_ runs: [RunInfo], directory: String) {
        self.directory = directory
        self.runs = runs.map { run in
            Run(
                name: run.name, created: Timestamp.iso8601(run.created),
                counts: Dictionary(uniqueKeysWithValues: CheckpointStatus.ordered.map { ($0.rawValue, run.counts[$0] ?? 0) }),
                latestStep: run.latestStep, committedBytes: run.committedBytes)
        }
    }
}
