import OrderedCollections

/// A dictionary key in a state tree: Python `str` or `int` (an optimizer's `state` is keyed by ints).
public enum StateKey: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case string(String)
    case int(Int64)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }

    /// The key as text: a string key as it is, an int key in decimal.
    public var description: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        }
    }

    /// The key as one component of a printed key path: `\`, `/`, `*` and `?` inside a string key
    /// are escaped with a backslash (`enc\/w`), so the path reads back as the same keys.
    public var pathComponent: String {
        switch self {
        case .string(let s): return KeyPathSyntax.escape(s)
        case .int(let i): return String(i)
        }
    }
}

/// A Python `dict` or `collections.OrderedDict`, with its keys in order: a collection of
/// `(key, value)` entries with dictionary lookups (see `StateDict+Collection.swift`).
public struct StateDict: Sendable, Equatable {
    /// The entries. Package access: ckpt's readers and writers use the ordered dictionary's whole
    /// API; users go through the collection.
    package var items: OrderedDictionary<StateKey, StateValue>
    /// True for `collections.OrderedDict` (as `model.state_dict()` returns), false for `dict`.
    public var isOrderedDict: Bool
    /// Attributes set on an OrderedDict (PyTorch's `_metadata`, with per-module versions).
    public var attributes: OrderedMap<String, StateValue>
    /// For a `collections.defaultdict` (read as data, see ``DataGlobals``), the class its
    /// `default_factory` names (`builtins.list`); nil for any other dict. The class is never called.
    public var defaultFactory: String? = nil

    /// An empty dict.
    ///
    /// - Parameters:
    ///   - isOrderedDict: True for `collections.OrderedDict`.
    ///   - attributes: Attributes of an OrderedDict.
    public init(isOrderedDict: Bool, attributes: OrderedMap<String, StateValue> = [:]) {
        self.init([:], isOrderedDict: isOrderedDict, attributes: attributes)
    }

    package init(
        _ items: OrderedDictionary<StateKey, StateValue>, isOrderedDict: Bool = false, attributes: OrderedMap<String, StateValue> = [:]
    ) {
        self.items = items
        self.isOrderedDict = isOrderedDict
        self.attributes = attributes
    }
}

