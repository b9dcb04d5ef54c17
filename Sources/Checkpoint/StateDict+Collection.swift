// A state dict reads as a Swift collection of `(key, value)` entries in Python's order, with a
// dict's lookups (`OrderedKeyValueCollection`).

extension StateDict: OrderedKeyValueCollection {
    /// An entry's position; see ``OrderedMap/Index`` for why it is not an `Int`.
    public typealias Index = OrderedMap<StateKey, StateValue>.Index

    public var startIndex: Index { Index(offset: 0) }
    public var endIndex: Index { Index(offset: items.count) }
    public subscript(position: Index) -> (key: StateKey, value: StateValue) { items.elements[position.offset] }

    public subscript(key: StateKey) -> StateValue? {
        get { items[key] }
        set { items[key] = newValue }
    }

    public func index(forKey key: StateKey) -> Index? { items.index(forKey: key).map(Index.init) }

    /// A dict of the pairs in order. A repeated key keeps its first position and its last value,
    /// as in a Python dict display.
    ///
    /// - Parameters:
    ///   - pairs: The keys and values.
    ///   - isOrderedDict: True for `collections.OrderedDict`.
    ///   - attributes: Attributes of an OrderedDict.
    public init(
        _ pairs: some Sequence<(StateKey, StateValue)>, isOrderedDict: Bool = false, attributes: OrderedMap<String, StateValue> = [:]
    ) {
        self.init(isOrderedDict: isOrderedDict, attributes: attributes)
        for (key, value) in pairs { items[key] = value }
    }
}
