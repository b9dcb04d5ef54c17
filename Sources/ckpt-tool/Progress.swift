import CheckpointTools
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one progress bar of every long command (stats, verify, diff, convert, rename), on stderr.
///
/// `stats  ██████████····················  34%  2.7 GiB of 8.0 GiB  1.3 GiB/s  ETA 4s`
///
/// The total is the real number of bytes the command works through (both passes when it reads
/// data twice), the rate is the average since the start, and the ETA is what is left at that
/// rate. It is drawn only when stderr is a terminal (`TERM` not `dumb`) and the work has already
/// taken half a second, so short runs, pipes and logs stay clean, and it is erased when done.
/// Safe to update from any thread.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let enabled: Bool
    private let start = Date()
    /// Seconds of work before the bar appears: 0.5, or `CKPT_PROGRESS_AFTER` (tests draw at once).
    private let delay: TimeInterval
    private let lock = NSLock()
    private var lastDraw = Date.distantPast
    private var drawn = false
    /// The most done seen: workers report out of order, and the bar never goes back.
    private var mostDone = 0

    /// - Parameter label: Shown before the bar (`stats`).
    init(label: String) {
        self.label = label
        let environment = ProcessInfo.processInfo.environment
        enabled = isatty(STDERR_FILENO) != 0 && environment["TERM"] != "dumb"
        delay = environment["CKPT_PROGRESS_AFTER"].flatMap(TimeInterval.init) ?? 0.5
    }

    /// Records the bytes done out of the total; redraws at most ten times a second.
    ///
    /// - Parameters:
    ///   - done: Bytes done so far.
    ///   - total: Bytes in all.
    func update(done: Int, total: Int) {
        guard enabled, total > 0 else { return }
        let now = Date()
        lock.lock()
        defer { lock.unlock() }
        mostDone = max(mostDone, done)
        let elapsed = now.timeIntervalSince(start)
        guard elapsed >= delay, now.timeIntervalSince(lastDraw) > 0.1 || delay == 0 else { return }
        lastDraw = now
        drawn = true
        Terminal.standardError.write("\r" + Self.line(label: label, done: mostDone, total: total, elapsed: elapsed, width: Self.terminalWidth()) + "\u{1B}[K")
    }

    /// Erases the bar if one was drawn.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { Terminal.standardError.write("\r\u{1B}[K") }
        drawn = false
    }

    /// The bar's text for a terminal `width` columns wide (the bar shrinks first, then the ETA and
    /// rate go).
    static func line(label: String, done: Int, total: Int, elapsed: TimeInterval, width: Int) -> String {
        let done = min(max(done, 0), total)
        let fraction = Double(done) / Double(total)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        var facts = [String(format: "%3.0f%%", (fraction * 100).rounded(.down)), "\(ByteCount.text(done, exact: false)) of \(ByteCount.text(total, exact: false))"]
        if rate > 0 {
            facts.append("\(ByteCount.text(Int(rate), exact: false))/s")
            facts.append(done == total ? "finishing" : "ETA " + duration(Double(total - done) / rate))
        }
        // The bar keeps one width while the numbers beside it change length: room is kept for the
        // longest tail (`100%  1023.9 MiB of 1023.9 MiB  1023.9 MiB/s  ETA 59m59s`).
        let longestTail = 58
        var tail = facts.joined(separator: "  ")
        var barWidth = min(30, width - label.count - longestTail - 6)
        while barWidth < 10, facts.count > 2, width - label.count - tail.count - 6 < 10 {
            facts.removeLast()
            tail = facts.joined(separator: "  ")
        }
        barWidth = max(barWidth, min(30, width - label.count - tail.count - 6))
        guard barWidth >= 10 else { return "\(label)  \(tail)" }
        let filled = Int(fraction * Double(barWidth))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: barWidth - filled)
        return "\(label)  \(bar)  \(tail)"
    }

    /// `4s`, `2m05s`, `1h02m`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let whole = Int(seconds.rounded(.up))
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return String(format: "%dm%02ds", whole / 60, whole % 60) }
        return String(format: "%dh%02dm", whole / 3600, whole % 3600 / 60)
    }

    private static func terminalWidth() -> Int {
        var size = winsize()
        guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }
}
