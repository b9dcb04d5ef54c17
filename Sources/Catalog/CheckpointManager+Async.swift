import Checkpoint
import Foundation

extension CheckpointManager {
    /// Starts a save that runs in the background, returning once the state's tensors are copied.
    ///
    /// The copy (a snapshot taken on the caller's thread) is what gets written, so the caller
    /// may change the tensors as soon as this returns: a later optimizer step cannot tear the
    /// checkpoint. Writing, fsync, the catalog commit and pruning then run on a background
    /// thread, in the order ``save(step:state:metrics:)`` describes; until the commit, the save
    /// is never reported by ``latest()``, ``best(metric:mode:)`` or ``restore(step:)``.
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
        } catch {
            throw CatalogError(.checkpoint, "cannot snapshot the state", step: step, cause: CheckpointFileInfo.sendable(error))
        }
        asyncCondition.withLock { saveInFlight = true }
        worker.async { [self] in
            var entry: CheckpointEntry?
            var failure: CatalogError?
            do {
                entry = try performSave(step: step, state: snapshot.state, metrics: metrics)
            } catch let error as CatalogError {
                failure = error
            } catch {
                failure = CatalogError(.checkpoint, "async save failed", step: step, cause: CheckpointFileInfo.sendable(error))
            }
            let buffers = snapshot.releaseBuffers()
            asyncCondition.withLock {
                snapshotPool = buffers
                if let entry { lastAsyncEntry = entry }
                if let failure { pendingError = failure }
                saveInFlight = false
                asyncCondition.broadcast()
            }
        }
    }

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

/// A deep copy of a state tree's tensors: every storage copied once (tensors that shared one
/// share its copy), into buffers reused from an earlier snapshot when sizes match. Large copies
/// are spread over the CPU cores.
struct StateSnapshot: @unchecked Sendable {
    let state: StateValue
    private let storages: [Storage]

    init(_ value: StateValue, reusing pool: [Int: [Storage]]) throws {
        var pool = pool
        var sources: [Storage] = []
        var reused: [Storage?] = []
        var seen = Set<ObjectIdentifier>()
        for source in value.storagesInOrder where seen.insert(ObjectIdentifier(source)).inserted {
            sources.append(source)
            if var free = pool[source.byteCount], let buffer = free.popLast() {
                pool[source.byteCount] = free
                reused.append(buffer)
            } else {
                reused.append(nil)
            }
        }
        // Reading a lazily loaded storage runs its CRC check once; do it before the threads start.
        for source in sources { try source.verify() }
        // Storages without a buffer to reuse are copied into new memory whole (no zero fill
        // first), one storage per core; reused buffers are filled in chunks on all cores.
        let fresh = sources.indices.filter { reused[$0] == nil }.map { sources[$0] }
        let made = try Self.parallel(fresh.count) { index in try fresh[index].copy() }
        var targets = reused
        for (index, storage) in zip(sources.indices.filter { reused[$0] == nil }, made) { targets[index] = storage }
        let pairs = sources.indices.filter { reused[$0] != nil }.map { (source: sources[$0], target: targets[$0]!) }
        try Self.copy(pairs)
        var copies: [ObjectIdentifier: Storage] = [:]
        for (source, target) in zip(sources, targets) { copies[ObjectIdentifier(source)] = target! }
        state = try Self.rebuild(value, copies)
        storages = targets.map { $0! }
    }

    /// Runs `body` for 0..<count on all cores and returns the results in order.
    private static func parallel<T>(_ count: Int, _ body: @Sendable (Int) throws -> T) throws -> [T] {
        let lock = NSLock()
        nonisolated(unsafe) var results = [Result<T, any Error>?](repeating: nil, count: count)
        DispatchQueue.concurrentPerform(iterations: count) { index in
            let result = Result { try body(index) }
            lock.withLock { results[index] = result }
        }
        return try results.map { try $0!.get() }
    }

    /// The copy's buffers, by size, for the next snapshot.
    func releaseBuffers() -> [Int: [Storage]] {
        var pool: [Int: [Storage]] = [:]
        for storage in storages { pool[storage.byteCount, default: []].append(storage) }
        return pool
    }

    /// Copies in chunks of at most 32 MiB, on all cores.
    private static func copy(_ pairs: [(source: Storage, target: Storage)]) throws {
        let chunk = 32 << 20
        var planned: [(pair: Int, offset: Int, count: Int)] = []
        for (index, pair) in pairs.enumerated() {
            var offset = 0
            while offset < pair.source.byteCount {
                let count = min(chunk, pair.source.byteCount - offset)
                planned.append((index, offset, count))
                offset += count
            }
        }
        let jobs = planned
        let failures = NSLock()
        nonisolated(unsafe) var failure: (any Error)?
        DispatchQueue.concurrentPerform(iterations: jobs.count) { index in
            let job = jobs[index]
            let pair = pairs[job.pair]
            do {
                try pair.source.withUnsafeBytes { source in
                    try pair.target.withUnsafeMutableBytes { target in
                        (target.baseAddress! + job.offset).copyMemory(from: source.baseAddress! + job.offset, byteCount: job.count)
                    }
                }
            } catch {
                failures.withLock { failure = failure ?? error }
            }
        }
        if let failure { throw failure }
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
