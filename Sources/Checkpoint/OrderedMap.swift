import OrderedCollections

/// Values looked up by key and kept in the order their keys were first set, as a Python dict keeps
/// them: an OrderedDict's attributes, a parameter group's options, an optimizer's defaults.
///
/// It is ckpt's own type so that using ckpt never means importing the ordered-collections package
/// it is built on.
public struct OrderedMap<Key: Hashable, Value>: OrderedKeyValueCollection {
    /// Package access: ckpt's readers and writers use the ordered dictionary's whole API.
    package var storage: OrderedDictionary<Key, Value>

    /// An empty map.
    public init() { storage = [:] }

    /// A map of the pairs in order. A repeated key keeps its first position and its last value,
    /// as in a Python dict display.
    ///
    /// - Parameter pairs: The keys and values.
    public init(_ pairs: some Sequence<(Key, Value)>) {
        storage = [:]
        for (key, value) in pairs { storage[key] = value }
    }

    package init(_ storage: OrderedDictionary<Key, Value>) { self.storage = storage }

    public subscript(key: Key) -> Value? {
        get { storage[key] }
        set { storage[key] = newValue }
    }

    public func index(forKey key: Key) -> Index? { storage.index(forKey: key).map(Index.init) }

    /// The position of an entry. Not an `Int`, so that `dict[0]` on a ``StateDict`` (whose keys
    /// are integer literals too) always means the key 0, never the first entry.
    public struct Index: Strideable, Hashable, Sendable {
        let offset: Int

        public func distance(to other: Index) -> Int { other.offset - offset }
        public func advanced(by distance: Int) -> Index { Index(offset: offset + distance) }
    }

    public var startIndex: Index { Index(offset: 0) }
    public var endIndex: Index { Index(offset: storage.count) }
    public subscript(position: Index) -> (key: Key, value: Value) { storage.elements[position.offset] }
}

extension OrderedMap: ExpressibleByDictionaryLiteral {
    /// A map of the entries in order; a repeated key keeps its first position and its last value.
    public init(dictionaryLiteral elements: (Key, Value)...) { self.init(elements) }
}

extension OrderedMap: Equatable where Value: Equatable {
    /// Equal when the same keys have equal values in the same order.
    public static func == (lhs: OrderedMap, rhs: OrderedMap) -> Bool { lhs.storage == rhs.storage }
}

extension OrderedMap: Sendable where Key: Sendable, Value: Sendable {}
