import Checkpoint

/// An error from a checkpoint manager or its catalog.
///
/// It names what went wrong (``code``), the file (the catalog or a checkpoint), the step when one
/// is concerned, and the underlying error (a ``Checkpoint/CheckpointError`` for a checkpoint file
/// that cannot be written or read), so that a message in a terminal says what to do next.
public struct CatalogError: Error, Sendable, CustomStringConvertible {
    /// A kind of failure, stable across releases, for callers that branch on the cause.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The catalog file is not an SQLite database at all.
        public static let notADatabase = Code("notADatabase")
        /// The catalog is an SQLite database that SQLite reports as damaged.
        public static let corrupt = Code("corrupt")
        /// An SQLite database, but not a ckpt catalog (another application's id or tables).
        public static let notACatalog = Code("notACatalog")
        /// The catalog was written by a newer ckpt whose schema this one does not know.
        public static let schemaTooNew = Code("schemaTooNew")
        /// Another process held the catalog's write lock for longer than the busy timeout.
        public static let locked = Code("locked")
        /// The operating system refused an operation on the run directory or catalog (including a full disk).
        public static let io = Code("io")
        /// Any other SQLite failure; ``sqliteCode`` holds SQLite's extended result code.
        public static let sqlite = Code("sqlite")
        /// Writing or reading a checkpoint file failed; ``cause`` holds the ``Checkpoint/CheckpointError``.
        public static let checkpoint = Code("checkpoint")
        /// There is no catalog, run or checkpoint by the name or step asked for.
        public static let notFound = Code("notFound")
        /// Checkpoints exist, but none of those asked for loads and verifies.
        public static let noValidCheckpoint = Code("noValidCheckpoint")
        /// Another live process is saving or deleting the same step.
        public static let conflict = Code("conflict")
        /// A caller passed an argument that cannot be used.
        public static let invalidArgument = Code("invalidArgument")
    }

    /// Where in this library's sources the error was raised.
    public typealias SourceLocation = CheckpointError.SourceLocation

    public var code: Code
    /// What went wrong, in words.
    public var message: String
    /// The catalog or checkpoint file concerned.
    public var file: String?
    /// The training step concerned.
    public var step: Int?
    /// SQLite's extended result code, when SQLite reported the failure.
    public var sqliteCode: Int32?
    /// What the caller can do about it (`run reconcile(rebuild: true)`), when there is one thing to do.
    public var remedy: String?
    /// The underlying error, if another layer raised one.
    public var cause: (any Error & Sendable)?
    public var location: SourceLocation

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - message: What went wrong.
    ///   - file: The catalog or checkpoint file.
    ///   - step: The training step.
    ///   - sqliteCode: SQLite's extended result code.
    ///   - remedy: What to do about it.
    ///   - cause: The underlying error.
    public init(
        _ code: Code, _ message: String, file: String? = nil, step: Int? = nil, sqliteCode: Int32? = nil,
        remedy: String? = nil, cause: (any Error & Sendable)? = nil,
        function: String = #function, sourceFile: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.file = file
        self.step = step
        self.sqliteCode = sqliteCode
        self.remedy = remedy
        self.cause = cause
        self.location = SourceLocation(function: function, file: sourceFile, line: line)
    }

    /// `runs/demo/catalog.sqlite: not an SQLite database [notADatabase]` with the remedy and cause
    /// on lines of their own.
    public var description: String {
        var text = ""
        if let file { text += "\(file): " }
        if let step { text += "step \(step): " }
        text += message
        if let sqliteCode { text += " (SQLite code \(sqliteCode))" }
        text += " [\(code)]"
        if let remedy { text += "\n  to fix: \(remedy)" }
        if let cause { text += "\n  caused by: \(cause)" }
        return text
    }
}
