import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool diff A B [--rtol R] [--atol A] [--equal-nan] [--ignore-dtype] [--ignore-container-types]
/// [--quiet | --json] [--no-verify]`: exit 0 when equal within tolerance, 1 when different, 2 when a file cannot be
/// read (as `diff` does).
struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two checkpoints: structure, scalars and hyperparameters exactly, tensors within a tolerance.",
        discussion: """
            Dict items are matched by key, list elements by position. Tensors of equal shape are compared \
            element by element with torch.allclose's rule |a - b| <= atol + rtol * |b| (b from FILE B), also \
            across dtypes (the dtype change is reported as well, unless --ignore-dtype). A NaN equals a NaN \
            of the same bits; --equal-nan makes any NaN equal any NaN. Tensor data is read on all cores in \
            chunks, CRC-checked as it is compared, with memory use independent of the files' sizes. Exit \
            status: 0 equal within tolerance, 1 different, 2 a file could not be read (or --select matched \
            nothing in either). --select compares only the values whose key paths match in each file. '-' \
            reads one of the files from standard input. The --json schema is in docs/CLI.md.
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

    @Flag(help: "Treat any NaN as equal to any NaN (torch.allclose's equal_nan); without it only NaNs of the same bits are equal.")
    var equalNan = false

    @Flag(help: "Compare tensors by value alone: a different dtype is not a difference (bf16 against f32 within --rtol is equal).")
    var ignoreDtype = false

    @Flag(help: "Leave out OrderedDict against dict, and an OrderedDict's _metadata when only one side has it (.pt against safetensors).")
    var ignoreContainerTypes = false

    @Flag(name: .shortAndLong, help: "Print nothing; the exit status tells (0 equal, 1 different, 2 unreadable).")
    var quiet = false

    @Flag(help: "Print JSON (schema ckpt-tool/diff, version 2) instead of text.")
    var json = false

    @Flag(help: "Skip CRC-32 verification of the tensor data (about half the time when most elements differ).")
    var noVerify = false

    @OptionGroup var selection: SelectionOptions

    @OptionGroup var data: DataGlobalOptions

    @OptionGroup var limits: LimitOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard rtol >= 0, atol >= 0, rtol.isFinite, atol.isFinite else {
            throw ValidationError("--rtol and --atol must be finite and not negative")
        }
        if quiet && json { throw ValidationError("--quiet and --json exclude each other") }
        if a == "-" && b == "-" { throw ValidationError("standard input ('-') can be read only once") }
    }

    private var ignored: StateDiff.Ignored {
        var ignored: StateDiff.Ignored = []
        if ignoreDtype { ignored.insert(.dtype) }
        if ignoreContainerTypes { ignored.insert(.containerTypes) }
        return ignored
    }

    func run() throws {
        let tolerance = StateDiff.Tolerance(relative: rtol, absolute: atol, equalNaN: equalNan)
        let diff: StateDiff
        do {
            let options = LoadOptions(verifyChecksums: !noVerify, allowDataGlobals: data.dataGlobals, limits: limits.limits)
            var first = try StateValue(contentsOf: InputPath.url(a), options: options)
            var second = try StateValue(contentsOf: InputPath.url(b), options: options)
            if let glob = selection.glob {
                // A side where nothing matches compares as empty: everything the other kept is added or removed.
                let keptFirst = first.filtered(by: glob), keptSecond = second.filtered(by: glob)
                guard keptFirst != nil || keptSecond != nil else { throw selection.noMatch(in: InputPath.display(a), tree: first) }
                first = keptFirst ?? .dict(StateDict(isOrderedDict: false))
                second = keptSecond ?? .dict(StateDict(isOrderedDict: false))
            }
            let progress = quiet ? nil : ProgressBar(label: "diff")
            defer { progress?.finish() }
            diff = try StateDiff.compare(first, second, tolerance: tolerance, ignoring: ignored) { done, total in
                progress?.update(done: done, total: total)
            }
        } catch {
            Terminal.report(error)
            throw ExitCode(2)
        }
        if !quiet {
            Terminal.standardOutput.write(
                json ? try JSONOutput.render(DiffDocument(diff, a: a, b: b), style: .indented) : renderText(diff))
        }
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
        let count = diff.differences.count
        let close = diff.tensorComparisons.filter(\.isClose).count
        let compared = diff.tensorComparisons.count
        var settings = ["rtol \(rtol)", "atol \(atol)", equalNan ? "any NaN equal to any NaN" : "NaN equal to NaN of the same bits"]
        if ignoreDtype { settings.append("dtypes ignored") }
        if ignoreContainerTypes { settings.append("container types ignored") }
        lines.append("")
        lines.append(
            (diff.isEqual ? style.good("equal") : style.bad("different"))
                + ": \(Plural.count(count, "difference")); \(Plural.count(compared, "tensor")) compared, \(close) close "
                + "(\(settings.joined(separator: ", ")))")
        if let hint = hint(diff) { lines.append(style.dim(hint)) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A pointer to the flag that would leave out every difference found, when one would.
    private func hint(_ diff: StateDiff) -> String? {
        guard !diff.isEqual else { return nil }
        if diff.differences.allSatisfy({ $0.kind == .dtype }), diff.tensorComparisons.allSatisfy(\.isClose) {
            return "only dtypes differ, and every tensor is close by value: --ignore-dtype compares by value alone"
        }
        let containerOnly = diff.differences.allSatisfy { difference in
            switch difference.kind {
            case .type: return Set([difference.old, difference.new].map { $0?.split(separator: " ").first }) == ["OrderedDict", "dict"]
            case .added, .removed: return difference.path.last == "_metadata"
            default: return false
            }
        }
        return containerOnly ? "only container types differ (OrderedDict against dict, _metadata): --ignore-container-types leaves them out" : nil
    }
}
