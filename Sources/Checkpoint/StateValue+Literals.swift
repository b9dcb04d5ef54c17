// Literals, so a state tree is written as Python writes it — `["model": .dict(weights), "epoch": 3]`
// — with no other import (the ordered dictionary behind `StateDict` stays an implementation detail).
// No nil literal: it would turn `condition ? value : nil` from an Optional into `.none` wherever a
// StateValue is expected, silently. Python's None is `.none`.

extension StateDict: ExpressibleByDictionaryLiteral {
    /// An empty Python `dict`.
    public init() { self.init(isOrderedDict: false) }

    /// A Python `dict` with the entries in order. A repeated key keeps its first position and its
    /// last value, as in a Python dict display.
    public init(dictionaryLiteral elements: (StateKey, StateValue)...) {
        self.init(elements)
    }
}

extension StateValue: ExpressibleByDictionaryLiteral {
    /// A Python `dict` (see ``StateDict/init(dictionaryLiteral:)``).
    public init(dictionaryLiteral elements: (StateKey, StateValue)...) {
        self = .dict(StateDict(elements))
    }
}

extension StateValue: ExpressibleByArrayLiteral {
    /// A Python `list`.
    public init(arrayLiteral elements: StateValue...) { self = .list(elements) }
}

extension StateValue: ExpressibleByStringLiteral {
    /// A Python `str`.
    public init(stringLiteral value: String) { self = .string(value) }
}

extension StateValue: ExpressibleByIntegerLiteral {
    /// A Python `int`.
    public init(integerLiteral value: Int64) { self = .int(value) }
}

extension StateValue: ExpressibleByFloatLiteral {
    /// A Python `float`.
    public init(floatLiteral value: Double) { self = .float(value) }
}

extension StateValue: ExpressibleByBooleanLiteral {
    /// A Python `bool`.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
