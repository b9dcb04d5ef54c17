import Foundation

/// Computes storages' CRC-32s on another core, ahead of the thread that writes them, so a save
/// costs about the time of the writes alone instead of writes plus a checksum pass.
final class ChecksumPipeline: @unchecked Sendable {
    private let condition = NSCondition()
    private var results: [Result<UInt32, any Error>?]
    private var cancelled = false

    /// Starts checksumming `storages` in order on a background thread.
    init(_ storages: [Storage]) {
        results = Array(repeating: nil, count: storages.count)
        guard !storages.isEmpty else { return }
        Thread.detachNewThread { [self] in
            for (index, storage) in storages.enumerated() {
                if isCancelled { return }
                let result = Result { try storage.withUnsafeBytes { CRC32.checksum($0) } }
                condition.lock()
                results[index] = result
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    private var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    /// The CRC-32 of storage `index`, waiting for it if needed.
    ///
    /// - Throws: What reading the storage threw (a failed lazy verification of its source).
    func checksum(at index: Int) throws -> UInt32 {
        condition.lock()
        while results[index] == nil { condition.wait() }
        let result = results[index]!
        condition.unlock()
        return try result.get()
    }

    /// Stops the background thread after its current storage (the writer gave up).
    func cancel() {
        condition.lock()
        cancelled = true
        condition.unlock()
    }
}
