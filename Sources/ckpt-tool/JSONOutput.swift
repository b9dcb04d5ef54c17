import Checkpoint

/// The text of every `--json` document: each subcommand describes its document as `Encodable`
/// structs and prints it through here, so strings, numbers and layout follow one set of rules.
///
/// Foundation's JSONEncoder is not used: on Linux it loses declaration order, which rename's report
/// keeps, and it writes `1.0` as `1` where the documents have always printed `1.0`.
enum JSONOutput {
    /// The layout of a document.
    enum Style {
        /// The schema-versioned documents (inspect, diff, stats, verify, runs, prune, reconcile; ls
        /// writes the same layout through ``JSONStream``): keys sorted by code point, a member or
        /// element a line, two spaces of indent a level.
        case indented
        /// rename's report: one line, keys in the order the document declares them, as it always was.
        case singleLine
    }

    /// Renders a document with a trailing newline.
    ///
    /// - Parameters:
    ///   - document: The document.
    ///   - style: Its layout.
    /// - Returns: The text.
    /// - Throws: What the document's `encode(to:)` throws.
    static func render(_ document: some Encodable, style: Style) throws -> String {
        let json = try OrderedJSONEncoder(sortsKeys: style == .indented).encode(document)
        return json.serialized(style == .indented ? .indented : .singleLine) + "\n"
    }
}

extension OrderedMap<String, String> {
    /// The pairs as a JSON object's members (safetensors `__metadata__`); the indented documents
    /// sort their keys, so the order is not kept.
    var jsonObject: [String: String] { Dictionary(uniqueKeysWithValues: map { ($0.key, $0.value) }) }
}
