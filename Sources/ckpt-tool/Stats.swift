import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool stats FILE... [--select GLOB] [--json]`: per-tensor min, max, mean, std, L2 norm and counts.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Per-tensor statistics: min, max, mean, std, L2 norm, and zero, NaN and Inf counts.",
        discussion: """
            Every tensor (or those whose key path matches --select, e.g. 'model/**/*.weight') is read in \
            chunks on all cores, CRC-checked as it is read. Values are computed in float64; std is \
            torch.std's default (unbiased, n − 1); a NaN makes min, max, mean, std and norm NaN, as in \
            torch. Complex tensors get counts and the L2 norm only. With several files, each gets its \
            own table (text) or document (a JSON array). The older form `stats FILE GLOB` still works. \
            The --json schema is in docs/CLI.md.
            """
    )

    @Argument(help: "The checkpoints (.ckpt, .pt/.pth, .safetensors; detected from their contents); '-' reads standard input.")
    var files: [String]

    @OptionGroup var selection: SelectionOptions

    @Flag(help: "Print JSON (schema ckpt-tool/stats, version 1) instead of a table.")
    var json = false

    @Flag(help: "Skip CRC-32 verification of the tensor data.")
    var noVerify = false

    @OptionGroup var data: DataGlobalOptions

    @OptionGroup var limits: LimitOptions

    @OptionGroup var outputOptions: OutputOptions

    /// `stats FILE GLOB`, the spelling before `--select`: a second argument that names no file
    /// and does not look like one.
    var positionalGlob: String? {
        guard files.count == 2, files[1] != "-", !FileManager.default.fileExists(atPath: files[1]) else { return nil }
        let looksLikeFile = CheckpointFormat(pathExtension: URL(fileURLWithPath: files[1]).pathExtension) != nil
        return looksLikeFile ? nil : files[1]
    }

    func validate() throws {
        if positionalGlob != nil, !selection.patterns.isEmpty {
            throw ValidationError("give the pattern once: as --select GLOB (the positional KEY-GLOB is its older spelling)")
        }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input ('-') can be read only once") }
    }

    func run() throws {
        var selection = selection
        if let positionalGlob { selection.select = [positionalGlob] }
        let checkpoints = positionalGlob == nil ? files : [files[0]]
        var documents: [StatsDocument] = []
        var tables: [String] = []
        for (index, argument) in checkpoints.enumerated() {
            let file = InputPath.display(argument)
            let tree = try StateValue(contentsOf: try InputPath.url(argument), options: LoadOptions(verifyChecksums: !noVerify, allowDataGlobals: data.dataGlobals, limits: limits.limits))
            let selected = tree.tensors(matching: selection.glob)
            if selection.glob != nil, selected.isEmpty { throw selection.noMatch(in: file, tree: tree, what: "tensor's key path") }
            let progress = ProgressBar(label: checkpoints.count == 1 ? "stats" : "stats \(index + 1)/\(checkpoints.count)")
            defer { progress.finish() }
            let results = try TensorStatistics.compute(selected.map(\.tensor)) { done, total in progress.update(done: done, total: total) }
            progress.finish()
            let rows = zip(selected, results).map { StatsRow(path: $0.0.path, tensor: $0.0.tensor, statistics: $0.1) }
            if json {
                documents.append(StatsDocument(rows, file: file, pattern: selection.glob?.pattern))
            } else {
                let table = StatsRow.table(rows, style: outputOptions.style)
                tables.append(checkpoints.count == 1 ? table : outputOptions.style.key("==> \(file) <==") + "\n" + table)
            }
        }
        if json {
            Terminal.standardOutput.write(
                documents.count == 1 ? try JSONOutput.render(documents[0], style: .indented) : try JSONOutput.render(documents, style: .indented))
        } else {
            Terminal.standardOutput.write(tables.joined(separator: "\n"))
        }
    }
}

/// One tensor's line of `stats` output.
struct StatsRow {
    let path: [StateKey]
    let tensor: Tensor
    let statistics: TensorStatistics

    /// A total that stops at Int.max: broadcast views can claim more elements than fit in 64 bits together.
    static func saturatingSum(_ values: [Int]) -> Int {
        values.reduce(0) { total, value in
            let (sum, overflow) = total.addingReportingOverflow(value)
            return overflow ? .max : sum
        }
    }

    /// The human table: one line per tensor, numbers with 6 significant digits.
    static func table(_ rows: [StatsRow], style: Terminal.Style) -> String {
        let header = ["key", "dtype", "shape", "min", "max", "mean", "std", "l2", "zeros", "nan", "inf"]
        var table = TextTable(header: header, alignments: header.indices.map { $0 < 3 ? .left : .right })
        for row in rows {
            let s = row.statistics
            table.rows.append([
                row.path.pathString, row.tensor.dtype.rawValue, "[" + row.tensor.shape.map(String.init).joined(separator: ", ") + "]",
                text(s.minimum), text(s.maximum), text(s.mean), text(s.standardDeviation), text(s.l2Norm),
                String(s.zeroCount), String(s.nanCount), String(s.infinityCount),
            ])
        }
        // Key and dtype read left to right; numbers line up on the right.
        var output = table.render { row, column, cell, padded in
            if row == nil { return style.key(padded) }
            if column >= 9, cell != "0" { return style.value(padded) }
            return column == 0 ? style.key(padded) : padded
        }
        let nans = saturatingSum(rows.map(\.statistics.nanCount)), infs = saturatingSum(rows.map(\.statistics.infinityCount))
        output += "\n" + style.key("totals: ") + Plural.count(rows.count, "tensor") + ", "
            + Plural.count(saturatingSum(rows.map(\.statistics.count)), "element") + ", \(nans) NaN, \(infs) Inf\n"
        return output
    }

    /// A number with 6 significant digits, `nan`, `inf`, `-inf`, or `-` when absent.
    static func text(_ value: Double?) -> String {
        guard let value else { return "-" }
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        return String(format: "%.6g", value)
    }
}
