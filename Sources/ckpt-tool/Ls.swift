import ArgumentParser
import Catalog
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool ls DIR [--run NAME] [--json]`: every checkpoint a run directory's catalog records.
struct Ls: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List the checkpoints in a run directory's catalog: step, status, size, created, metrics, path.",
        discussion: """
            Every checkpoint the catalog records, whatever its status (committed, writing, deleting, \
            corrupt), by run and step. Reads the catalog (catalog.sqlite) only: no checkpoint file is \
            opened (`latest` verifies one, `reconcile` checks them all) and nothing is created or changed. \
            Exit status: 0, or 1 when the directory or its catalog cannot be read, or --run names a run \
            the catalog does not record. The --json schema is in docs/CLI.md.
            """
    )

    @OptionGroup var location: RunDirectoryArgument

    @Option(name: .customLong("run"), help: "Only this run (default: every run).")
    var runName: String?

    @Flag(help: "Print JSON (schema ckpt-tool/ls, version 1) instead of a table.")
    var json = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        let entries = try CheckpointManager.entries(in: location.existingURL(), run: runName)
        // A run with no checkpoints and a run the catalog does not record look alike until asked.
        if entries.isEmpty, let runName { _ = try location.runs(named: runName) }
        if json {
            LsDocument.write(entries, directory: location.directory, run: runName)
        } else {
            Terminal.standardOutput.write(table(entries, showRun: entries.contains { $0.run != entries[0].run }))
        }
        // Done (stdout is unbuffered): the process ends here rather than after freeing every
        // entry one by one, a tenth of `ls --json` on 10,000 checkpoints.
        Foundation.exit(0)
    }

    private func table(_ entries: [CheckpointEntry], showRun: Bool) -> String {
        guard !entries.isEmpty else { return "no checkpoints recorded in \(location.directory)\(runName.map { " for run \($0)" } ?? "")\n" }
        var header = ["step", "status", "size", "created", "metrics", "path"]
        var alignments: [TextTable.Alignment] = [.right, .left, .right, .left, .left, .left]
        if showRun {
            header.insert("run", at: 0)
            alignments.insert(.left, at: 0)
        }
        var table = TextTable(header: header, alignments: alignments)
        for entry in entries {
            let metrics = entry.metrics.sorted { $0.key < $1.key }.map { "\($0.key)=\(StatsRow.text($0.value))" }.joined(separator: " ")
            let size = entry.bytes.map { ByteCount.text($0, exact: false) } ?? "-"
            let cells = [String(entry.step), entry.status.rawValue, size, Timestamp.local(entry.created), metrics.isEmpty ? "-" : metrics, entry.relativePath]
            table.rows.append(showRun ? [entry.run] + cells : cells)
        }
        let style = output.style
        let statusColumn = showRun ? 2 : 1
        var text = table.render { row, column, cell, padded in
            if row == nil { return style.key(padded) }
            guard column == statusColumn else { return padded }
            switch cell {
            case CheckpointStatus.committed.rawValue: return style.good(padded)
            case CheckpointStatus.corrupt.rawValue: return style.bad(padded)
            default: return style.value(padded)
            }
        }
        let counts = CheckpointStatus.ordered.compactMap { status -> String? in
            let count = entries.count(where: { $0.status == status })
            return count == 0 ? nil : "\(count) \(status)"
        }
        let committedBytes = entries.filter { $0.status == .committed }.reduce(0) { $0 + ($1.bytes ?? 0) }
        text += "\n" + style.key("totals: ") + Plural.count(entries.count, "checkpoint") + " (\(counts.joined(separator: ", "))), "
            + "\(ByteCount.text(committedBytes, exact: false)) committed\n"
        return text
    }
}

/// The `--json` document of `ckpt-tool ls` (schema `ckpt-tool/ls`, version 1; see docs/CLI.md).
///
/// Written through ``JSONStream`` rather than as an Encodable struct: a catalog of 10,000
/// checkpoints lists in milliseconds this way (`make bench`). Members are in sorted key order.
enum LsDocument {
    /// Prints the document on standard output.
    static func write(_ entries: [CheckpointEntry], directory: String, run: String?) {
        var json = JSONStream(to: Terminal.standardOutput)
        json.beginObject()
        json.field("checkpoints")
        json.beginArray()
        for entry in entries {
            json.element()
            write(entry, to: &json)
        }
        json.endArray()
        json.field("directory", directory)
        json.field("run", run)
        json.field("schema", "ckpt-tool/ls")
        json.field("schema_version", 1)
        json.endObject()
        json.end()
    }

    /// Calls `body` with a dictionary's members in key order. A checkpoint has a few metrics: they
    /// are picked smallest first rather than copied into an array and sorted, which for 10,000
    /// checkpoints is a tenth of `ls --json`.
    private static func forEachInKeyOrder(_ metrics: [String: Double], _ body: (String, Double) -> Void) {
        guard metrics.count <= 8 else {
            for (name, value) in metrics.sorted(by: { $0.key < $1.key }) { body(name, value) }
            return
        }
        var previous: String?
        for _ in 0..<metrics.count {
            var next: (key: String, value: Double)?
            for member in metrics where previous.map({ member.key > $0 }) ?? true {
                if next.map({ member.key < $0.key }) ?? true { next = member }
            }
            guard let next else { return }
            body(next.key, next.value)
            previous = next.key
        }
    }

    /// A CHECKPOINT.
    private static func write(_ entry: CheckpointEntry, to json: inout JSONStream) {
        json.beginObject()
        json.field("bytes", entry.bytes)
        json.field("committed", entry.committed)
        json.field("created", entry.created)
        json.field("manifest_crc32", entry.manifestCRC32.map(Int.init))
        json.field("metrics")
        json.beginObject()
        forEachInKeyOrder(entry.metrics) { name, value in
            json.key(name)
            json.number(value)
        }
        json.endObject()
        json.field("path", entry.relativePath)
        json.field("run", entry.run)
        json.field("status", entry.status.rawValue)
        json.field("step", entry.step)
        json.endObject()
    }
}
