/// An error from a rename map or from name-based loading: a map that cannot be read or compiled,
/// a rule that sends two names to one target or (in strict mode) matches nothing, names a strict
/// load cannot account for, or saved state that does not fit the parameter it is matched to.
///
/// Errors about a rule name it in ``rule`` (`map 0 rule 2 {"regex": "…", "to": "…"}`) and in the
/// message, so a user can find it in the map file.
public struct RenameError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A kind of failure, stable across releases, for callers that branch on the cause.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's stable name.
        public let rawValue: String
        /// Creates a code from its name.
        private init(_ rawValue: String) { self.rawValue = rawValue }
        /// The code's name.
        public var description: String { rawValue }

        /// The map file or a rule is malformed (bad JSON, unknown key, invalid regular expression).
        public static let invalidMap = Code("invalidMap")
        /// A rule sends a name to a target another name already has.
        public static let collision = Code("collision")
        /// A strict map has a rule that applied to no name.
        public static let unmatchedRule = Code("unmatchedRule")
        /// A name occurs twice among the saved or the current parameters (or model keys).
        public static let duplicateName = Code("duplicateName")
        /// A strict load found current parameters without saved state.
        public static let missingNames = Code("missingNames")
        /// A strict load found saved state for names no current parameter has.
        public static let unexpectedNames = Code("unexpectedNames")
        /// Saved state has another shape or dtype than the parameter it matched.
        public static let stateMismatch = Code("stateMismatch")
        /// The state dict is not shaped like an optimizer's or a model's.
        public static let malformedStateDict = Code("malformedStateDict")
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, naming the rule or parameter.
    public var message: String
    /// The rule the error is about, as `map M rule N {json}`, if any.
    public var rule: String?
    /// The key path in the state dict (`param_groups/0/param_names`), if any.
    public var path: String?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - message: What went wrong.
    ///   - rule: The rule it is about.
    ///   - path: The key path it is about.
    public init(_ code: Code, _ message: String, rule: String? = nil, path: String? = nil) {
        self.code = code
        self.message = message
        self.rule = rule
        self.path = path
    }

    /// `param_groups/0/param_names: map 0 rule 1 {"prefix": "a.", "to": "b."} sends … [collision]`
    public var description: String {
        (path.map { "\($0): " } ?? "") + message + " [\(code)]"
    }
}
