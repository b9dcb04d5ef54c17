import Checkpoint

/// Encodes an `Encodable` value as an `OrderedJSON` value.
///
/// Object members keep the order they are encoded in (declaration order, for synthesized
/// conformances) unless ``sortsKeys``; nil is null; integers are their decimal text; finite floats
/// are Swift's shortest round-trip text (`1.0`, `1e-05`), and NaN and the infinities, which JSON
/// has no numbers for, are the strings `"nan"`, `"inf"` and `"-inf"`.
struct OrderedJSONEncoder {
    /// Sort every object's keys by code point instead of keeping the encoding order.
    var sortsKeys: Bool

    /// Encodes a value.
    ///
    /// - Parameter value: The value.
    /// - Returns: Its JSON.
    /// - Throws: What the value's `encode(to:)` throws.
    func encode(_ value: some Encodable) throws -> OrderedJSON {
        let root = Node()
        try root.store(value, codingPath: [])
        return root.json(sortingKeys: sortsKeys)
    }
}

/// One value being encoded. A container hands out its children before they are filled in, so
/// they are shared references.
private final class Node {
    enum Kind {
        case empty
        case scalar(OrderedJSON)
        case object
        case array
    }

    var kind = Kind.empty
    /// An object's keys, parallel to `children`.
    var keys: [String] = []
    /// An object's member values or an array's elements.
    var children: [Node] = []

    /// Stores a value: scalars directly, anything else through its `encode(to:)`.
    ///
    /// Every type that encodes itself through a single-value container's primitive `encode` must
    /// be a case here: that `encode` comes back to this method, and `encode(to:)` again would loop.
    func store<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws {
        switch value {
        case let text as String: kind = .scalar(.string(text))
        case let flag as Bool: kind = .scalar(.bool(flag))
        case let number as Double: kind = .scalar(Self.number(number))
        case let number as Float: kind = .scalar(Self.number(number))
        case let integer as any BinaryInteger: kind = .scalar(.number(String(describing: integer)))
        default: try value.encode(to: NodeEncoder(node: self, codingPath: codingPath))
        }
    }

    private static func number<F: BinaryFloatingPoint & LosslessStringConvertible>(_ value: F) -> OrderedJSON {
        if value.isNaN { return .string("nan") }
        if value.isInfinite { return .string(value < 0 ? "-inf" : "inf") }
        return .number(value.description)
    }

    /// The member `key` of this object, replacing an earlier one of that key.
    func member(_ key: String) -> Node {
        becomeObject()
        let node = Node()
        if let index = keys.firstIndex(of: key) {
            children[index] = node
        } else {
            keys.append(key)
            children.append(node)
        }
        return node
    }

    /// A new last element of this array.
    func appendElement() -> Node {
        becomeArray()
        let node = Node()
        children.append(node)
        return node
    }

    func becomeObject() {
        if case .object = kind { return }
        kind = .object
        keys = []
        children = []
    }

    func becomeArray() {
        if case .array = kind { return }
        kind = .array
        keys = []
        children = []
    }

    func json(sortingKeys: Bool) -> OrderedJSON {
        switch kind {
        case .empty: return .object([])
        case .scalar(let value): return value
        case .array: return .array(children.map { $0.json(sortingKeys: sortingKeys) })
        case .object:
            var members = zip(keys, children).map { (key: $0, value: $1.json(sortingKeys: sortingKeys)) }
            if sortingKeys { members.sort { $0.key < $1.key } }
            return .object(members)
        }
    }
}

private struct NodeEncoder: Encoder {
    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.becomeObject()
        return KeyedEncodingContainer(KeyedContainer(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.becomeArray()
        return UnkeyedContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueContainer(node: node, codingPath: codingPath)
    }
}

/// The generic `encode` also stands for each primitive `encode` the protocols require: `store` tells them apart.
private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws {
        node.member(key.stringValue).kind = .scalar(.null)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try node.member(key.stringValue).store(value, codingPath: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: node.member(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        NodeEncoder(node: node.member(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        NodeEncoder(node: node.member("super"), codingPath: codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        NodeEncoder(node: node.member(key.stringValue), codingPath: codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    var count: Int { node.children.count }

    mutating func encodeNil() throws {
        node.appendElement().kind = .scalar(.null)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = codingPath + [IndexKey(count)]
        try node.appendElement().store(value, codingPath: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [IndexKey(count)]
        return NodeEncoder(node: node.appendElement(), codingPath: path).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [IndexKey(count)]
        return NodeEncoder(node: node.appendElement(), codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let path = codingPath + [IndexKey(count)]
        return NodeEncoder(node: node.appendElement(), codingPath: path)
    }
}

private struct SingleValueContainer: SingleValueEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws {
        node.kind = .scalar(.null)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try node.store(value, codingPath: codingPath)
    }
}

/// An array element's place in a coding path.
private struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { String(intValue ?? 0) }

    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { return nil }
}
