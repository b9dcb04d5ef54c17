import Checkpoint
import Foundation

/// Saves a training run's checkpoints into a run directory, keeps the ones a retention policy
/// asks for, and finds the newest one that is whole when training resumes.
///
/// A run directory holds the catalog, `catalog.sqlite` (SQLite, WAL mode), and the checkpoint
/// files, `checkpoints/<run>/step-000000100.ckpt` (the step zero-padded to nine digits, more
/// when larger; ordering always uses the step recorded in the catalog, never the name). Each
/// file carries its run, step and metrics in its manifest metadata, so the files alone rebuild
/// the catalog (``reconcile(directory:rebuild:verify:options:)``). docs/CATALOG.md describes the
/// layout, the schema and the order of operations that makes a crash at any point recoverable.
///
/// ```swift
/// let manager = try CheckpointManager(directory: runURL, options: .init(
///     retention: RetentionPolicy(keepLast: 3, keepBest: 2, metric: "loss", mode: .min), saveInterval: 100))
/// var state = try manager.restore()?.state ?? freshState()
/// for step in start..<steps {
///     train(&state)
///     if manager.shouldSave(step: step) { try manager.saveAsync(step: step, state: state, metrics: ["loss": loss]) }
/// }
/// try manager.close()
/// ```
///
/// One manager may be used from several threads. Several processes may use one run directory at
/// once (a trainer saving, an evaluator recording metrics, a tool listing): every write is one
/// `BEGIN IMMEDIATE` transaction and a lock held by another process is waited for up to
/// ``Options/busyTimeout``.
public final class CheckpointManager: @unchecked Sendable {
    /// How a manager saves, prunes and waits.
    public struct Options: Sendable {
        /// What to keep after each save (default: everything).
        public var retention: RetentionPolicy
        /// ``CheckpointManager/shouldSave(step:)`` is true for multiples of this (nil: every step).
        public var saveInterval: Int?
        /// fsync checkpoint files and commit catalog rows so they survive power loss (default
        /// true). False keeps every write atomic, for tests and scratch runs.
        public var durable: Bool
        /// Seconds a write waits for another process's catalog lock before failing with `.locked`.
        public var busyTimeout: Double
        /// Create the run directory and catalog when missing (default true). False for tools that
        /// only read: a missing catalog is then a `.notFound` error.
        public var createIfMissing: Bool
        /// Apply ``retention`` after each save (default true).
        public var pruneAfterSave: Bool

        /// Creates options.
        ///
        /// - Parameters:
        ///   - retention: What to keep.
        ///   - saveInterval: Save every this many steps.
        ///   - durable: fsync files and catalog commits.
        ///   - busyTimeout: Seconds to wait for another process's lock.
        ///   - createIfMissing: Create the directory and catalog.
        ///   - pruneAfterSave: Prune after each save.
        public init(
            retention: RetentionPolicy = .keepAll, saveInterval: Int? = nil, durable: Bool = true, busyTimeout: Double = 30,
            createIfMissing: Bool = true, pruneAfterSave: Bool = true
        ) {
            self.retention = retention
            self.saveInterval = saveInterval
            self.durable = durable
            self.busyTimeout = busyTimeout
            self.createIfMissing = createIfMissing
            self.pruneAfterSave = pruneAfterSave
        }
    }

    /// The run directory.
    public let directory: URL
    /// The run this manager saves into.
    public let run: String
    public let options: Options
    let store: CatalogStore

    /// Guards the async state below; waited on by ``wait()``.
    let asyncCondition = NSCondition()
    nonisolated(unsafe) var saveInFlight = false
    nonisolated(unsafe) var pendingError: CatalogError?
    nonisolated(unsafe) var lastAsyncEntry: CheckpointEntry?
    /// Snapshot buffers of the last finished async save, by size, reused by the next snapshot.
    nonisolated(unsafe) var snapshotPool: [Int: [Storage]] = [:]
    /// ``lastAsyncSaveWriterWaits``.
    nonisolated(unsafe) var lastSnapshotWaits: Double = 0
    /// Copy the whole snapshot on the caller's thread before ``saveAsync(step:state:metrics:)``
    /// returns, as it did before it was copy-on-write: for benchmarks that compare the two. Set it
    /// before the first save.
    nonisolated(unsafe) package var copiesSnapshotOnCall = false
    let worker = DispatchQueue(label: "ckpt.catalog.save", qos: .utility)

    /// Opens (or creates) a run directory's catalog.
    ///
    /// A newly created catalog in a directory that already holds checkpoint files is filled from
    /// them at once (as ``reconcile(verify:)`` would).
    ///
    /// - Parameters:
    ///   - directory: The run directory.
    ///   - run: The run's name: letters, digits, `.`, `_` and `-`, not starting with `.` (default `main`).
    ///   - options: Retention, intervals, durability.
    /// - Throws: ``CatalogError``: `.invalidArgument` for a bad run name or policy; `.notFound`
    ///   without ``Options/createIfMissing`` when there is no catalog; `.notADatabase`,
    ///   `.corrupt`, `.notACatalog` or `.schemaTooNew` for a catalog that cannot be used (run
    ///   ``reconcile(directory:rebuild:verify:options:)`` with `rebuild: true`); `.locked`, `.io`.
    public convenience init(directory: URL, run: String = "main", options: Options = Options()) throws {
        try self.init(directory: directory, run: run, options: options, fillNewCatalog: true)
    }

