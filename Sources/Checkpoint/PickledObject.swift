import OrderedCollections

/// A Python object a pickle builds from a global outside the weights-only allow-list
/// (`argparse.Namespace`, a numpy array, a whole `nn.Module`), kept as data: the global's name,
/// what the pickle passes to it, and the state it sets. Nothing is imported or executed.
///
/// The reader makes one wherever `torch.load(weights_only=True)` would refuse the file, so the
/// tree around it stays reachable: tensors inside (a whole module's `_parameters`) are real
/// tensors. A bare global (a class or function named but not called, such as `numpy.ndarray` passed
/// to numpy's `_reconstruct`) is one too, with ``Construction-swift.enum/reference``.
///
/// Its parts are the fields of Python's `__reduce__` tuple, and are its children in key paths, in
/// the order a pickle holds them: `args`, `kwargs`, `listitems`, `dictitems`, `state` (each only
/// when present and not empty). So a Namespace at `args` has its `lr` at `args/state/lr`, and a
/// whole model's weight is at `state/_modules/fc/state/_parameters/weight`.
///
/// Writing one back is refused unless ``SaveOptions/keepObjects`` is set; then `.pt` and `.ckpt`
/// write it as it was read (the global, its arguments, REDUCE or NEWOBJ, the items, BUILD), so
/// `torch.load(weights_only=False)` rebuilds an equal object.
public struct PickledObject: Sendable, Equatable {
    /// How the pickle produced the object.
    public enum Construction: String, Sendable, CaseIterable {
        /// The global itself, named but not called (`GLOBAL`): a class or a function.
        case reference
        /// `callable(*args)` (`REDUCE`).
        case reduce
        /// `cls.__new__(cls, *args, **kwargs)` (`NEWOBJ`, or `NEWOBJ_EX` with keyword arguments).
        case newObject = "newobj"
    }

    /// The global's module as the pickle spells it (`argparse`, `numpy._core.multiarray`).
    public var module: String
    /// The global's name in its module (`Namespace`, `_reconstruct`).
    public var name: String
    /// Whether the global is only named, called, or instantiated.
    public var construction: Construction
    /// The positional arguments of the call; empty for a reference.
    public var args: [StateValue]
    /// The keyword arguments of `NEWOBJ_EX`, in order; empty otherwise.
    public var kwargs: OrderedMap<String, StateValue>
    /// What `BUILD` passes to `__setstate__` (usually the instance `__dict__`), nil without `BUILD`.
    public var state: StateValue?
    /// Items appended to the object (`APPEND`, `APPENDS`: a list subclass).
    public var listItems: [StateValue]
    /// Items set on the object (`SETITEM`, `SETITEMS`: a dict subclass such as `defaultdict`), in order.
    public var dictItems: OrderedMap<StateKey, StateValue>

    /// Creates a placeholder.
    ///
    /// - Parameters:
    ///   - module: The global's module.
    ///   - name: The global's name.
    ///   - construction: Reference, call or instantiation.
    ///   - args: Positional arguments of a call.
    ///   - kwargs: Keyword arguments of an instantiation.
    ///   - state: The `BUILD` state, nil for none.
    ///   - listItems: Appended items.
    ///   - dictItems: Set items.
    public init(
        module: String, name: String, construction: Construction = .reference, args: [StateValue] = [],
        kwargs: OrderedMap<String, StateValue> = [:], state: StateValue? = nil, listItems: [StateValue] = [],
        dictItems: OrderedMap<StateKey, StateValue> = [:]
    ) {
        self.module = module
        self.name = name
        self.construction = construction
        self.args = args
        self.kwargs = kwargs
        self.state = state
        self.listItems = listItems
        self.dictItems = dictItems
    }

    /// `module.name` (`argparse.Namespace`).
    public var qualifiedName: String { "\(module).\(name)" }

    /// How it reads in Python: `argparse.Namespace(...)` for a call, `numpy.ndarray` for a reference.
    public var summary: String { construction == .reference ? qualifiedName : "\(qualifiedName)(...)" }

