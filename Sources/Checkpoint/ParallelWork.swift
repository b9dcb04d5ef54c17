import Dispatch
import Foundation

/// Work spread over the CPU cores: each thread takes the next item from a shared counter, so
/// items of uneven size balance, and results come back in item order whatever the timing.
package enum ParallelWork {
    /// Runs `body` for every item and collects the results.
    ///
    /// - Parameters:
    ///   - count: The items, `0 ..< count`.
    ///   - order: The order to start items in (largest first balances best); nil for index order.
    ///   - worker: Makes one thread's scratch state; called once per thread.
    ///   - body: Processes one item with this thread's state.
    /// - Returns: Each item's result, indexed by item.
    package static func map<Worker, T>(
        count: Int, order: [Int]? = nil, worker: @Sendable () -> Worker, _ body: @Sendable (Worker, Int) throws -> T
    ) -> [Result<T, any Error>] {
        let slots = Slots<T>(count: count)
        let threads = max(1, min(ProcessInfo.processInfo.activeProcessorCount, count))
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            let state = worker()
            while let position = slots.take() {
                let item = order?[position] ?? position
                slots.store(Result { try body(state, item) }, at: item)
            }
        }
        return slots.results
    }

    /// Runs `body` for every item and collects the results (no per-thread state).
    package static func map<T>(count: Int, order: [Int]? = nil, _ body: @Sendable (Int) throws -> T) -> [Result<T, any Error>] {
        map(count: count, order: order, worker: {}) { _, item in try body(item) }
    }

    /// Results written by worker threads; a lock rather than atomics, as items are coarse.
    private final class Slots<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var next = 0
        private var slots: [Result<T, any Error>?]

        init(count: Int) { slots = Array(repeating: nil, count: count) }

        func take() -> Int? {
            lock.lock()
            defer { lock.unlock() }
            guard next < slots.count else { return nil }
            next += 1
            return next - 1
        }

        func store(_ result: Result<T, any Error>, at index: Int) {
            lock.lock()
            slots[index] = result
            lock.unlock()
        }

        var results: [Result<T, any Error>] {
            lock.lock()
            defer { lock.unlock() }
            return slots.map { $0! }
        }
    }
}