/// A value in a checkpoint's tree: what `torch.save` can store and `torch.load(weights_only=True)`
/// can load, with Python's types kept (a tuple stays a tuple, an int stays an int), and a
/// placeholder (``object(_:)``) for any other Python object, which is read as data and never run.
public indirect enum StateValue: Sendable, Equatable {
    case dict(StateDict)
    case list([StateValue])
    case tuple([StateValue])
    case string(String)
    /// A Python int that fits in 64 bits (a wider one is rejected when read).
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case none
    case bytes([UInt8])
    case bytearray([UInt8])
    case tensor(Tensor)
    /// `torch.Size`.
    case size([Int64])
    /// `torch.device`, as its string (`"cpu"`, `"cuda:0"`).
    case device(String)
    /// A dtype object such as `torch.float32`.
    case dtype(DType)
    /// A Python `set`, in the order it was stored.
    case set([StateValue])
    case complex(real: Double, imaginary: Double)
    /// A Python object built from a global outside the weights-only allow-list, or a bare global,
    /// kept as data (see ``PickledObject``). Writing one needs ``SaveOptions/keepObjects``.
    case object(PickledObject)
    /// A plain-data object read from a data global (`argparse.Namespace`, a path, a datetime; see
    /// ``DataGlobals``): its class and attributes. Writing one to `.pt` or `.ckpt` needs
    /// ``SaveOptions/allowDataGlobals``.
    case record(PythonRecord)

    /// A plain `dict` from string keys, in the order given. Disfavored: a dictionary literal of
    /// literal keys builds the `.dict` case directly (``StateDict/init(dictionaryLiteral:)``); this
    /// serves keys that are `String` values.
    @_disfavoredOverload
    public static func dict(_ pairs: KeyValuePairs<String, StateValue>) -> StateValue {
        .dict(StateDict(pairs.map { (.string($0.key), $0.value) }))
    }

    /// The Python type name, as `type(v).__name__` would print it (`"OrderedDict"`, `"Tensor"`);
    /// for an object or a record, the global that makes it (`"argparse.Namespace"`), since it is
    /// never run; for a numpy value, `numpy.` and its type (`"numpy.ndarray"`, `"numpy.float64"`).
    public var pythonTypeName: String {
        switch self {
        case .dict(let d): return d.defaultFactory != nil ? "defaultdict" : d.isOrderedDict ? "OrderedDict" : "dict"
        case .list: return "list"
        case .tuple: return "tuple"
        case .string: return "str"
        case .int: return "int"
        case .float: return "float"
        case .bool: return "bool"
        case .none: return "NoneType"
        case .bytes: return "bytes"
        case .bytearray: return "bytearray"
        case .tensor(let t):
            switch t.numpyOrigin?.kind {
            case .array?: return "numpy.ndarray"
            case .scalar?: return "numpy." + (t.dtype.numpyScalarName ?? t.dtype.rawValue)
            case nil: return t.isParameter ? "Parameter" : "Tensor"
            }
        case .size: return "Size"
        case .device: return "device"
        case .dtype: return "dtype"
        case .set: return "set"
        case .complex: return "complex"
        case .object(let object): return object.qualifiedName
        case .record(let record): return record.qualifiedName
        }
    }

    /// The values inside a container, each with its key in key paths: a dict's items then its
    /// attributes (by name), a list's, tuple's or set's elements (by index), an object's
    /// ``PickledObject/parts`` (by part name), a record's attributes (by name). Empty for every
    /// other value.
    public var children: [(key: StateKey, value: StateValue)] {
        switch self {
        case .dict(let d):
            return d.items.elements.map { ($0.key, $0.value) } + d.attributes.map { (.string($0.key), $0.value) }
        case .list(let xs), .tuple(let xs), .set(let xs):
            return xs.enumerated().map { (.int(Int64($0.offset)), $0.element) }
        case .object(let object):
            return object.parts.map { (.string($0.key), $0.value) }
        case .record(let record):
            return record.attributes.map { (.string($0.key), $0.value) }
        default:
            return []
        }
    }

    /// The child at `key` of a dict, at an index of a list or tuple (an int key), an object's
    /// part (`args`, `state`, ...; see ``PickledObject/parts``), or a record's attribute.
    public subscript(key: StateKey) -> StateValue? {
        switch (self, key) {
        case (.dict(let d), _): return d.items[key]
        case (.list(let xs), .int(let i)), (.tuple(let xs), .int(let i)):
            return i >= 0 && i < xs.count ? xs[Int(i)] : nil
        case (.object(let object), .string(let part)): return object[part: part]
        case (.record(let record), .string(let name)): return record[name]
        default: return nil
        }
    }

    /// The value at a `/`-separated key path (`optimizer/state/0/sum`); an all-digit component
    /// matches an int key or list index, or else a string key. A backslash makes the next
    /// character part of the key (`enc\/w` is the one key `enc/w`).
    public func value(atPath path: String) -> StateValue? {
        var current: StateValue? = self
        for name in KeyPathSyntax.keys(path) {
            if let i = Int64(name), let hit = current?[.int(i)] {
                current = hit
            } else {
                current = current?[.string(name)]
            }
        }
        return current
    }

    /// Visits every tensor with its key path, depth first, in the order the tree is stored
    /// (dict items, then OrderedDict attributes; an object's parts in pickling order, so the
    /// tensors of a whole pickled `nn.Module` are visited too; a record's attributes).
    public func forEachTensor(_ body: (_ path: [StateKey], _ tensor: Tensor) throws -> Void) rethrows {
        var path: [StateKey] = []
        try walkTensors(&path, body)
    }

    private func walkTensors(_ path: inout [StateKey], _ body: ([StateKey], Tensor) throws -> Void) rethrows {
        switch self {
        case .tensor(let t):
            try body(path, t)
        case .dict(let d):
            for (key, value) in d.items {
                path.append(key)
                try value.walkTensors(&path, body)
                path.removeLast()
            }
            for (key, value) in d.attributes {
                path.append(.string(key))
                try value.walkTensors(&path, body)
                path.removeLast()
            }
        case .list(let xs), .tuple(let xs), .set(let xs):
            for (index, value) in xs.enumerated() {
                path.append(.int(Int64(index)))
                try value.walkTensors(&path, body)
                path.removeLast()
            }
        case .object(let object):
            for (key, value) in object.parts {
                path.append(.string(key))
                try value.walkTensors(&path, body)
                path.removeLast()
            }
        case .record(let record):
            for (key, value) in record.attributes {
                path.append(.string(key))
                try value.walkTensors(&path, body)
                path.removeLast()
            }
        default:
            break
        }
    }

    /// The distinct storages of all tensors, in the order first met by ``forEachTensor(_:)``,
    /// which is the order a writer assigns blob keys `0, 1, 2, ...`.
    public var storagesInOrder: [Storage] {
        var seen = Set<ObjectIdentifier>()
        var result: [Storage] = []
        forEachTensor { _, tensor in
            if seen.insert(ObjectIdentifier(tensor.storage)).inserted { result.append(tensor.storage) }
        }
        return result
    }

    public static func == (lhs: StateValue, rhs: StateValue) -> Bool {
        switch (lhs, rhs) {
        case let (.dict(a), .dict(b)): return a == b
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)), let (.set(a), .set(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.float(a), .float(b)): return a.bitPattern == b.bitPattern || a == b
        case let (.bool(a), .bool(b)): return a == b
        case (.none, .none): return true
        case let (.bytes(a), .bytes(b)), let (.bytearray(a), .bytearray(b)): return a == b
        case let (.tensor(a), .tensor(b)):
            guard a.requiresGrad == b.requiresGrad, a.isParameter == b.isParameter, a.numpyOrigin == b.numpyOrigin else {
                return false
            }
            return (try? a.isBitwiseEqual(to: b)) ?? false
        case let (.size(a), .size(b)): return a == b
        case let (.device(a), .device(b)): return a == b
        case let (.dtype(a), .dtype(b)): return a == b
        case let (.complex(ar, ai), .complex(br, bi)):
            // As for .float: identical bits are equal, so a complex NaN equals itself after a round trip.
            return (ar.bitPattern == br.bitPattern || ar == br) && (ai.bitPattern == bi.bitPattern || ai == bi)
        case let (.object(a), .object(b)): return a == b
        case let (.record(a), .record(b)): return a == b
        default: return false
        }
    }
}

extension Array where Element == StateKey {
    /// The key path as text, components joined with `/` (`optimizer/state/0/sum`); a `/`, `*`, `?`
    /// or `\` inside a key is escaped with a backslash (`enc\/w`).
    public var pathString: String { map(\.pathComponent).joined(separator: "/") }
}
