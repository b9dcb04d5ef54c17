import CSQLite
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The wait for another connection's lock, measured on the clock.
///
/// SQLite's own busy handler (`sqlite3_busy_timeout`) adds up the sleeps it asked for, not the time
/// that passed: a signal cuts each `usleep` short, so under a stream of signals (a profiler, a
/// trainer's timer, a job scheduler's notices) a 30 s timeout ran out after about 2 s, and the save
/// failed with `.locked` while the other process still held the lock for its legitimate second.
/// This handler sleeps the same growing steps (1 ms up to 100 ms), resumes a sleep a signal
/// interrupted, and stops once the monotonic clock says the timeout has passed.
final class SQLiteBusyWait {
    let timeout: Double
    /// When the current wait began (SQLite counts attempts from 0 for each new wait).
    private var started: UInt64 = 0
    private static let steps: [UInt64] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100]

    init(timeout: Double) { self.timeout = max(0, timeout) }

    /// Installs this wait on a connection; it must outlive the connection's handle.
    func install(on handle: OpaquePointer) {
        sqlite3_busy_handler(handle, { context, attempts in
            guard let context else { return 0 }
            return Unmanaged<SQLiteBusyWait>.fromOpaque(context).takeUnretainedValue().retry(after: Int(attempts)) ? 1 : 0
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Sleeps before another attempt, or says to give up.
    ///
    /// - Parameter attempts: How many times SQLite found the lock taken in this wait so far.
    /// - Returns: False once the timeout has passed.
    func retry(after attempts: Int) -> Bool {
        let now = Self.monotonicNanoseconds()
        if attempts == 0 { started = now }
        let deadline = started &+ UInt64(timeout * 1e9)
        guard now < deadline else { return false }
        let step = Self.steps[min(attempts, Self.steps.count - 1)] * 1_000_000
        Self.sleep(until: min(now + step, deadline))
        return true
    }

    /// Sleeps until the monotonic clock reaches `target`, going back to sleep after a signal.
    private static func sleep(until target: UInt64) {
        while true {
            let now = monotonicNanoseconds()
            guard now < target else { return }
            var request = timespec(tv_sec: Int(((target - now) / 1_000_000_000)), tv_nsec: Int((target - now) % 1_000_000_000))
            _ = nanosleep(&request, nil)
        }
    }

    private static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
