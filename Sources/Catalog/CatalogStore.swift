import Foundation

/// The SQLite catalog of one run directory: every statement the manager runs, each transaction
/// run whole under one lock so threads of one process never interleave inside a transaction.
///
/// Rows are only ever changed with conditions on their current status (`WHERE status =
/// 'writing'`), so two processes working on one catalog cannot move a row backwards.
final class CatalogStore: @unchecked Sendable {
    /// The catalog's file name inside the run directory.
    static let fileName = "catalog.sqlite"

    let path: String
    private let lock = NSLock()
    private let db: SQLiteConnection
    /// True when this open created the catalog's schema (a new or an empty file).
    private(set) var created = false

    /// Opens the catalog, in WAL mode, and brings its schema up to date.
    ///
    /// - Parameters:
    ///   - path: The catalog file.
    ///   - create: Create it when missing.
    ///   - durable: `synchronous = FULL` (a commit survives power loss) rather than `NORMAL`.
    ///   - busyTimeout: Seconds to wait for another process's lock.
    /// - Throws: ``CatalogError``: `.notFound` (also for an empty file when not `create`),
    ///   `.notADatabase`, `.corrupt`, `.notACatalog`, `.schemaTooNew`, `.locked`, `.io`.
    init(path: String, create: Bool, durable: Bool, busyTimeout: Double) throws {
        self.path = path
        db = try SQLiteConnection(path: path, create: create, busyTimeout: busyTimeout)
        // Reading the schema first makes a file that is not SQLite, or is damaged, fail here with
        // its own code rather than in the first real query.
        let before = try db.query("PRAGMA user_version") { Int($0.integer(0)) }.first ?? 0
        // An empty file (a creation that died before the schema) is no catalog to a reader, which
        // must not write one: setting WAL and migrating would.
        if !create, before == 0, try db.query("SELECT count(*) FROM sqlite_master", row: { $0.integer(0) }).first == 0 {
            throw CatalogError(
                .notFound, "an empty file, not a catalog", file: path,
                remedy: "run ckpt-tool reconcile DIR (reconcile(directory:)) to create the catalog from the checkpoint files")
        }
        let mode = try db.query("PRAGMA journal_mode") { $0.text(0) }.first ?? ""
        if mode.lowercased() != "wal" {
            let now = try db.query("PRAGMA journal_mode = WAL") { $0.text(0) }.first ?? ""
            guard now.lowercased() == "wal" else {
                throw CatalogError(.io, "cannot put the catalog in WAL mode (journal mode is \(now))", file: path)
            }
        }
        try db.execute("PRAGMA synchronous = \(durable ? "FULL" : "NORMAL"); PRAGMA foreign_keys = ON")
        try migrate(db)
        created = before == 0
    }

    /// Closes the connection; later calls fail.
    func close() { lock.withLock { db.close() } }

    /// Runs `body` with the connection, alone.
    @discardableResult
    func withConnection<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try lock.withLock { try body(db) }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction.
    @discardableResult
    func write<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try lock.withLock { try db.writeTransaction { try body(db) } }
    }

    /// Runs `body` in one read transaction (one consistent snapshot).
    func read<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try lock.withLock { try db.readTransaction { try body(db) } }
    }
}

// MARK: - Rows

/// A checkpoint row with its database ids.
struct CheckpointRow: Sendable {
    var id: Int64
    var runID: Int64
    var writer: String?
    var entry: CheckpointEntry
}

extension CatalogStore {
    static let rowColumns = "c.id, c.run_id, r.name, c.step, c.path, c.status, c.bytes, c.manifest_crc32, c.created, c.committed, c.writer"

