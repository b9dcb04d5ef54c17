import Checkpoint

// A scheduler's state dict is torch's `__dict__` minus the optimizer: each class lists its entries
// (key, current value, and how a loaded value is checked and installed) in the order torch's
// constructor creates the attributes.

extension LRScheduler {
    /// The base class's entries, in the order torch's `LRScheduler.__init__` and `_initial_step`
    /// create them.
    var baseStateEntries: [StateEntry] {
        [
            .floats("base_lrs", self, \.baseLRs),
            .int("last_epoch", self, \.lastEpoch),
            .int("_step_count", self, \.stepCount),
            .bool("_is_initial", self, \.isInitial),
            .bool("_get_lr_called_within_step", self, \.getLRCalledWithinStep),
            .floats("_last_lr", self, \.lastLR),
        ]
    }

    func makeStateDict() -> StateValue {
        var dict = StateDict()
        for entry in stateEntries where entry.isPresent { dict[.string(entry.key)] = entry.value }
        for (key, value) in extraState { dict[.string(key)] = value }
        for entry in trailingStateEntries where entry.isPresent { dict[.string(entry.key)] = entry.value }
        return .dict(dict)
    }

    /// torch's `__dict__.update(state_dict)`, checked first: known keys are decoded into their
    /// fields, unknown ones kept in ``extraState``.
    func prepareEntries(_ state: StateValue, path: String) throws -> () -> Void {
        guard case .dict(let dict) = state else {
            throw OptimizerError(
                .malformedStateDict, "a scheduler state dict must be a dict, found \(state.pythonTypeName)",
                path: path.isEmpty ? nil : path)
        }
        var known: [String: StateEntry] = [:]
        for entry in stateEntries + trailingStateEntries { known[entry.key] = entry }
        var installs: [() -> Void] = []
        var extras = extraState
        for (key, value) in dict {
            guard case .string(let name) = key else {
                throw OptimizerError(
                    .malformedStateDict, "a scheduler state key must be a str, found int \(key)", path: path.isEmpty ? nil : path)
            }
            if let entry = known[name] {
                installs.append(try entry.decode(value, StateCoding.join(path, name)))
            } else {
                extras[name] = value
            }
        }
        return { [self] in
            for install in installs { install() }
            extraState = extras
        }
    }
}

/// One key of a scheduler's state dict: its current value, and how a loaded value is checked
/// (throwing with its key path) and installed.
struct StateEntry {
    let key: String
    let value: StateValue
    let decode: (StateValue, String) throws -> () -> Void
    /// False for a key torch's `__dict__` does not have yet (CyclicLR's `use_beta1` without momentum
    /// cycling): not saved, but read if a loaded state has it.
    var isPresent = true

    init(_ key: String, _ value: StateValue, decode: @escaping (StateValue, String) throws -> () -> Void) {
        self.key = key
        self.value = value
        self.decode = decode
    }

    /// This entry, saved only when `present`; loading it runs `onLoad` too (which records that the
    /// key now exists).
    func present(if present: Bool, onLoad: @escaping () -> Void) -> StateEntry {
        let decode = self.decode
        var entry = StateEntry(key, value) { value, path in
            let install = try decode(value, path)
            return {
                install()
                onLoad()
            }
        }
        entry.isPresent = present
        return entry
    }

    /// A stored property, written with `encode` and read back with `read`.
    static func field<Root: AnyObject, Value>(
        _ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, Value>,
        encode: (Value) -> StateValue, read: @escaping (StateValue, String) throws -> Value
    ) -> StateEntry {
        StateEntry(key, encode(root[keyPath: keyPath])) { value, path in
            let decoded = try read(value, path)
            return { root[keyPath: keyPath] = decoded }
        }
    }

    static func int<Root: AnyObject>(_ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, Int>) -> StateEntry {
        field(key, root, keyPath, encode: { .int(Int64($0)) }, read: StateCoding.int)
    }

    static func bool<Root: AnyObject>(_ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, Bool>) -> StateEntry {
        field(key, root, keyPath, encode: { .bool($0) }, read: StateCoding.bool)
    }

    /// A Python number whose type (int or float) survives a load and a save.
    static func number<Root: AnyObject>(
        _ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, PythonNumber>
    ) -> StateEntry {
        field(key, root, keyPath, encode: \.stateValue, read: StateCoding.number)
    }

    /// A float; an int is accepted on load.
    static func float<Root: AnyObject>(_ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, Double>) -> StateEntry {
        field(key, root, keyPath, encode: { .float($0) }, read: StateCoding.double)
    }

