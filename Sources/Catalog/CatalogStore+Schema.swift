/// The catalog's schema, as numbered migrations (docs/CATALOG.md describes the tables).
///
/// `PRAGMA user_version` holds the number of migrations applied; opening a catalog applies the
/// missing ones in one `BEGIN IMMEDIATE` transaction, so two processes opening a new catalog at
/// once cannot both apply them. A catalog whose version is higher than ``migrations`` knows was
/// written by a newer ckpt and is refused rather than misread.
extension CatalogStore {
    /// `PRAGMA application_id`: "ckpt" in ASCII, so another application's SQLite file is told apart.
    static let applicationID: Int32 = 0x636B_7074

    /// A named schema step.
    struct Migration {
        var name: String
        var sql: String
    }

    /// Migration `i` takes the schema from version `i` to `i + 1`.
    static let migrations: [Migration] = [
        Migration(
            name: "runs, checkpoints and metrics",
            sql: """
                CREATE TABLE runs (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    created REAL NOT NULL
                );
                CREATE TABLE checkpoints (
                    id INTEGER PRIMARY KEY,
                    run_id INTEGER NOT NULL REFERENCES runs(id),
                    step INTEGER NOT NULL CHECK (step >= 0),
                    path TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('writing', 'committed', 'deleting', 'corrupt')),
                    bytes INTEGER,
                    manifest_crc32 INTEGER,
                    created REAL NOT NULL,
                    committed REAL,
                    writer TEXT,
                    UNIQUE (run_id, step)
                );
                CREATE INDEX checkpoints_by_status ON checkpoints (run_id, status, step);
                CREATE TABLE metrics (
                    checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    value REAL,
                    PRIMARY KEY (checkpoint_id, name)
                ) WITHOUT ROWID;
                CREATE INDEX metrics_by_name ON metrics (name, value);
                """),
    ]

    /// Brings the schema up to date.
    ///
    /// - Throws: ``CatalogError`` `.notACatalog` for another application's database,
    ///   `.schemaTooNew` for a newer catalog, or what SQLite reports.
    func migrate(_ db: SQLiteConnection) throws {
        func versions() throws -> (user: Int, application: Int32, tables: Int) {
            let user = try db.query("PRAGMA user_version") { Int($0.integer(0)) }.first ?? 0
            let application = try db.query("PRAGMA application_id") { Int32(truncatingIfNeeded: $0.integer(0)) }.first ?? 0
            let tables = try db.query("SELECT count(*) FROM sqlite_master") { Int($0.integer(0)) }.first ?? 0
            return (user, application, tables)
        }
        func check(_ found: (user: Int, application: Int32, tables: Int)) throws {
            if found.application != Self.applicationID, found.application != 0 || found.tables > 0 {
                throw CatalogError(
                    .notACatalog, "an SQLite database, but not a ckpt catalog (application id \(found.application), \(found.tables) schema objects)",
                    file: db.path, remedy: "point at a run directory, or move this file aside")
            }
            // user_version is a signed 32-bit field: a damaged or foreign file can hold a negative one.
            if found.user < 0 {
                throw CatalogError(
                    .corrupt, "catalog schema version \(found.user) is negative; no ckpt writes that",
                    file: db.path, remedy: "move this file aside, or run reconcile(rebuild: true) (ckpt-tool reconcile DIR --rebuild) to recreate it from the checkpoint files")
            }
            if found.user > Self.migrations.count {
                throw CatalogError(
                    .schemaTooNew, "catalog schema version \(found.user) is newer than this ckpt knows (\(Self.migrations.count))",
                    file: db.path, remedy: "use a newer ckpt")
            }
        }
        let found = try versions()
        try check(found)
        guard found.user < Self.migrations.count else { return }
        try db.writeTransaction {
            let now = try versions()
            try check(now)
            for migration in Self.migrations[now.user...] {
                try db.execute(migration.sql)
            }
            try db.execute("PRAGMA application_id = \(Self.applicationID); PRAGMA user_version = \(Self.migrations.count)")
        }
    }
}
