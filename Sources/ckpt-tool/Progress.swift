import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A progress bar on standard error, drawn only when standard error is a terminal and the work
/// has already taken half a second (short runs and pipes stay clean). Safe to update from any thread.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let enabled: Bool
    private let start = Date()
    private let lock = NSLock()
    private var lastDraw = Date.distantPast
    private var drawn = false

    /// - Parameter label: Shown before the bar (`stats`).
    init(label: String) {
        self.label = label
        let environment = ProcessInfo.processInfo.environment
        enabled = isatty(STDERR_FILENO) != 0 && environment["TERM"] != "dumb"
    }

    /// Redraws at most ten times a second.
    func update(done: Int, total: Int) {
        guard enabled, total > 0 else { return }
        let now = Date()
        lock.lock()
        defer { lock.unlock() }
        guard now.timeIntervalSince(start) > 0.5, now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        drawn = true
        let fraction = min(1, Double(done) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        Terminal.standardError.write(
            "\r\(label) \(bar) \(String(format: "%3.0f%%", fraction * 100)) \(TreeSummary.formatBytes(done))\u{1B}[K")
    }

    /// Erases the bar if one was drawn.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { Terminal.standardError.write("\r\u{1B}[K") }
        drawn = false
    }
}
