import CSQLite
import Foundation

/// A value bound to or read from an SQL statement.
enum SQLiteValue: Sendable, Equatable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case null
}

/// One connection to an SQLite database: the thin wrapper the catalog needs (see the module
/// documentation for why not GRDB).
///
/// Not thread-safe by itself; ``CatalogStore`` serializes every use under one lock, so a
/// transaction on this connection is never interleaved with another caller's statements.
final class SQLiteConnection {
    let path: String
    private var handle: OpaquePointer?
    /// How long a writer waits for another process's lock (also for error messages).
    let busyTimeout: Double
    private let busyWait: SQLiteBusyWait

    /// Opens (and optionally creates) a database file.
    ///
    /// - Parameters:
    ///   - path: The file.
    ///   - create: Create the file when it does not exist.
    ///   - busyTimeout: Seconds to wait for another connection's lock before failing.
    /// - Throws: ``CatalogError`` `.notFound` when the file is missing and `create` is false,
    ///   `.io` when it cannot be opened.
    init(path: String, create: Bool, busyTimeout: Double) throws {
        self.path = path
        self.busyTimeout = busyTimeout
        busyWait = SQLiteBusyWait(timeout: busyTimeout)
        // No mutex of SQLite's own: CatalogStore already runs every use of a connection under its
        // lock, and SQLite's would be taken again for every column of every row read.
        var flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX
        if create { flags |= SQLITE_OPEN_CREATE }
        if !create, !FileManager.default.fileExists(atPath: path) {
            throw CatalogError(.notFound, "no catalog here", file: path, remedy: "check the run directory, or run ckpt-tool reconcile DIR (reconcile(directory:)) to create one from the checkpoint files")
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        handle = db
        guard rc == SQLITE_OK else {
            let error = failure(rc, "cannot open the catalog")
            sqlite3_close_v2(db)
            handle = nil
            throw error
        }
        sqlite3_extended_result_codes(db, 1)
        if let db { busyWait.install(on: db) }
    }

    deinit { close() }

    func close() {
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    /// Runs statements that return no rows we need (`PRAGMA x = y; CREATE ...`).
    func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) }
            sqlite3_free(message)
            throw failure(rc, "SQL failed: \(text ?? "")")
        }
    }

    /// Runs one statement with bindings and returns every row, each read by `row`.
    @discardableResult
    func query<T>(_ sql: String, _ bindings: [SQLiteValue] = [], row: (SQLiteRow) throws -> T) throws -> [T] {
        var statement: OpaquePointer?
        let prepared = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK, let statement else { throw failure(prepared, "cannot prepare SQL: \(sql)") }
        defer { sqlite3_finalize(statement) }
        for (index, value) in bindings.enumerated() {
            let position = Int32(index + 1)
            let rc: Int32
            switch value {
            case .integer(let v): rc = sqlite3_bind_int64(statement, position, v)
            case .real(let v): rc = sqlite3_bind_double(statement, position, v)
            case .text(let v): rc = sqlite3_bind_text(statement, position, v, -1, SQLiteConnection.transient)
            case .null: rc = sqlite3_bind_null(statement, position)
            }
            guard rc == SQLITE_OK else { throw failure(rc, "cannot bind parameter \(position)") }
        }
        var rows: [T] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw failure(rc, "SQL failed") }
            rows.append(try row(SQLiteRow(statement: statement)))
        }
        return rows
    }

    /// Runs one statement that returns no rows.
    ///
    /// - Returns: The number of rows it changed.
    @discardableResult
    func run(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> Int {
        try query(sql, bindings) { _ in () }
        return Int(sqlite3_changes(handle))
    }

    var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs `body` in a write transaction opened with `BEGIN IMMEDIATE`, so the write lock is
    /// taken (waiting up to the busy timeout) before anything is read: a deferred transaction that
    /// upgrades from reading to writing fails at once with SQLITE_BUSY under WAL, without waiting.
    ///
    /// - Returns: What `body` returns, after the commit.
    /// - Throws: What `body` throws (the transaction is rolled back), or ``CatalogError``.
    func writeTransaction<T>(_ body: () throws -> T) throws -> T {
        try transaction("BEGIN IMMEDIATE", body)
    }

    /// Runs `body` in a read transaction, so every query in it sees the same snapshot.
    func readTransaction<T>(_ body: () throws -> T) throws -> T {
        try transaction("BEGIN DEFERRED", body)
    }

    /// Runs `body` between `begin` and COMMIT, rolling back if it throws.
    private func transaction<T>(_ begin: String, _ body: () throws -> T) throws -> T {
        try execute(begin)
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if sqlite3_get_autocommit(handle) == 0 { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// Maps an SQLite result code to a ``CatalogError`` whose code callers can branch on.
    func failure(_ rc: Int32, _ what: String) -> CatalogError {
        let extended = handle.map { sqlite3_extended_errcode($0) } ?? rc
        let detail = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        let rebuild = "move the catalog aside, or run reconcile(rebuild: true) (ckpt-tool reconcile DIR --rebuild) to recreate it from the checkpoint files"
        switch rc & 0xff {
        case SQLITE_NOTADB:
            return CatalogError(.notADatabase, "\(what): not an SQLite database (\(detail))", file: path, sqliteCode: extended, remedy: rebuild)
        case SQLITE_CORRUPT:
            return CatalogError(.corrupt, "\(what): the catalog is damaged (\(detail))", file: path, sqliteCode: extended, remedy: rebuild)
        case SQLITE_BUSY, SQLITE_LOCKED:
            return CatalogError(
                .locked, "\(what): another process held the catalog's lock for more than the busy timeout (\(busyTimeout) s)",
                file: path, sqliteCode: extended,
                remedy: "find the process holding the catalog open (fuser \(path)); a lock held by a process that died is released by the system")
        case SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_FULL, SQLITE_READONLY, SQLITE_PERM:
            return CatalogError(.io, "\(what): \(detail)", file: path, sqliteCode: extended)
        default:
            return CatalogError(.sqlite, "\(what): \(detail)", file: path, sqliteCode: extended)
        }
    }

    /// SQLite copies the bound text (`SQLITE_TRANSIENT`, a macro Swift cannot import).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}

/// The current row of a statement, read by column index.
struct SQLiteRow {
    let statement: OpaquePointer

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }
    func integer(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }
    func optionalInteger(_ column: Int32) -> Int64? { isNull(column) ? nil : integer(column) }
    func real(_ column: Int32) -> Double { sqlite3_column_double(statement, column) }
    func optionalReal(_ column: Int32) -> Double? { isNull(column) ? nil : real(column) }
    func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(statement, column) else { return "" }
        return String(cString: pointer)
    }
    func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }
}
