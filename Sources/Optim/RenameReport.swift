/// What renaming and name-based loading did: which names were renamed or dropped by the map, and
/// (when loading an optimizer's state) which parameters got their saved state, which got fresh
/// state, and which saved names had no parameter.
public struct RenameReport: Sendable, Equatable {
    /// How saved state was matched to the current parameters.
    public enum Matching: Sendable, Equatable {
        /// By `param_names`.
        case byName
        /// By position, torch's rule, for the reason given (no names saved, or none current).
        case positional(reason: String)
    }

    /// A name a rule changed.
    public struct Renamed: Sendable, Equatable {
        /// The name before.
        public var from: String
        /// The name after.
        public var to: String
        /// The rules that applied, as `map M rule N {json}`.
        public var rules: [String]
    }

    /// A name a drop rule removed.
    public struct Dropped: Sendable, Equatable {
        /// The name (before any earlier rename).
        public var name: String
        /// The rules that applied, the last one the drop.
        public var rules: [String]
    }

    /// How state was matched; `.byName` also for a plain model-key rename.
    public var matching: Matching = .byName
    /// Names the map changed, in the order they were found.
    public var renamed: [Renamed] = []
    /// Names the map dropped.
    public var dropped: [Dropped] = []
    /// Current parameters that received saved state (current names).
    public var matched: [String] = []
    /// Current parameters with no saved state: they keep fresh state.
    public var missing: [String] = []
    /// Saved names (after renaming) that no current parameter has: their state was not loaded.
    public var unexpected: [String] = []
    /// Current parameters whose saved state did not fit (shape or dtype) and was replaced by fresh state.
    public var reinitialized: [String] = []
    /// Other things worth knowing (a `_metadata` prefix kept because its keys went different ways).
    public var notes: [String] = []

    /// Creates an empty report.
    public init() {}

    /// Records the renames and drops among a map's outcomes.
    mutating func record(_ outcomes: [RenameMap.Outcome]) {
        for outcome in outcomes where outcome.isChanged {
            if let result = outcome.result {
                renamed.append(Renamed(from: outcome.name, to: result, rules: outcome.rules))
            } else {
                dropped.append(Dropped(name: outcome.name, rules: outcome.rules))
            }
        }
    }

    /// The report as lines for people.
    public var text: String {
        var lines: [String] = []
        switch matching {
        case .byName: break
        case .positional(let reason): lines.append("matched by position (PyTorch's rule): \(reason)")
        }
        for item in renamed {
            lines.append("renamed \(item.from) -> \(item.to)  [\(item.rules.joined(separator: "; "))]")
        }
        for item in dropped { lines.append("dropped \(item.name)  [\(item.rules.joined(separator: "; "))]") }
        for (label, names) in [
            ("matched", matched), ("missing (fresh state)", missing), ("unexpected (not loaded)", unexpected),
            ("re-initialized", reinitialized),
        ] where !names.isEmpty {
            lines.append("\(label): \(names.joined(separator: ", "))")
        }
        for note in notes { lines.append("note: \(note)") }
        if lines.isEmpty { lines.append("no names changed") }
        return lines.joined(separator: "\n")
    }
}
