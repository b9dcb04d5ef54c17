import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool verify FILE [--json]`: exit 0 when every check passes, 1 when one fails, 2 when the
/// file cannot be checked at all.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a whole checkpoint: every CRC-32, manifest against pickle, alignment, zip consistency.",
        discussion: """
            Reads every byte. Each check is listed with its outcome (PASS, FAIL, WARN, SKIP) and every problem \
            it found, naming the entry or key path. Exit status: 0 all checks pass, 1 a check failed, \
            2 the file cannot be checked (missing, unreadable, not a checkpoint). The checks and the \
            --json schema are in docs/CLI.md.
            """
    )

    @Argument(help: "The checkpoint (.ckpt, .pt/.pth, .safetensors; detected from its contents).")
    var file: String

    @Flag(help: "Print JSON (schema ckpt-tool/verify, version 1) instead of text.")
    var json = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        let report: VerificationReport
        do {
            report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: file))
        } catch {
            Terminal.report(error)
            throw ExitCode(2)
        }
        Terminal.standardOutput.write(json ? try JSONOutput.render(VerifyDocument(report), style: .indented) : renderText(report))
        if !report.passed { throw ExitCode(1) }
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
        }
        let failed = report.checks.filter { $0.status == .failed }.count
        lines.append("")
        lines.append(
            report.passed
                ? style.good("verified") + ": \(report.checks.filter { $0.status == .passed }.count) checks passed"
                : style.bad("FAILED") + ": \(failed) of \(report.checks.count) checks failed")
        return lines.joined(separator: "\n") + "\n"
    }
}
