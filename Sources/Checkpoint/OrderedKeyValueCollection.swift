/// Entries in order with dictionary lookups: what ``StateDict`` and ``OrderedMap`` share, as a
/// Python dict offers `d[k]`, `d.get(k, default)`, `keys()`, `values()` and `pop` beside iteration.
///
/// A conforming type supplies the collection, the keyed subscript and ``index(forKey:)``; the
/// rest is built on them.
public protocol OrderedKeyValueCollection<Key, Value>: RandomAccessCollection where Element == (key: Key, value: Value) {
    associatedtype Key: Hashable
    associatedtype Value

    /// The value for `key`, or nil; assigning nil removes the key, assigning to a new key appends it
    /// and assigning to an existing key keeps its position.
    subscript(key: Key) -> Value? { get set }

    /// The position of `key`, or nil when it is absent.
    ///
    /// - Parameter key: The key to find.
    /// - Returns: Its index, in constant time.
    func index(forKey key: Key) -> Index?
}

extension OrderedKeyValueCollection {
    /// The value for `key`, or `defaultValue` when the key is absent (assigning appends the key).
    public subscript(key: Key, default defaultValue: @autoclosure () -> Value) -> Value {
        get { self[key] ?? defaultValue() }
        set { self[key] = newValue }
    }

    /// The keys, in order.
    public var keys: [Key] { map(\.key) }

    /// The values, in the order of their keys.
    public var values: [Value] { map(\.value) }

    /// Sets the value of `key`, appending the key when it is new.
    ///
    /// - Parameters:
    ///   - value: The new value.
    ///   - key: The key.
    /// - Returns: The value it replaced, or nil when the key is new.
    @discardableResult
    public mutating func updateValue(_ value: Value, forKey key: Key) -> Value? {
        defer { self[key] = value }
        return self[key]
    }

    /// Removes `key` and its value, as Python's `d.pop(k, None)`.
    ///
    /// - Parameter key: The key.
    /// - Returns: The removed value, or nil when the key was absent.
    @discardableResult
    public mutating func removeValue(forKey key: Key) -> Value? {
        defer { self[key] = nil }
        return self[key]
    }
}
