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
        try Node.encode(value, sortsKeys: sortsKeys, codingPath: [])
    }

    /// A number's JSON: Swift's shortest round-trip text, or `"nan"`, `"inf"`, `"-inf"`.
    static func number<F: BinaryFloatingPoint & LosslessStringConvertible>(_ value: F) -> OrderedJSON {
        if value.isNaN { return .string("nan") }
        if value.isInfinite { return .string(value < 0 ? "-inf" : "inf") }
        return .number(value.description)
    }
}

/// An object or array being encoded.
///
/// A value is turned into its JSON as soon as its `encode(to:)` returns, so that only the
/// containers still open are nodes; a nested container, which its caller fills after getting it,
/// stays a node until the end.
private final class Node {
    enum Kind {
        case empty
        case value(OrderedJSON)
        case object
        case array
    }

    enum Child {
        case value(OrderedJSON)
        case pending(Node)
    }

    let sortsKeys: Bool
    var kind = Kind.empty
    /// An object's keys, parallel to `children`.
    var keys: [String] = []
    /// An object's member values or an array's elements.
    var children: [Child] = []

    init(sortsKeys: Bool) {
        self.sortsKeys = sortsKeys
    }

    /// Encodes a value: a scalar directly, anything else through its `encode(to:)`.
    static func encode<T: Encodable>(_ value: T, sortsKeys: Bool, codingPath: @autoclosure () -> [any CodingKey]) throws -> OrderedJSON {
        if let scalar = scalar(value) { return scalar }
        let node = Node(sortsKeys: sortsKeys)
        try value.encode(to: NodeEncoder(node: node, codingPath: codingPath()))
        return node.json
    }

    /// A scalar's JSON, or nil for a value that encodes itself.
    ///
    /// Every type that encodes itself through a single-value container's primitive `encode` must be
    /// a scalar here: that `encode` comes back to ``encode(_:sortsKeys:codingPath:)``, and
    /// `encode(to:)` again would loop.
    private static func scalar<T: Encodable>(_ value: T) -> OrderedJSON? {
        // Comparing metatypes first keeps the common cases clear of dynamic casts.
        if T.self == Int.self { return .number(String(unsafeBitCast(value, to: Int.self))) }
        if T.self == String.self { return .string(unsafeBitCast(value, to: String.self)) }
        if T.self == Double.self { return OrderedJSONEncoder.number(unsafeBitCast(value, to: Double.self)) }
        if T.self == Bool.self { return .bool(unsafeBitCast(value, to: Bool.self)) }
        if T.self == Int64.self { return .number(String(unsafeBitCast(value, to: Int64.self))) }
        switch value {
        case let float as Float: return OrderedJSONEncoder.number(float)
        case let integer as any BinaryInteger: return .number(String(describing: integer))
        default: return nil
        }
    }

    /// Sets the member `key` of this object, replacing an earlier one of that key.
    func setMember(_ key: String, _ child: Child) {
        becomeObject()
        if let index = keys.firstIndex(of: key) {
            children[index] = child
        } else {
            keys.append(key)
            children.append(child)
        }
    }

    /// A new node for the member `key` of this object, filled in later.
    func pendingMember(_ key: String) -> Node {
        let node = Node(sortsKeys: sortsKeys)
        setMember(key, .pending(node))
        return node
    }

    /// Appends an element to this array.
    func append(_ child: Child) {
        becomeArray()
        children.append(child)
    }

    /// A new node for the next element of this array, filled in later.
    func pendingElement() -> Node {
        let node = Node(sortsKeys: sortsKeys)
        append(.pending(node))
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

    var json: OrderedJSON {
        func json(_ child: Child) -> OrderedJSON {
            switch child {
            case .value(let value): return value
            case .pending(let node): return node.json
            }
        }
        switch kind {
        case .empty: return .object([])
        case .value(let value): return value
        case .array: return .array(children.map(json))
        case .object:
            var members = zip(keys, children).map { (key: $0, value: json($1)) }
            if sortsKeys { members.sort { $0.key < $1.key } }
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

// The generic `encode` of each container also stands for every primitive `encode` its protocol
// requires; `Node.scalar` tells them apart.

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws {
        node.setMember(key.stringValue, .value(.null))
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        node.setMember(key.stringValue, .value(try Node.encode(value, sortsKeys: node.sortsKeys, codingPath: codingPath + [key])))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: node.pendingMember(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        NodeEncoder(node: node.pendingMember(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        NodeEncoder(node: node.pendingMember("super"), codingPath: codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        NodeEncoder(node: node.pendingMember(key.stringValue), codingPath: codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    var count: Int { node.children.count }

    mutating func encodeNil() throws {
        node.append(.value(.null))
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        node.append(.value(try Node.encode(value, sortsKeys: node.sortsKeys, codingPath: codingPath + [IndexKey(count)])))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [IndexKey(count)]
        return NodeEncoder(node: node.pendingElement(), codingPath: path).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [IndexKey(count)]
        return NodeEncoder(node: node.pendingElement(), codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let path = codingPath + [IndexKey(count)]
        return NodeEncoder(node: node.pendingElement(), codingPath: path)
    }
}

private struct SingleValueContainer: SingleValueEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws {
        node.kind = .value(.null)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        node.kind = .value(try Node.encode(value, sortsKeys: node.sortsKeys, codingPath: codingPath))
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