    /// A function torch saves as `None` (a plain function) or as a callable object's attributes;
    /// a Swift closure is saved as `None`, and only `None` loads.
    static func function(_ key: String) -> StateEntry {
        StateEntry(key, .none) { value, path in
            try StateCoding.function(value, path)
            return {}
        }
    }

    /// A list of numbers saved as floats (learning rates); ints are accepted on load.
    static func floats<Root: AnyObject>(_ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, [Double]>) -> StateEntry {
        field(key, root, keyPath, encode: { .list($0.map(StateValue.float)) }, read: StateCoding.floats)
    }

    static func numbers<Root: AnyObject>(
        _ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, [PythonNumber]>
    ) -> StateEntry {
        field(key, root, keyPath, encode: { .list($0.map(\.stateValue)) }, read: StateCoding.numbers)
    }

    /// A string naming one of `Choice`'s cases.
    static func choice<Root: AnyObject, Choice: RawRepresentable<String>>(
        _ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, Choice>
    ) -> StateEntry {
        field(key, root, keyPath, encode: { .string($0.rawValue) }, read: { value, path in try StateCoding.choice(value, path) })
    }

    /// A value torch keeps that ckpt only carries: saved as loaded.
    static func opaque<Root: AnyObject>(_ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, StateValue>) -> StateEntry {
        field(key, root, keyPath, encode: { $0 }, read: { value, _ in value })
    }
}

/// A Python `int` or `float`, kept as such so a loaded state saves back with torch's types
/// (`end_factor=1` stays the int 1); arithmetic uses ``double``, which is what Python does when it
/// mixes the two (an int converts exactly below 2^53).
enum PythonNumber: Equatable, Sendable {
    case int(Int)
    case float(Double)

    var double: Double {
        switch self {
        case .int(let value): return Double(value)
        case .float(let value): return value
        }
    }

    var stateValue: StateValue {
        switch self {
        case .int(let value): return .int(Int64(value))
        case .float(let value): return .float(value)
        }
    }
}

/// Readers of loaded state values, each throwing ``OptimizerError`` `.malformedStateDict` with the
/// key path, the expected and the found type.
enum StateCoding {
    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path)/\(key)" }

    static func mismatch(_ expected: String, _ value: StateValue, _ path: String) -> OptimizerError {
        OptimizerError(.malformedStateDict, "expected \(expected), found \(value.pythonTypeName)", path: path)
    }

    static func int(_ value: StateValue, _ path: String) throws -> Int {
        guard case .int(let number) = value, let result = Int(exactly: number) else { throw mismatch("an int", value, path) }
        return result
    }

    static func bool(_ value: StateValue, _ path: String) throws -> Bool {
        guard case .bool(let flag) = value else { throw mismatch("a bool", value, path) }
        return flag
    }

    static func number(_ value: StateValue, _ path: String) throws -> PythonNumber {
        switch value {
        case .int(let number): return .int(Int(number))
        case .float(let number): return .float(number)
        default: throw mismatch("an int or a float", value, path)
        }
    }

    static func double(_ value: StateValue, _ path: String) throws -> Double {
        try number(value, path).double
    }

    static func list(_ value: StateValue, _ path: String) throws -> [StateValue] {
        switch value {
        case .list(let items), .tuple(let items): return items
        default: throw mismatch("a list", value, path)
        }
    }

    static func floats(_ value: StateValue, _ path: String) throws -> [Double] {
        try list(value, path).enumerated().map { try double($1, join(path, String($0))) }
    }

    static func numbers(_ value: StateValue, _ path: String) throws -> [PythonNumber] {
        try list(value, path).enumerated().map { try number($1, join(path, String($0))) }
    }

    static func ints(_ value: StateValue, _ path: String) throws -> [Int] {
        try list(value, path).enumerated().map { try int($1, join(path, String($0))) }
    }

    static func string(_ value: StateValue, _ path: String) throws -> String {
        guard case .string(let text) = value else { throw mismatch("a str", value, path) }
        return text
    }

    static func choice<Choice: RawRepresentable<String>>(_ value: StateValue, _ path: String) throws -> Choice {
        let text = try string(value, path)
        guard let choice = Choice(rawValue: text) else {
            throw OptimizerError(.malformedStateDict, "unknown value '\(text)'", path: path)
        }
        return choice
    }

    /// A function slot torch saves as `None` (a plain function) or as a callable object's
    /// `__dict__`; ckpt's functions are Swift closures, which have no attributes to restore.
    static func function(_ value: StateValue, _ path: String) throws {
        switch value {
        case .none: return
        case .dict:
            throw OptimizerError(
                .unsupported,
                "the saved function was a callable object with attributes; a Swift closure has none to restore "
                    + "(set the entry to None to load the rest)", path: path)
        default: throw mismatch("None", value, path)
        }
    }
}
