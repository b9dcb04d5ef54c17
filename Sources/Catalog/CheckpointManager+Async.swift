import Checkpoint
import Foundation

extension CheckpointManager {
    /// Starts a save that runs in the background, returning once the state's tensors are
    /// snapshotted (copy-on-write).
    ///
    /// What gets written is the tensors' bytes at the time of this call, so the caller may
    /// change the tensors as soon as this returns: a later optimizer step cannot tear the
    /// checkpoint. The snapshot is copy-on-write: this call only marks each storage, and a
    /// background thread copies them; a write to a storage not yet copied
    /// (``Checkpoint/Storage/withUnsafeMutableBytes(_:)`` on any thread) first copies that
    /// storage, or waits for the copy under way. A training loop whose forward and backward
    /// passes take longer than the copy never waits. Writing, fsync, the catalog commit and
    /// pruning then run on the background thread, in the order ``save(step:state:metrics:)``
    /// describes; until the commit, the save is never reported by ``latest()``,
    /// ``best(metric:mode:)`` or ``restore(step:)``.
    ///
    /// At most one save is in flight: this first waits for the previous one to finish
    /// (back-pressure). If that save failed, its error is thrown here and this save is not
    /// started. The snapshot's memory is kept and reused by the next snapshot of the same sizes.
    ///
    /// - Parameters:
    ///   - step: The training step (at least 0).
    ///   - state: The tree to save.
    ///   - metrics: Values to rank checkpoints by.
    /// - Throws: ``CatalogError``: the error of the previous async save; `.checkpoint` when a
    ///   tensor's bytes cannot be read for the snapshot (a failed CRC of a lazily loaded tensor).
    public func saveAsync(step: Int, state: StateValue, metrics: [String: Double] = [:]) throws {
        try wait()
        guard step >= 0 else { throw CatalogError(.invalidArgument, "a step must be at least 0", step: step) }
        let pool = asyncCondition.withLock {
            defer { snapshotPool = [:] }
            return snapshotPool
        }
        let snapshot: StateSnapshot
        do {
            snapshot = try StateSnapshot(state, reusing: pool)
            if copiesSnapshotOnCall { _ = try snapshot.copy() }
        } catch {
            throw CatalogError(.checkpoint, "cannot snapshot the state", step: step, cause: CheckpointFileInfo.sendable(error))
        }
        asyncCondition.withLock { saveInFlight = true }
        worker.async { [self] in
            var entry: CheckpointEntry?
            var failure: CatalogError?
            do {
                CrashHooks.reach(.asyncSaveStarted, directory)
                let copy: StateValue
                do {
                    copy = try snapshot.copy()
                } catch {
                    throw CatalogError(.checkpoint, "cannot snapshot the state", step: step, cause: CheckpointFileInfo.sendable(error))
                }
                entry = try performSave(step: step, state: copy, metrics: metrics)
            } catch let error as CatalogError {
                failure = error
            } catch {
                failure = CatalogError(.checkpoint, "async save failed", step: step, cause: CheckpointFileInfo.sendable(error))
            }
            let buffers = snapshot.releaseBuffers()
            asyncCondition.withLock {
                snapshotPool = buffers
                lastSnapshotWaits = snapshot.writerWaits
                if let entry { lastAsyncEntry = entry }
                if let failure { pendingError = failure }
                saveInFlight = false
                asyncCondition.broadcast()
            }
        }
    }

    /// Seconds that writers to the saved tensors spent, during the last async save that finished,
    /// copying a storage before their write or waiting for its copy (for benchmarks: with
    /// ``saveAsync(step:state:metrics:)``'s own time, what the save blocked its caller).
    package var lastAsyncSaveWriterWaits: Double { asyncCondition.withLock { lastSnapshotWaits } }

    /// Waits until no async save is in flight.
    ///
    /// - Returns: The entry of the last async save that committed, if any.
    /// - Throws: The ``CatalogError`` of an async save that failed since the last call that
    ///   reported one (each error is thrown once).
    @discardableResult
    public func wait() throws -> CheckpointEntry? {
        asyncCondition.lock()
        while saveInFlight { asyncCondition.wait() }
        let error = pendingError
        pendingError = nil
        let entry = lastAsyncEntry
        asyncCondition.unlock()
        if let error { throw error }
        return entry
    }

    /// Waits for an async save in flight, then moves the catalog's write-ahead log into the main
    /// database file, so that the directory can be copied as it is.
    ///
    /// - Throws: As ``wait()``, or ``CatalogError`` if the catalog cannot be checkpointed.
    public func flush() throws {
        try wait()
        try store.withConnection { db in
            try db.query("PRAGMA wal_checkpoint(TRUNCATE)") { _ in () }
        }
    }

    /// True while an async save is in flight.
    public var isSaving: Bool { asyncCondition.withLock { saveInFlight } }
}

