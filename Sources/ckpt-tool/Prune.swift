import ArgumentParser
import Catalog
import CheckpointTools
import Foundation

/// `ckpt-tool prune DIR --keep-last N [--keep-best K --metric M --mode min|max] [--keep-every M]
/// [--run NAME] [--dry-run] [--json]`: applies a retention policy.
struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete the committed checkpoints a retention policy does not keep.",
        discussion: """
            Keeps the union of the newest N (--keep-last), the K best by a metric (--keep-best with \
            --metric and --mode; checkpoints without the metric are kept too), and every step that is a \
            multiple of M (--keep-every); deletes the other committed checkpoints, files and catalog rows. \
            Checkpoints being written, deleted or found corrupt are neither kept nor deleted. Each run is \
            pruned on its own (all runs, or --run). Prints each checkpoint with what happens to it and \
            the rules that keep it; --dry-run changes nothing. Exit status: 0, 1 when the catalog \
            cannot be read or a file cannot be deleted, 64 for a policy that is not valid. The --json \
            schema is in docs/CLI.md.
            """
    )

    @OptionGroup var location: RunDirectoryArgument

    @Option(help: ArgumentHelp("Keep the N newest checkpoints (by step).", valueName: "n"))
    var keepLast: Int?

    @Option(help: ArgumentHelp("Keep the K best checkpoints by --metric.", valueName: "k"))
    var keepBest: Int?

    @Option(help: "The metric --keep-best ranks by.")
    var metric: String?

    @Option(help: "With --keep-best: whether smaller (min, the default) or larger (max) values are better.")
    var mode: MetricMode?

    @Option(help: ArgumentHelp("Keep every checkpoint whose step is a multiple of M.", valueName: "m"))
    var keepEvery: Int?

    @Option(name: .customLong("run"), help: "Only this run (default: every run).")
    var runName: String?

    @Flag(help: "Print what would be kept and deleted, and delete nothing.")
    var dryRun = false

    @Flag(help: "Print JSON (schema ckpt-tool/prune, version 1) instead of a table.")
    var json = false

    @OptionGroup var output: OutputOptions

    var policy: RetentionPolicy {
        RetentionPolicy(keepLast: keepLast, keepBest: keepBest, metric: metric, mode: mode ?? .min, keepEvery: keepEvery)
    }

    func validate() throws {
        guard keepLast != nil || keepBest != nil || keepEvery != nil else {
            throw ValidationError("give at least one of --keep-last, --keep-best, --keep-every")
        }
        for (option, value) in [("--keep-last", keepLast), ("--keep-best", keepBest), ("--keep-every", keepEvery)] {
            if let value, value < 1 { throw ValidationError("\(option) must be at least 1") }
        }
        if keepBest != nil, metric == nil { throw ValidationError("--keep-best needs --metric") }
        if keepBest == nil, metric != nil || mode != nil { throw ValidationError("--metric and --mode are used only with --keep-best") }
    }

    func run() throws {
        var reports: [(run: String, report: PruneReport)] = []
        for run in try location.runs(named: runName) {
            let manager = try location.open(run: run)
            defer { try? manager.close() }
            reports.append((run, try manager.prune(policy: policy, dryRun: dryRun)))
        }
        if json {
            Terminal.standardOutput.write(try JSONOutput.render(PruneDocument(self, reports), style: .indented))
        } else {
            Terminal.standardOutput.write(table(reports))
        }
    }

    private func table(_ reports: [(run: String, report: PruneReport)]) -> String {
        let showRun = reports.count > 1
        var header = ["action", "step", "size"] + (metric.map { [$0] } ?? []) + ["path", "kept by"]
        var alignments: [TextTable.Alignment] = [.left, .right, .right] + (metric == nil ? [] : [.right]) + [.left, .left]
        if showRun {
            header.insert("run", at: 0)
            alignments.insert(.left, at: 0)
        }
        var table = TextTable(header: header, alignments: alignments)
        var deleted = 0, deletedBytes = 0, kept = 0
        for (run, report) in reports {
            let rows = report.plan.kept.map { ($0.entry, $0.reasons.description) } + report.plan.deleted.map { ($0, "") }
            for (entry, reasons) in rows.sorted(by: { $0.0.step > $1.0.step }) {
                var cells: [String] = showRun ? [run] : []
                cells += [reasons.isEmpty ? "delete" : "keep", String(entry.step), entry.bytes.map { ByteCount.text($0, exact: false) } ?? "-"]
                if let metric { cells.append(StatsRow.text(entry.metrics[metric])) }
                table.rows.append(cells + [entry.relativePath, reasons])
            }
            kept += report.plan.kept.count
            deleted += report.plan.deleted.count
            deletedBytes += report.plan.deleted.reduce(0) { $0 + ($1.bytes ?? 0) }
        }
        let style = output.style
        let actionColumn = showRun ? 1 : 0
        var text = table.rows.isEmpty ? "no committed checkpoints in \(location.directory)\n" : table.render { row, column, cell, padded in
            if row == nil { return style.key(padded) }
            guard column == actionColumn else { return padded }
            return cell == "keep" ? style.good(padded) : style.bad(padded)
        }
        let size = ByteCount.text(deletedBytes, exact: false)
        text += "\n" + style.key("totals: ") + "\(kept) kept, " + (dryRun
            ? "\(deleted) to delete (\(size)); dry run: nothing was deleted\n"
            : "\(deleted) deleted (\(size))\n")
        return text
    }
}