    /// Reads rows selected by `whereClause` (over `checkpoints c JOIN runs r`), with their metrics.
    static func rows(
        _ db: SQLiteConnection, directory: URL, where whereClause: String, _ bindings: [SQLiteValue], orderBy: String = "c.step"
    ) throws -> [CheckpointRow] {
        var rows = try db.query(
            "SELECT \(rowColumns) FROM checkpoints c JOIN runs r ON r.id = c.run_id WHERE \(whereClause) ORDER BY \(orderBy)", bindings
        ) { row in
            let relative = row.text(4)
            return CheckpointRow(
                id: row.integer(0), runID: row.integer(1), writer: row.optionalText(10),
                entry: CheckpointEntry(
                    run: row.text(2), step: Int(row.integer(3)), directory: directory,
                    relativePath: relative, status: CheckpointStatus(rawValue: row.text(5)) ?? .corrupt,
                    bytes: row.optionalInteger(6).map { Int($0) },
                    manifestCRC32: row.optionalInteger(7).flatMap { UInt32(exactly: $0) },
                    created: Date(timeIntervalSince1970: row.real(8)), committed: row.optionalReal(9).map(Date.init(timeIntervalSince1970:)),
                    metrics: [:]))
        }
        guard !rows.isEmpty else { return rows }
        var index: [Int64: Int] = [:]
        index.reserveCapacity(rows.count)
        for (position, row) in rows.enumerated() { index[row.id] = position }
        // One query for all metrics: a catalog of thousands of checkpoints lists in one pass.
        // (Every row selected: the metrics table alone, without looking up each metric's checkpoint.)
        let metricsQuery = rows.count <= 256
            ? ("SELECT checkpoint_id, name, value FROM metrics WHERE checkpoint_id IN (\(rows.map { String($0.id) }.joined(separator: ",")))", [SQLiteValue]())
            : whereClause == "1" ? ("SELECT checkpoint_id, name, value FROM metrics", [])
            : ("SELECT m.checkpoint_id, m.name, m.value FROM metrics m JOIN checkpoints c ON c.id = m.checkpoint_id JOIN runs r ON r.id = c.run_id WHERE \(whereClause)", bindings)
        try db.query(metricsQuery.0, metricsQuery.1) { row in
            guard let position = index[row.integer(0)] else { return }
            // Room for a few at once: grown one by one, each checkpoint's dictionary is copied again.
            if rows[position].entry.metrics.isEmpty { rows[position].entry.metrics.reserveCapacity(4) }
            rows[position].entry.metrics[row.text(1)] = row.optionalReal(2) ?? .nan
        }
        return rows
    }

    /// The id of a run, creating its row when `create` is true.
    static func runID(_ db: SQLiteConnection, name: String, create: Bool) throws -> Int64? {
        if let id = try db.query("SELECT id FROM runs WHERE name = ?", [.text(name)], row: { $0.integer(0) }).first { return id }
        guard create else { return nil }
        try db.run("INSERT INTO runs (name, created) VALUES (?, ?)", [.text(name), .real(Date().timeIntervalSince1970)])
        return db.lastInsertedRowID
    }

    /// Replaces a checkpoint's metrics.
    static func setMetrics(_ db: SQLiteConnection, checkpoint id: Int64, _ metrics: [String: Double], replacingAll: Bool) throws {
        if replacingAll { try db.run("DELETE FROM metrics WHERE checkpoint_id = ?", [.integer(id)]) }
        for (name, value) in metrics {
            // SQLite stores a bound NaN as NULL; NULL reads back as NaN.
            try db.run(
                "INSERT INTO metrics (checkpoint_id, name, value) VALUES (?, ?, ?) ON CONFLICT (checkpoint_id, name) DO UPDATE SET value = excluded.value",
                [.integer(id), .text(name), value.isNaN ? .null : .real(value)])
        }
    }

    /// Every run with its counts.
    static func runs(_ db: SQLiteConnection) throws -> [RunInfo] {
        var runs = try db.query("SELECT id, name, created FROM runs ORDER BY name") { row in
            (row.integer(0), RunInfo(name: row.text(1), created: Date(timeIntervalSince1970: row.real(2)), counts: [:], latestStep: nil, committedBytes: 0))
        }
        var index: [Int64: Int] = [:]
        for (position, run) in runs.enumerated() { index[run.0] = position }
        try db.query("SELECT run_id, status, count(*), max(step), sum(coalesce(bytes, 0)) FROM checkpoints GROUP BY run_id, status") { row in
            guard let position = index[row.integer(0)], let status = CheckpointStatus(rawValue: row.text(1)) else { return }
            runs[position].1.counts[status] = Int(row.integer(2))
            if status == .committed {
                runs[position].1.latestStep = Int(row.integer(3))
                runs[position].1.committedBytes = Int(row.integer(4))
            }
        }
        return runs.map(\.1)
    }
}
