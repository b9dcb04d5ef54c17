import Dispatch
import Foundation

extension StateValue {
    /// Runs every storage's pending CRC-32 check now, spreading storages over the CPU cores.
    ///
    /// Checks otherwise run lazily, the first time each tensor's bytes are read. Call this to fail
    /// fast on a damaged file, or to read a whole checkpoint at full speed before training resumes.
    ///
    /// - Throws: The first ``CheckpointError`` (`.checksumMismatch`) found, in storage order.
    public func verifyChecksums() throws {
        let storages = storagesInOrder.filter { !$0.isVerified }
        guard !storages.isEmpty else { return }
        let failures = FailureList(count: storages.count)
        // Largest first, so one big storage does not start last and leave a core idle.
        let order = storages.indices.sorted { storages[$0].byteCount > storages[$1].byteCount }
        let next = NextIndex()
        let workers = min(ProcessInfo.processInfo.activeProcessorCount, storages.count)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let position = next.take(below: order.count) {
                let index = order[position]
                do { try storages[index].verify() } catch { failures.record(error, at: index) }
            }
        }
        if let error = failures.first { throw error }
    }
}

/// A shared work counter for ``StateValue/verifyChecksums()``.
private final class NextIndex: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}

/// Errors from concurrent checks, reported in storage order so the result does not depend on timing.
private final class FailureList: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [(any Error)?]

    init(count: Int) { errors = Array(repeating: nil, count: count) }

    func record(_ error: any Error, at index: Int) {
        lock.lock()
        errors[index] = error
        lock.unlock()
    }

    var first: (any Error)? {
        lock.lock()
        defer { lock.unlock() }
        return errors.lazy.compactMap { $0 }.first
    }
}