/// The `--json` document of `ckpt-tool prune` (schema `ckpt-tool/prune`, version 1; see docs/CLI.md).
struct PruneDocument: Encodable {
    /// The retention policy applied.
    struct Policy: Encodable {
        @Nullable var keepLast: Int?
        @Nullable var keepBest: Int?
        @Nullable var metric: String?
        let mode: String
        @Nullable var keepEvery: Int?

        enum CodingKeys: String, CodingKey {
            case keepLast = "keep_last", keepBest = "keep_best", metric, mode, keepEvery = "keep_every"
        }
    }

    /// One checkpoint kept or deleted.
    struct Item: Encodable {
        let step: Int
        let path: String
        @Nullable var bytes: Int?
        /// The rules that keep it; nil (left out) for one deleted.
        let reasons: [String]?
    }

    /// What happened in one run.
    struct Run: Encodable {
        let run: String
        let kept: [Item]
        let deleted: [Item]
        let deletedBytes: Int

        enum CodingKeys: String, CodingKey {
            case run, kept, deleted, deletedBytes = "deleted_bytes"
        }
    }

    let schema = "ckpt-tool/prune"
    let schemaVersion = 1
    let directory: String
    let dryRun: Bool
    let policy: Policy
    let runs: [Run]

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", directory, dryRun = "dry_run", policy, runs
    }

    init(_ command: Prune, _ reports: [(run: String, report: PruneReport)]) {
        directory = command.location.directory
        dryRun = command.dryRun
        let policy = command.policy
        self.policy = Policy(
            keepLast: policy.keepLast, keepBest: policy.keepBest, metric: policy.metric, mode: policy.mode.rawValue, keepEvery: policy.keepEvery)
        runs = reports.map { run, report in
            Run(
                run: run,
                kept: report.plan.kept.map {
                    Item(step: $0.entry.step, path: $0.entry.relativePath, bytes: $0.entry.bytes, reasons: $0.reasons.description.split(separator: ",").map(String.init))
                },
                deleted: report.plan.deleted.map { Item(step: $0.step, path: $0.relativePath, bytes: $0.bytes, reasons: nil) },
                deletedBytes: report.plan.deleted.reduce(0) { $0 + ($1.bytes ?? 0) })
        }
    }
}