/// A copy-on-write snapshot of a state tree's tensors: every storage copied once (tensors that
/// shared one share its copy), into buffers reused from an earlier snapshot when sizes match.
///
/// Taking it only puts a write barrier on each storage (``Checkpoint/Storage/addWriteBarrier(owner:_:)``);
/// ``copy()`` then copies them on the background thread, in the tree's order, one storage per
/// core (a large one into a reused buffer in chunks on all cores). A writer that reaches a storage
/// first copies it on its own thread, or waits for the copy under way, then writes. Each storage
/// is copied once, under its own lock, and its barrier is removed then, so writers pay for the
/// barrier only until their storage is copied.
final class StateSnapshot: @unchecked Sendable {
    private let value: StateValue
    private let cells: [Cell]
    /// Guards `waited` and `next`.
    private let lock = NSLock()
    nonisolated(unsafe) private var waited: Double = 0
    nonisolated(unsafe) private var next = 0

    /// One storage of the tree and its copy.
    private final class Cell: @unchecked Sendable {
        let source: Storage
        let buffer: Storage?
        private let lock = NSLock()
        nonisolated(unsafe) private var result: Result<Storage, any Error>?

        init(_ source: Storage, buffer: Storage?) {
            self.source = source
            self.buffer = buffer
        }

        /// The copy, made now unless it was made before; the barrier goes when it is made.
        @discardableResult
        func copy() -> Result<Storage, any Error> {
            lock.withLock {
                if let result { return result }
                let made = Result {
                    guard let buffer else { return try source.copy() }
                    try Self.copyBytes(source, into: buffer)
                    return buffer
                }
                result = made
                source.removeWriteBarrier(owner: self)
                return made
            }
        }

        /// Copies in chunks of at most 32 MiB, on all cores.
        private static func copyBytes(_ source: Storage, into target: Storage) throws {
            let chunk = 32 << 20
            let chunks = (source.byteCount + chunk - 1) / chunk
            let failures = NSLock()
            nonisolated(unsafe) var failure: (any Error)?
            DispatchQueue.concurrentPerform(iterations: chunks) { index in
                let offset = index * chunk
                do {
                    try source.withUnsafeBytes { from in
                        try target.withUnsafeMutableBytes { to in
                            (to.baseAddress! + offset).copyMemory(from: from.baseAddress! + offset, byteCount: min(chunk, from.count - offset))
                        }
                    }
                } catch {
                    failures.withLock { failure = failure ?? error }
                }
            }
            if let failure { throw failure }
        }
    }

    /// Marks every storage of `value`; copies nothing.
    ///
    /// - Throws: A failed CRC check of a lazily loaded storage (run now, on the caller's thread,
    ///   so that it is reported by the call that asked for the snapshot).
    init(_ value: StateValue, reusing pool: [Int: [Storage]]) throws {
        var pool = pool
        var cells: [Cell] = []
        var seen = Set<ObjectIdentifier>()
        for source in value.storagesInOrder where seen.insert(ObjectIdentifier(source)).inserted {
            try source.verify()
            cells.append(Cell(source, buffer: pool[source.byteCount]?.popLast()))
        }
        self.value = value
        self.cells = cells
        for cell in cells {
            cell.source.addWriteBarrier(owner: cell) { [weak self, cell] in
                let start = DispatchTime.now().uptimeNanoseconds
                cell.copy()
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                if let self { self.lock.withLock { self.waited += seconds } }
            }
        }
    }

    /// Seconds writers have spent in the barriers.
    var writerWaits: Double { lock.withLock { waited } }

    /// Copies every storage not copied yet and returns the tree over the copies (again, when
    /// called again). Every barrier is gone when this returns, even when it throws.
    func copy() throws -> StateValue {
        let threads = max(1, min(ProcessInfo.processInfo.activeProcessorCount, cells.count))
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            while let index = nextCell() { cells[index].copy() }
        }
        var copies: [ObjectIdentifier: Storage] = [:]
        for cell in cells { copies[ObjectIdentifier(cell.source)] = try cell.copy().get() }
        return try Self.rebuild(value, copies)
    }

    private func nextCell() -> Int? {
        lock.withLock {
            guard next < cells.count else { return nil }
            next += 1
            return next - 1
        }
    }

    /// The copies' buffers (and the reused buffers of copies that failed), by size, for the next
    /// snapshot.
    func releaseBuffers() -> [Int: [Storage]] {
        var pool: [Int: [Storage]] = [:]
        for cell in cells {
            if let storage = (try? cell.copy().get()) ?? cell.buffer { pool[storage.byteCount, default: []].append(storage) }
        }
        return pool
    }

    private static func rebuild(_ value: StateValue, _ copies: [ObjectIdentifier: Storage]) throws -> StateValue {
        func map(_ value: StateValue) throws -> StateValue {
            switch value {
            case .tensor(let tensor):
                var copy = try Tensor(
                    storage: copies[ObjectIdentifier(tensor.storage)]!, dtype: tensor.dtype, shape: tensor.shape,
                    strides: tensor.strides, storageOffset: tensor.storageOffset)
                copy.requiresGrad = tensor.requiresGrad
                copy.isParameter = tensor.isParameter
                return .tensor(copy)
            case .dict(var dict):
                for (key, item) in dict.items { dict.items[key] = try map(item) }
                for (key, item) in dict.attributes { dict.attributes[key] = try map(item) }
                return .dict(dict)
            case .list(let items): return .list(try items.map(map))
            case .tuple(let items): return .tuple(try items.map(map))
            case .set(let items): return .set(try items.map(map))
            default: return value
            }
        }
        return try map(value)
    }
}
