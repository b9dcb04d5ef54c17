/// An error raised by an optimizer: an invalid option, a parameter-group conflict, a state dict
/// that does not fit, or a step that cannot run.
///
/// Where PyTorch raises for the same condition, ``message`` is PyTorch's message word for word, so
/// logs from both frameworks read alike; ``code`` says which Python exception torch would raise.
public struct OptimizerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A kind of failure, stable across releases, for callers that branch on the cause.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's stable name.
        public let rawValue: String
        /// Creates a code from its name.
        private init(_ rawValue: String) { self.rawValue = rawValue }
        /// The code's name.
        public var description: String { rawValue }

        /// An option or argument outside its valid range (torch's `ValueError`).
        public static let invalidValue = Code("invalidValue")
        /// An argument of the wrong kind (torch's `TypeError`).
        public static let invalidType = Code("invalidType")
        /// An operation the configuration cannot perform (torch's `RuntimeError`).
        public static let unsupported = Code("unsupported")
        /// A state dict that is not shaped like an optimizer's (torch would raise `KeyError` or
        /// `TypeError` deep inside `load_state_dict`).
        public static let malformedStateDict = Code("malformedStateDict")
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong; PyTorch's own text where torch raises for the same condition.
    public var message: String
    /// The key path in a state dict (`param_groups/0/lr`) the error is about, if any.
    public var path: String?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - message: What went wrong.
    ///   - path: The key path the error is about.
    public init(_ code: Code, _ message: String, path: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
    }

    /// `param_groups/0/lr: Invalid learning rate: -1.0 [invalidValue]`
    public var description: String {
        (path.map { "\($0): " } ?? "") + message + " [\(code)]"
    }
}
