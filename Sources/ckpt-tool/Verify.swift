import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool verify FILE [--json] [--strict]`: exit 0 when no check fails (warnings allowed, unless
/// `--strict`), 1 when one fails, 2 when the file cannot be checked at all.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a whole checkpoint: every CRC-32, manifest against pickle, alignment, zip consistency.",
        discussion: """
            Reads every byte. Each check is listed with its outcome (PASS, FAIL, WARN, SKIP) and every problem \
            it found, naming the entry or key path. A damaged file fails; one that is sound but needs trust to \
            load in torch (Python objects outside torch.load(weights_only=True)'s allow-list) gets a warning \
            listing every such global, where it occurs, and the torch.load call that would work. Exit status: \
            0 no check failed (warnings allowed, unless --strict), 1 a check failed, 2 the file cannot be \
            checked (missing, unreadable, not a checkpoint). The checks and the --json schema are in docs/CLI.md.
            """
    )

    @Argument(help: "The checkpoint (.ckpt, .pt/.pth, .safetensors; detected from its contents).")
    var file: String

    @Flag(help: "Print JSON (schema ckpt-tool/verify, version 1) instead of text.")
    var json = false

    @Flag(help: "Fail (exit 1) on warnings too, such as a file that needs trust to load in torch.")
    var strict = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        let report: VerificationReport
        do {
            report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: file))
        } catch {
            Terminal.report(error)
            throw ExitCode(2)
        }
        Terminal.standardOutput.write(
            json ? try JSONOutput.render(VerifyDocument(report, strict: strict), style: .indented) : renderText(report))
        if !report.passed(strict: strict) { throw ExitCode(1) }
    }

    private func renderText(_ report: VerificationReport) -> String {
        let style = output.style
        var lines = [style.key(report.file) + style.dim("  \(report.format.rawValue)")]
        let width = report.checks.map(\.name.count).max() ?? 0
        for check in report.checks {
            let label: String
            switch check.status {
            case .passed: label = style.good("PASS")
            case .failed: label = style.bad("FAIL")
            case .skipped: label = style.dim("SKIP")
            case .warning: label = style.value("WARN")
            }
            lines.append("\(label) \(check.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(check.detail)")
            for failure in check.failures {
                var failure = failure
                failure.file = nil
                lines.append("       " + failure.description.replacingOccurrences(of: "\n", with: "\n       "))
            }
            if check.name == "weights-only", check.status == .warning, let advice = report.torchLoad, let call = advice.call {
                lines.append("       load it in torch with:")
                lines.append(call.split(separator: "\n").map { "         " + style.value(String($0)) }.joined(separator: "\n"))
                if !advice.dataGlobals.isEmpty {
                    lines.append("       ckpt reads these as plain data with --allow-data-globals (or --allow-data-global NAME each):")
                    lines.append("         " + style.value(advice.dataGlobals.joined(separator: ", ")))
                    if !advice.placeholderGlobals.isEmpty {
                        lines.append("       and keeps these as placeholders: " + advice.placeholderGlobals.joined(separator: ", "))
                    }
                }
            }
        }
        let failed = report.checks.filter { $0.status == .failed }.count
        let warned = report.checks.filter { $0.status == .warning }.count
        let passed = report.checks.filter { $0.status == .passed }.count
        let warnings = "\(warned) warning\(warned == 1 ? "" : "s")"
        lines.append("")
        if !report.passed {
            lines.append(style.bad("FAILED") + ": \(failed) of \(report.checks.count) checks failed")
        } else if warned > 0 && strict {
            lines.append(style.bad("FAILED") + " (--strict): \(warnings)")
        } else if warned > 0 {
            lines.append(style.value("verified with warnings") + ": \(passed) checks passed, \(warnings)")
        } else {
            lines.append(style.good("verified") + ": \(passed) checks passed")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