    /// Opens the catalog; `fillNewCatalog` reconciles a newly created one at once.
    init(directory: URL, run: String, options: Options, fillNewCatalog: Bool) throws {
        try Self.validateRunName(run)
        try options.retention.validate()
        if let interval = options.saveInterval, interval < 1 {
            throw CatalogError(.invalidArgument, "saveInterval must be at least 1 (found \(interval))")
        }
        self.directory = directory.standardizedFileURL
        self.run = run
        self.options = options
        if options.createIfMissing {
            do {
                try FileManager.default.createDirectory(at: self.directory.appendingPathComponent(Self.checkpointsFolder), withIntermediateDirectories: true)
            } catch {
                throw CatalogError(.io, "cannot create the run directory", file: directory.path, cause: CheckpointFileInfo.sendable(error))
            }
        }
        store = try CatalogStore(
            path: Self.catalogURL(in: self.directory).path, create: options.createIfMissing, durable: options.durable,
            busyTimeout: options.busyTimeout)
        if fillNewCatalog, store.created, options.createIfMissing {
            _ = try reconcile(store: store, directory: self.directory, verify: false)
        }
    }

    /// The folder under the run directory that holds one folder of checkpoints per run.
    public static let checkpointsFolder = "checkpoints"

    /// The catalog file of a run directory.
    public static func catalogURL(in directory: URL) -> URL {
        directory.appendingPathComponent(CatalogStore.fileName)
    }

