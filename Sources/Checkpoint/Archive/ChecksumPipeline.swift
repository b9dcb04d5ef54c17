import Foundation

/// Computes storages' CRC-32s on another core, ahead of the thread that writes them, so a save
/// costs about the time of the writes alone instead of writes plus a checksum pass.
///
/// It runs at most ``lookahead`` bytes of storages ahead of the writer (always at least the next
/// one): a storage mapped from a file is resident once checksummed, until written and released,
/// so converting a checkpoint larger than memory keeps a bounded amount of it resident.
final class ChecksumPipeline: @unchecked Sendable {
    private let condition = NSCondition()
    private var results: [Result<UInt32, any Error>?]
    private var cancelled = false
    /// The storage the writer asks for next.
    private var consumed = 0
    /// Bytes of storages checksummed and not yet asked for.
    private var pendingBytes = 0
    private let sizes: [Int]

    /// How far ahead of the writer the checksums may run, in bytes.
    static let lookahead = 64 << 20

    /// Starts checksumming `storages` in order on a background thread.
    init(_ storages: [Storage]) {
        results = Array(repeating: nil, count: storages.count)
        sizes = storages.map(\.byteCount)
        guard !storages.isEmpty else { return }
        Thread.detachNewThread { [self] in
            for (index, storage) in storages.enumerated() {
                guard waitForRoom(index: index, byteCount: storage.byteCount) else { return }
                let result = Result { try storage.withUnsafeBytes { CRC32.checksum($0) } }
                condition.lock()
                results[index] = result
                if index >= consumed { pendingBytes += storage.byteCount }
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    /// Waits until storage `index` may be checksummed: it is the next one the writer needs, or it
    /// fits in the lookahead. False when cancelled.
    private func waitForRoom(index: Int, byteCount: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !cancelled, index > consumed, pendingBytes + byteCount > Self.lookahead { condition.wait() }
        return !cancelled
    }

    /// The CRC-32 of storage `index`, waiting for it if needed; the storages are asked for in order.
    ///
    /// - Throws: What reading the storage threw (a failed lazy verification of its source).
    func checksum(at index: Int) throws -> UInt32 {
        condition.lock()
        while results[index] == nil { condition.wait() }
        let result = results[index]!
        if index >= consumed {
            // Storages are asked for in order, each counted in pendingBytes when it was done.
            consumed = index + 1
            pendingBytes -= sizes[index]
        }
        condition.broadcast()
        condition.unlock()
        return try result.get()
    }

    /// Stops the background thread after its current storage (the writer gave up).
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}
