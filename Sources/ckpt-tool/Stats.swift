import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool stats FILE [KEY-GLOB] [--json]`: per-tensor min, max, mean, std, L2 norm and counts.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Per-tensor statistics: min, max, mean, std, L2 norm, and zero, NaN and Inf counts.",
        discussion: """
            Every tensor (or those whose key path matches KEY-GLOB, e.g. 'model/**/*.weight') is read in \
            chunks on all cores, CRC-checked as it is read. Values are computed in float64; std is \
            torch.std's default (unbiased, n − 1); a NaN makes min, max, mean, std and norm NaN, as in \
            torch. Complex tensors get counts and the L2 norm only. The --json schema is in docs/CLI.md.
            """
    )

    @Argument(help: "The checkpoint (.ckpt, .pt/.pth, .safetensors; detected from its contents).")
    var file: String

    @Argument(help: "Only tensors whose key path matches this pattern (* and ? within a key, ** across keys).")
    var keyGlob: String?

    @Flag(help: "Print JSON (schema ckpt-tool/stats, version 1) instead of a table.")
    var json = false

    @Flag(help: "Skip CRC-32 verification of the tensor data.")
    var noVerify = false

    @OptionGroup var outputOptions: OutputOptions

    func run() throws {
        let tree = try StateValue(contentsOf: URL(fileURLWithPath: file), options: LoadOptions(verifyChecksums: !noVerify))
        let selected = tree.tensors(matching: keyGlob.map(KeyGlob.init))
        if let keyGlob, selected.isEmpty {
            throw CheckpointError(.invalidArgument, "no tensor's key path matches the pattern", file: file, found: keyGlob)
        }
        let progress = ProgressBar(label: "stats")
        defer { progress.finish() }
        let results = try TensorStatistics.compute(selected.map(\.tensor)) { done, total in progress.update(done: done, total: total) }
        progress.finish()
        let rows = zip(selected, results).map { StatsRow(path: $0.0.path, tensor: $0.0.tensor, statistics: $0.1) }
        if json {
            Terminal.standardOutput.write(try JSONOutput.render(StatsDocument(rows, file: file, pattern: keyGlob), style: .indented))
        } else {
            Terminal.standardOutput.write(StatsRow.table(rows, style: outputOptions.style))
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
        output += "\n" + style.key("totals: ") + "\(rows.count) tensor\(rows.count == 1 ? "" : "s"), "
            + "\(saturatingSum(rows.map(\.statistics.count))) elements, \(nans) NaN, \(infs) Inf\n"
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
