import CSQLite
import Catalog
import Foundation
import TestSupport
import Testing

/// The catalog file itself: WAL, schema version, and clear errors for files that cannot be used.
@Suite struct CatalogFileTests {
    typealias F = CatalogFixtures

    /// Runs one SQL statement on a database file with the system library, returning the first column of each row.
    static func sql(_ path: String, _ statement: String) throws -> [String] {
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw CatalogError(.io, "open") }
        defer { sqlite3_close(db) }
        var rows: [String] = []
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, statement, -1, &stmt, nil) == SQLITE_OK else {
            throw CatalogError(.sqlite, String(cString: sqlite3_errmsg(db)))
        }
        defer { sqlite3_finalize(stmt) }
        while sqlite3_step(stmt) == SQLITE_ROW {
            rows.append(sqlite3_column_text(stmt, 0).map { String(cString: $0) } ?? "NULL")
        }
        return rows
    }

    @Test func theCatalogIsAVersionedWALDatabase() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try manager.save(step: 1, state: try F.state(step: 1), metrics: ["loss": 1])
        let path = CheckpointManager.catalogURL(in: run.url).path
        #expect(try Self.sql(path, "PRAGMA journal_mode") == ["wal"])
        #expect(try Self.sql(path, "PRAGMA user_version") == ["1"])
        #expect(try Self.sql(path, "PRAGMA application_id") == [String(0x636B_7074)])
        #expect(try Self.sql(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") == ["checkpoints", "metrics", "runs"])
        #expect(try Self.sql(path, "SELECT status || ' ' || path FROM checkpoints") == ["committed checkpoints/main/step-000000001.ckpt"])
        try manager.close()
        // Opening again (a second process, a later run) migrates nothing and sees the same rows.
        let again = try CheckpointManager(directory: run.url, options: F.options())
        #expect(try again.all().map(\.step) == [1])
    }

    @Test func aFileThatIsNotSQLiteIsAClearError() throws {
        let run = try TemporaryDirectory()
        let catalog = CheckpointManager.catalogURL(in: run.url)
        try Data(repeating: 0x41, count: 4096).write(to: catalog)
        let error = #expect(throws: CatalogError.self) { try CheckpointManager(directory: run.url, options: F.options()) }
        #expect(error?.code == .notADatabase)
        #expect(error?.file == catalog.path)
        #expect(error.map { "\($0)".contains("rebuild") } == true)
    }

    @Test func aDamagedCatalogIsAClearError() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        for step in 0..<50 { try manager.save(step: step, state: try F.state(step: step), metrics: ["loss": Double(step)]) }
        try manager.flush()
        try manager.close()
        // Overwrite every page after the first (the header stays valid: SQLite opens the file,
        // then finds the damage).
        let catalog = CheckpointManager.catalogURL(in: run.url)
        var bytes = try Data(contentsOf: catalog)
        #expect(bytes.count > 8192)
        for index in 4096..<bytes.count { bytes[index] = UInt8(truncatingIfNeeded: index &* 31) }
        try bytes.write(to: catalog)
        let error = #expect(throws: CatalogError.self) {
            let damaged = try CheckpointManager(directory: run.url, options: F.options())
            _ = try damaged.all()
            _ = try damaged.reconcile()
        }
        #expect(error?.code == .corrupt)
        // The files alone rebuild it.
        let report = try CheckpointManager.reconcile(directory: run.url, rebuild: false, options: F.options())
        #expect(report.repairs.first?.kind == .movedCatalogAside)
        #expect(report.repairs.filter { $0.kind == .addedUnrecordedFile }.count == 50)
        let rebuilt = try CheckpointManager(directory: run.url, options: F.options())
        #expect(try rebuilt.all().map(\.step) == Array(0..<50))
        #expect(try rebuilt.best(metric: "loss", mode: .max)?.step == 49)
        #expect(try Self.sql(CheckpointManager.catalogURL(in: run.url).path, "PRAGMA integrity_check") == ["ok"])
    }

    @Test func anotherApplicationsDatabaseIsNotACatalog() throws {
        let run = try TemporaryDirectory()
        let catalog = CheckpointManager.catalogURL(in: run.url).path
        _ = try Self.sql(catalog, "CREATE TABLE notes (text TEXT)")
        let error = #expect(throws: CatalogError.self) { try CheckpointManager(directory: run.url, options: F.options()) }
        #expect(error?.code == .notACatalog)
        #expect(try Self.sql(catalog, "SELECT count(*) FROM sqlite_master") == ["1"])
    }

    /// A run directory whose new catalog's `user_version` is then set to `version`.
    static func catalog(atSchemaVersion version: Int) throws -> TemporaryDirectory {
        let run = try TemporaryDirectory()
        try CheckpointManager(directory: run.url, options: F.options()).close()
        _ = try sql(CheckpointManager.catalogURL(in: run.url).path, "PRAGMA user_version = \(version)")
        return run
    }

    @Test func aNewerSchemaIsRefused() throws {
        let run = try Self.catalog(atSchemaVersion: 99)
        let error = #expect(throws: CatalogError.self) { try CheckpointManager(directory: run.url, options: F.options()) }
        #expect(error?.code == .schemaTooNew)
    }

    /// Found by fuzz-catalog: a negative user_version sliced the migration list before its start
    /// and trapped.
    @Test func aNegativeSchemaVersionIsCorruptNotACrash() throws {
        let run = try Self.catalog(atSchemaVersion: -5)
        let error = #expect(throws: CatalogError.self) { try CheckpointManager(directory: run.url, options: F.options()) }
        #expect(error?.code == .corrupt)
        #expect(throws: CatalogError.self) { try CheckpointManager.runs(in: run.url) }

        // The fuzzer's own input (user_version -256), kept in its seed corpus.
        let found = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus/fuzz-catalog/regression-negative-user-version.sqlite")
        let other = try TemporaryDirectory()
        try FileManager.default.copyItem(at: found, to: CheckpointManager.catalogURL(in: other.url))
        let fuzzed = #expect(throws: CatalogError.self) { try CheckpointManager.runs(in: other.url) }
        #expect(fuzzed?.code == .corrupt)
    }

    @Test func aLockHeldTooLongIsAClearErrorAndADeadHolderReleasesIt() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try manager.save(step: 1, state: try F.state(step: 1))
        let output = run.url.appendingPathComponent("hold.out")
        let holder = try F.start(["hold", run.url.path, "30"], output: output)
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(20)
        while (try? String(contentsOf: output, encoding: .utf8))?.contains("locked") != true, Date() < deadline { usleep(10_000) }
        var options = F.options()
        options.busyTimeout = 0.3
        let impatient = try CheckpointManager(directory: run.url, options: options)
        // Readers are not blocked by the writer (WAL).
        #expect(try impatient.latest()?.step == 1)
        let error = #expect(throws: CatalogError.self) { try impatient.save(step: 2, state: try F.state(step: 2)) }
        #expect(error?.code == .locked)
        #expect(error.map { "\($0)".contains("busy timeout") } == true)
        // The holder dies: the system releases its lock at once.
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        try impatient.save(step: 2, state: try F.state(step: 2))
        #expect(try impatient.latest()?.step == 2)
        #expect(try Self.sql(CheckpointManager.catalogURL(in: run.url).path, "PRAGMA integrity_check") == ["ok"])
    }
}