    /// The file name of a step's checkpoint: `step-000000100.ckpt`.
    public static func fileName(step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 9 - digits.count)) + digits + ".ckpt"
    }

    /// The path of a run's step relative to the run directory.
    static func relativePath(run: String, step: Int) -> String {
        "\(checkpointsFolder)/\(run)/\(fileName(step: step))"
    }

    /// Where this run's checkpoint for `step` is (or would be) written.
    public func checkpointURL(step: Int) -> URL {
        directory.appendingPathComponent(Self.relativePath(run: run, step: step))
    }

    static func validateRunName(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard !name.isEmpty, name.utf8.count <= 100, allowed, !name.hasPrefix(".") else {
            throw CatalogError(
                .invalidArgument, "run name \"\(name)\" is not allowed: use 1 to 100 letters, digits, '.', '_' or '-', not starting with '.'")
        }
    }

    /// Whether `step` is one to save at: a multiple of ``Options/saveInterval`` (every step when nil).
    ///
    /// - Parameter step: The training step.
    /// - Returns: True when a checkpoint should be saved.
    public func shouldSave(step: Int) -> Bool {
        guard let interval = options.saveInterval else { return true }
        return step % interval == 0
    }

    // MARK: Queries

    /// This run's rows matching an SQL condition, in step order.
    func rows(where condition: String = "1", _ bindings: [SQLiteValue] = [], orderBy: String = "c.step") throws -> [CheckpointRow] {
        try store.read { db in
            try CatalogStore.rows(db, directory: directory, where: "r.name = ? AND (\(condition))", [.text(run)] + bindings, orderBy: orderBy)
        }
    }

    /// The newest committed checkpoint, without opening its file. A save that has not committed
    /// (including an async save still in flight) is never reported.
    ///
    /// - Returns: The entry, or nil when the run has none.
    /// - Throws: ``CatalogError`` if the catalog cannot be read.
    public func latest() throws -> CheckpointEntry? {
        try rows(where: "c.status = 'committed'", orderBy: "c.step DESC LIMIT 1").first?.entry
    }

    /// The committed checkpoint with the best value of a metric (NaN never counts as best; equal
    /// values go to the newer step), without opening its file.
    ///
    /// - Parameters:
    ///   - metric: The metric; nil takes the retention policy's.
    ///   - mode: Whether smaller or larger is better; nil takes the retention policy's.
    /// - Returns: The entry, or nil when no committed checkpoint has the metric.
    /// - Throws: ``CatalogError`` `.invalidArgument` when no metric is given or configured.
    public func best(metric: String? = nil, mode: MetricMode? = nil) throws -> CheckpointEntry? {
        try bestRows(metric: metric, mode: mode, limit: 1).first?.entry
    }

    /// The committed rows with a value of the metric, best first: `limit` of them from `offset` on.
    func bestRows(metric: String?, mode: MetricMode?, limit: Int, offset: Int = 0) throws -> [CheckpointRow] {
        guard let metric = metric ?? options.retention.metric else {
            throw CatalogError(.invalidArgument, "best() needs a metric (none given and none in the retention policy)")
        }
        let order = (mode ?? options.retention.mode) == .min ? "ASC" : "DESC"
        return try store.read { db in
            let ids = try db.query(
                """
                SELECT c.id FROM checkpoints c JOIN runs r ON r.id = c.run_id
                JOIN metrics m ON m.checkpoint_id = c.id AND m.name = ?
                WHERE r.name = ? AND c.status = 'committed' AND m.value IS NOT NULL
                ORDER BY m.value \(order), c.step DESC LIMIT \(limit) OFFSET \(offset)
                """, [.text(metric), .text(run)]
            ) { $0.integer(0) }
            guard !ids.isEmpty else { return [] }
            let rows = try CatalogStore.rows(
                db, directory: directory, where: "c.id IN (\(ids.map(String.init).joined(separator: ",")))", [])
            var position: [Int64: Int] = [:]
            for (index, id) in ids.enumerated() { position[id] = index }
            return rows.sorted { position[$0.id]! < position[$1.id]! }
        }
    }

    /// Every checkpoint of this run the catalog records, whatever its status, in step order.
    ///
    /// - Returns: The entries.
    /// - Throws: ``CatalogError`` if the catalog cannot be read.
    public func all() throws -> [CheckpointEntry] {
        try rows().map(\.entry)
    }

    /// The catalog's record of one step of this run.
    ///
    /// - Parameter step: The step.
    /// - Returns: The entry, or nil.
    /// - Throws: ``CatalogError`` if the catalog cannot be read.
    public func entry(step: Int) throws -> CheckpointEntry? {
        try rows(where: "c.step = ?", [.integer(Int64(step))]).first?.entry
    }

    /// Every run recorded in this directory's catalog.
    ///
    /// - Returns: The runs, by name.
    /// - Throws: ``CatalogError`` if the catalog cannot be read.
    public func runs() throws -> [RunInfo] {
        try store.read { try CatalogStore.runs($0) }
    }

    /// Every run recorded in a run directory's catalog, without creating anything.
    ///
    /// - Parameter directory: The run directory.
    /// - Returns: The runs, by name.
    /// - Throws: ``CatalogError`` `.notFound` when there is no catalog, or as ``init(directory:run:options:)``.
    public static func runs(in directory: URL) throws -> [RunInfo] {
        let store = try CatalogStore(path: catalogURL(in: directory).path, create: false, durable: true, busyTimeout: 30)
        defer { store.close() }
        return try store.read { try CatalogStore.runs($0) }
    }

    /// Every checkpoint recorded in a run directory's catalog, whatever its status, by run and
    /// step, without creating anything or opening a checkpoint file: what `ckpt-tool ls` lists.
    ///
    /// - Parameters:
    ///   - directory: The run directory.
    ///   - run: Only this run's checkpoints; nil for every run's.
    /// - Returns: The entries (none for a run the catalog does not record).
    /// - Throws: ``CatalogError`` `.notFound` when there is no catalog, or as ``init(directory:run:options:)``.
    public static func entries(in directory: URL, run: String? = nil) throws -> [CheckpointEntry] {
        let directory = directory.standardizedFileURL
        let store = try CatalogStore(path: catalogURL(in: directory).path, create: false, durable: true, busyTimeout: 30)
        defer { store.close() }
        return try store.read { db in
            try CatalogStore.rows(
                db, directory: directory, where: run == nil ? "1" : "r.name = ?", run.map { [.text($0)] } ?? [], orderBy: "r.name, c.step")
        }.map(\.entry)
    }

    /// The names of the runs recorded in a run directory's catalog, without creating anything or
    /// counting their checkpoints (``runs(in:)`` does).
    ///
    /// - Parameter directory: The run directory.
    /// - Returns: The names, sorted.
    /// - Throws: ``CatalogError`` `.notFound` when there is no catalog, or as ``init(directory:run:options:)``.
    public static func runNames(in directory: URL) throws -> [String] {
        let store = try CatalogStore(path: catalogURL(in: directory).path, create: false, durable: true, busyTimeout: 30)
        defer { store.close() }
        return try store.read { db in try db.query("SELECT name FROM runs ORDER BY name") { $0.text(0) } }
    }

    /// Records metrics for a saved step (an evaluator's results), merged with those it has.
    ///
    /// Metrics recorded this way live in the catalog only; the file keeps those it was saved
    /// with, so a rebuilt catalog has only those.
    ///
    /// - Parameters:
    ///   - step: A step of this run.
    ///   - metrics: Names and values; a name already present is overwritten.
    /// - Returns: False when the run has no checkpoint at that step.
    /// - Throws: ``CatalogError`` if the catalog cannot be written.
    @discardableResult
    public func recordMetrics(step: Int, metrics: [String: Double]) throws -> Bool {
        try store.write { db in
            guard let id = try db.query(
                "SELECT c.id FROM checkpoints c JOIN runs r ON r.id = c.run_id WHERE r.name = ? AND c.step = ?",
                [.text(run), .integer(Int64(step))], row: { $0.integer(0) }
            ).first else { return false }
            try CatalogStore.setMetrics(db, checkpoint: id, metrics, replacingAll: false)
            return true
        }
    }

    /// Waits for an async save in flight, then closes the catalog. Later calls fail.
    ///
    /// - Throws: The error of an async save that failed and was not yet reported.
    public func close() throws {
        defer {
            asyncCondition.withLock { snapshotPool = [:] }
            store.close()
        }
        try wait()
    }
}