    /// The parts present, each a child in key paths: `args` (a tuple), `kwargs` (a dict), `listitems`
    /// (a list), `dictitems` (a dict), `state` (whatever `BUILD` received). Empty ones are left out.
    public var parts: [(key: String, value: StateValue)] {
        var parts: [(key: String, value: StateValue)] = []
        if !args.isEmpty { parts.append(("args", .tuple(args))) }
        if !kwargs.isEmpty {
            parts.append(("kwargs", .dict(StateDict(OrderedDictionary(uniqueKeysWithValues: kwargs.map { (StateKey.string($0.key), $0.value) })))))
        }
        if !listItems.isEmpty { parts.append(("listitems", .list(listItems))) }
        if !dictItems.isEmpty { parts.append(("dictitems", .dict(StateDict(dictItems.storage)))) }
        if let state { parts.append(("state", state)) }
        return parts
    }

    /// The part called `key` (see ``parts``), nil when it is absent.
    public subscript(part key: String) -> StateValue? {
        parts.first { $0.key == key }?.value
    }

    /// The object with each part replaced by `transform(name, part)`; a part must keep its type
    /// (`args` a tuple, `kwargs` and `dictitems` dicts, `listitems` a list), and a nil result
    /// empties the part (removes the state).
    package func mapParts(_ transform: (String, StateValue) throws -> StateValue?) rethrows -> PickledObject {
        var copy = self
        for (key, value) in parts {
            let new = try transform(key, value)
            switch key {
            case "args":
                if case .tuple(let elements)? = new { copy.args = elements } else { copy.args = [] }
            case "kwargs":
                var kwargs = OrderedMap<String, StateValue>()
                if case .dict(let dict)? = new {
                    for (key, item) in dict.items { if case .string(let name) = key { kwargs[name] = item } }
                }
                copy.kwargs = kwargs
            case "listitems":
                if case .list(let elements)? = new { copy.listItems = elements } else { copy.listItems = [] }
            case "dictitems":
                if case .dict(let dict)? = new { copy.dictItems = OrderedMap(dict.items) } else { copy.dictItems = [:] }
            default:
                copy.state = new
            }
        }
        return copy
    }
}

extension StateValue {
    /// Visits every ``PickledObject`` with its key path, depth first in tree order, objects inside
    /// objects included (a numpy array's `numpy.ndarray` reference in its `args`).
    ///
    /// - Parameter body: Called with each object's key path and the object.
    public func forEachObject(_ body: (_ path: [StateKey], _ object: PickledObject) throws -> Void) rethrows {
        try forEachValue { path, value in
            if case .object(let object) = value { try body(path, object) }
        }
    }

    /// Visits every value with its key path, depth first in tree order (see ``children``), the
    /// root first.
    ///
    /// - Parameter body: Called with each value's key path and the value.
    package func forEachValue(_ body: (_ path: [StateKey], _ value: StateValue) throws -> Void) rethrows {
        // An explicit stack, not recursion: the deepest tree the reader accepts must not need a
        // deep thread stack to be written (every writer looks for objects first).
        var path: [StateKey] = []
        try body(path, self)
        var stack: [(children: [(key: StateKey, value: StateValue)], next: Int)] = [(children, 0)]
        while let top = stack.indices.last {
            guard stack[top].next < stack[top].children.count else {
                stack.removeLast()
                if !stack.isEmpty { path.removeLast() }
                continue
            }
            let (key, child) = stack[top].children[stack[top].next]
            stack[top].next += 1
            path.append(key)
            try body(path, child)
            if child.mayHoldValues {
                stack.append((child.children, 0))
            } else {
                path.removeLast()
            }
        }
    }

    /// False for values that hold no other values, to skip building their (empty) children.
    private var mayHoldValues: Bool {
        switch self {
        case .dict, .list, .tuple, .set, .object, .record: return true
        default: return false
        }
    }

    /// True when the tree holds a ``PickledObject`` anywhere.
    public var containsObjects: Bool {
        var found = false
        forEachObject { _, _ in found = true }
        return found
    }
}
