import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool verify FILE... [--json] [--strict]`: exit 0 when no check fails (warnings allowed,
/// unless `--strict`), 1 when one fails, 2 when a file cannot be checked at all; the worst over
/// the files.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a whole checkpoint: every CRC-32, manifest against pickle, alignment, zip consistency.",
        discussion: """
            Reads every byte. Each check is listed with its outcome (PASS, FAIL, WARN, SKIP) and every problem \
            it found, naming the entry or key path. A damaged file fails; one that is sound but needs trust to \
            load in torch (Python objects outside torch.load(weights_only=True)'s allow-list) gets a warning \
            listing every such global, where it occurs, and the torch.load call that would work; so does a \
            storage saved on another device than the CPU (map_location). A damaged storage record is named \
            with the tensors it holds. With several files, each is checked and printed in turn (--json: an \
            array of their documents). Exit status, the worst over the files: 0 no check failed (warnings \
            allowed, unless --strict), 1 a check failed, 2 a file cannot be checked (missing, unreadable, \
            not a checkpoint). The checks and the --json schema are in docs/CLI.md.
            """
    )

    @Argument(help: "The checkpoints (.ckpt, .pt/.pth, .safetensors; each detected from its contents); '-' reads standard input.")
    var files: [String]

    @Flag(help: "Print JSON (schema ckpt-tool/verify, version 1) instead of text; an array of documents for several files.")
    var json = false

    @Flag(help: "Fail (exit 1) on warnings too, such as a file that needs trust to load in torch.")
    var strict = false

    @OptionGroup var limits: LimitOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input ('-') can be read only once") }
    }

    /// Checks each file in turn: text is printed as each is checked, JSON once all are (one
    /// document, or an array of them for several files). A file that cannot be checked is reported
    /// on stderr and counts as exit status 2.
    func run() throws {
        var documents: [VerifyDocument] = []
        var statuses: [Int32] = []
        for (index, file) in files.enumerated() {
            var report: VerificationReport
            do {
                let bar = ProgressBar(label: files.count == 1 ? "verify" : "verify \(index + 1)/\(files.count)")
                defer { bar.finish() }
                report = try CheckpointVerifier.verify(contentsOf: InputPath.url(file), limits: limits.limits) { done, total in bar.update(done: done, total: total) }
                report.file = InputPath.display(file)
            } catch {
                Terminal.report(error)
                statuses.append(2)
                continue
            }
            if json {
                documents.append(VerifyDocument(report, strict: strict))
            } else {
                Terminal.standardOutput.write((statuses.isEmpty ? "" : "\n") + renderText(report))
            }
            statuses.append(report.passed(strict: strict) ? 0 : 1)
        }
        if json, !documents.isEmpty {
            Terminal.standardOutput.write(
                files.count == 1
                    ? try JSONOutput.render(documents[0], style: .indented) : try JSONOutput.render(documents, style: .indented))
        } else if !json, files.count > 1 {
            Terminal.standardOutput.write("\n" + renderTotals(statuses))
        }
        let worst = statuses.max() ?? 0
        if worst != 0 { throw ExitCode(worst) }
    }

    /// `3 files: 1 verified, 1 failed, 1 not checked` after several files' reports.
    private func renderTotals(_ statuses: [Int32]) -> String {
        let style = output.style
        var parts: [String] = []
        let verified = statuses.filter { $0 == 0 }.count
        let failed = statuses.filter { $0 == 1 }.count
        let unchecked = statuses.filter { $0 == 2 }.count
        if verified > 0 { parts.append(style.good("\(verified) verified")) }
        if failed > 0 { parts.append(style.bad("\(failed) failed")) }
        if unchecked > 0 { parts.append(style.bad("\(unchecked) not checked")) }
        return style.key(Plural.count(statuses.count, "file") + ": ") + parts.joined(separator: ", ") + "\n"
    }

    private func renderText(_ report: VerificationReport) -> String {
        let style = output.style
        var lines = [style.key(report.file) + style.dim("  \(report.format.rawValue)")]
        if let metadata = report.metadata {
            lines.append(style.key("__metadata__") + " (\(Plural.count(metadata.count, "pair")))")
            for (key, value) in metadata { lines.append("  \(key): " + style.value(value)) }
        }
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
        if let advice = report.torchLoad, let call = advice.call {
            lines.append("load it in torch with:")
            lines.append(call.split(separator: "\n").map { "  " + style.value(String($0)) }.joined(separator: "\n"))
            if !advice.dataGlobals.isEmpty {
                lines.append("ckpt reads these as plain data with --allow-data-globals (or --allow-data-global NAME each):")
                lines.append("  " + style.value(advice.dataGlobals.joined(separator: ", ")))
                if !advice.placeholderGlobals.isEmpty {
                    lines.append("and keeps these as placeholders: " + advice.placeholderGlobals.joined(separator: ", "))
                }
            }
        }
        let failed = report.checks.filter { $0.status == .failed }.count
        let warned = report.checks.filter { $0.status == .warning }.count
        let passed = report.checks.filter { $0.status == .passed }.count
        let warnings = Plural.count(warned, "warning")
        lines.append("")
        if !report.passed {
            lines.append(style.bad("FAILED") + ": \(failed) of \(Plural.count(report.checks.count, "check")) failed")
        } else if warned > 0 && strict {
            lines.append(style.bad("FAILED") + " (--strict): \(warnings)")
        } else if warned > 0 {
            lines.append(style.value("verified with warnings") + ": \(Plural.count(passed, "check")) passed, \(warnings)")
        } else {
            lines.append(style.good("verified") + ": \(Plural.count(passed, "check")) passed")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
