import Checkpoint

/// A key as the `--json` documents give it: a JSON string, or a number for an int key or a list index.
struct StateKeyJSON: Encodable {
    let key: StateKey

    /// The keys of a path, for a document's `key_path`.
    static func path(_ path: [StateKey]) -> [StateKeyJSON] { path.map(StateKeyJSON.init) }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch key {
        case .string(let text): try container.encode(text)
        case .int(let value): try container.encode(value)
        }
    }
}
