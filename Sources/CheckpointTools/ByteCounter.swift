import Foundation

/// Bytes done so far, for progress reports from worker threads.
final class ByteCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0

    /// Adds `bytes` and returns the new total.
    func add(_ bytes: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        total += bytes
        return total
    }
}
