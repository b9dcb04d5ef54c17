/// An error reading, writing or interpreting a checkpoint.
///
/// It names what went wrong (``code``), where (``file``, and the zip entry or key path in
/// ``path``), and what was expected versus found, so that a message in a terminal is enough to
/// find the problem without a debugger.
public struct CheckpointError: Error, Sendable, CustomStringConvertible {
    /// A kind of failure, stable across releases, for callers that branch on the cause.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The operating system refused an operation (open, read, write, fsync, rename, mmap).
        public static let io = Code("io")
        /// The file is not in the format it was opened as (not a zip, not safetensors, ...).
        public static let notRecognized = Code("notRecognized")
        /// The file ends before the structure it describes.
        public static let truncated = Code("truncated")
        /// A structure is inconsistent with itself (bad offsets, overlaps, duplicates, bad JSON).
        public static let corrupt = Code("corrupt")
        /// Stored bytes do not match their recorded CRC-32.
        public static let checksumMismatch = Code("checksumMismatch")
        /// A record the format requires is absent.
        public static let missingEntry = Code("missingEntry")
        /// An archive entry name that could escape a directory (`..`, absolute, backslash).
        public static let unsafeName = Code("unsafeName")
        /// A size, offset or count that does not fit where it must.
        public static let outOfBounds = Code("outOfBounds")
        /// The file may be well formed, but it holds or declares more than a cap of
        /// ``LoadOptions/limits`` allows (memo entries, nesting, inflated bytes, DCP chunks); the
        /// message names the cap, which can be raised for a file you trust. Kept apart from
        /// ``outOfBounds`` (a file inconsistent with itself) because the remedy differs.
        public static let limitExceeded = Code("limitExceeded")
        /// A dtype name this library does not know.
        public static let unknownDType = Code("unknownDType")
        /// A Python object outside the weights-only allow-list (a ``PickledObject``) where it may
        /// not go: a write without ``SaveOptions/keepObjects``; `CheckpointVerifier` also reports
        /// such globals with it (as a warning). Reading a checkpoint file never fails with it: the
        /// reader keeps such objects as placeholders. A DCP checkpoint's `.metadata` is the exception:
        /// it may name only DCP's own dataclasses, and any other global fails the read with it.
        public static let forbiddenGlobal = Code("forbiddenGlobal")
        /// A pickle that breaks the pickle machine's rules (stack underflow, bad memo index, ...).
        public static let malformedPickle = Code("malformedPickle")
        /// Valid input this library does not support (a Python int wider than 64 bits, ...).
        public static let unsupported = Code("unsupported")
        /// A value has a different type or shape than the operation requires.
        public static let typeMismatch = Code("typeMismatch")
        /// A caller passed an argument that cannot be used.
        public static let invalidArgument = Code("invalidArgument")
    }

    /// Where in this library's sources the error was raised.
    public struct SourceLocation: Sendable, CustomStringConvertible {
        public var function: String
        public var file: String
        public var line: Int
        public var description: String { "\(file):\(line) in \(function)" }

        /// Shared by the other modules' error types (Catalog's), which record the same facts.
        package init(function: String, file: String, line: Int) {
            self.function = function
            self.file = file
            self.line = line
        }
    }

    public var code: Code
    /// What went wrong, in words.
    public var message: String
    /// The file being read or written.
    public var file: String?
    /// The zip entry, JSON field or key path (`optimizer/state/0/sum`) the error is about.
    public var path: String?
    /// What the format requires here.
    public var expected: String?
    /// What the input holds instead.
    public var found: String?
    /// The underlying error, if another layer raised one.
    public var cause: (any Error & Sendable)?
    public var location: SourceLocation

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - message: What went wrong.
    ///   - file: The file being read or written.
    ///   - path: The entry or key path the error is about.
    ///   - expected: What the format requires.
    ///   - found: What the input holds.
    ///   - cause: The underlying error.
    public init(
        _ code: Code, _ message: String, file: String? = nil, path: String? = nil,
        expected: String? = nil, found: String? = nil, cause: (any Error & Sendable)? = nil,
        function: String = #function, sourceFile: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.file = file
        self.path = path
        self.expected = expected
        self.found = found
        self.cause = cause
        self.location = SourceLocation(function: function, file: sourceFile, line: line)
    }

    /// Creates the error of a failed system call: the message is what was being done followed by
    /// the system's reason (`cannot open: No such file or directory`), and the call and its errno
    /// stay behind as the ``cause`` for callers that branch on them.
    ///
    /// - Parameters:
    ///   - code: The kind of failure, usually `.io`.
    ///   - action: What was being done (`cannot open`).
    ///   - file: The file being read or written.
    ///   - systemCall: The call that failed and its errno.
    package init(
        _ code: Code, _ action: String, file: String?, systemCall: SystemCallError,
        function: String = #function, sourceFile: String = #fileID, line: Int = #line
    ) {
        self.init(
            code, "\(action): \(systemCall.reason)", file: file, cause: systemCall,
            function: function, sourceFile: sourceFile, line: line)
    }

    /// `file.pt: archive/data/3: record too short (expected 400 bytes, found 396) [truncated]`
    public var description: String {
        var text = ""
        if let file { text += "\(file): " }
        if let path { text += "\(path): " }
        text += message
        switch (expected, found) {
        case let (e?, f?): text += " (expected \(e), found \(f))"
        case let (e?, nil): text += " (expected \(e))"
        case let (nil, f?): text += " (found \(f))"
        case (nil, nil): break
        }
        text += " [\(code)]"
        if let cause, !messageEndsWithReason(of: cause) { text += "\n  caused by: \(cause)" }
        return text
    }

    /// True when the message already ends with a system call's reason, so the one-line form
    /// (`cannot open: No such file or directory [io]`) says all a reader needs.
    private func messageEndsWithReason(of cause: any Error) -> Bool {
        guard let call = cause as? SystemCallError else { return false }
        return message.hasSuffix(": " + call.reason)
    }

    /// The same error with the file filled in if it was not set yet.
    public func inFile(_ file: String) -> CheckpointError {
        var copy = self
        if copy.file == nil { copy.file = file }
        return copy
    }
}
