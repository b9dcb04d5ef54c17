import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool diff A B [--rtol R] [--atol A] [--equal-nan] [--json]`: exit 0 when equal within
/// tolerance, 1 when different, 2 when a file cannot be read (as `diff` does).
struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two checkpoints: structure, scalars and hyperparameters exactly, tensors within a tolerance.",
        discussion: """
            Dict items are matched by key, list elements by position. Tensors of equal shape are compared \
            element by element with torch.allclose's rule |a - b| <= atol + rtol * |b| (b from FILE B), also \
            across dtypes; NaN is close to nothing unless --equal-nan. Exit status: 0 equal within \
            tolerance, 1 different, 2 a file could not be read. The --json schema is in docs/CLI.md.
            """
    )

    @Argument(help: "The first checkpoint (a).")
    var a: String

    @Argument(help: "The second checkpoint (b, the reference whose magnitude scales --rtol).")
    var b: String

    @Option(help: "Relative tolerance (torch.allclose's rtol).")
    var rtol = 1e-5

    @Option(help: "Absolute tolerance (torch.allclose's atol).")
    var atol = 1e-8

    @Flag(help: "Treat NaN as equal to NaN (torch.allclose's equal_nan).")
    var equalNan = false

    @Flag(help: "Print JSON (schema ckpt-tool/diff, version 1) instead of text.")
    var json = false

    @OptionGroup var data: DataGlobalOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard rtol >= 0, atol >= 0, rtol.isFinite, atol.isFinite else {
            throw ValidationError("--rtol and --atol must be finite and not negative")
        }
    }

    func run() throws {
        let tolerance = StateDiff.Tolerance(relative: rtol, absolute: atol, equalNaN: equalNan)
        let diff: StateDiff
        do {
            let options = LoadOptions(allowDataGlobals: data.dataGlobals)
            let first = try StateValue(contentsOf: URL(fileURLWithPath: a), options: options)
            let second = try StateValue(contentsOf: URL(fileURLWithPath: b), options: options)
            diff = try StateDiff.compare(first, second, tolerance: tolerance)
        } catch {
            Terminal.report(error)
            throw ExitCode(2)
        }
        Terminal.standardOutput.write(json ? try JSONOutput.render(DiffDocument(diff, a: a, b: b), style: .indented) : renderText(diff))
        if !diff.isEqual { throw ExitCode(1) }
    }

    private func renderText(_ diff: StateDiff) -> String {
        let style = output.style
        var lines = [style.bad("--- \(a)"), style.good("+++ \(b)")]
        for difference in diff.differences {
            let place = style.key(difference.path.isEmpty ? "(root)" : difference.path.pathString)
            switch difference.kind {
            case .added: lines.append(style.good("+ added    ") + "\(place): \(difference.new ?? "")")
            case .removed: lines.append(style.bad("- removed  ") + "\(place): \(difference.old ?? "")")
            case .values:
                lines.append(style.value("~ values   ") + "\(place): \(difference.old ?? "") (\(difference.new ?? ""))")
            default:
                let label = difference.kind.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                lines.append(style.value("~ \(label) ") + "\(place): \(difference.old ?? "") → \(difference.new ?? "")")
            }
        }
        let close = diff.tensorComparisons.filter(\.isClose).count
        lines.append("")
        lines.append(
            (diff.isEqual ? style.good("equal") : style.bad("different")) + ": \(diff.differences.count) difference"
                + "\(diff.differences.count == 1 ? "" : "s"); \(diff.tensorComparisons.count) tensors compared, \(close) close "
                + "(rtol \(rtol), atol \(atol)\(equalNan ? ", NaN equal to NaN" : ""))")
        return lines.joined(separator: "\n") + "\n"
    }
}
