import OrderedCollections

/// Emits protocol-2 pickle opcodes the way CPython's C pickler does for the objects torch.save
/// sees, so the output matches torch.save's `data.pkl` opcode for opcode.
///
/// Python memoizes by object identity, which a value tree does not have: here globals and
/// strings are memoized by value (a repeated key is written once and fetched with BINGET),
/// containers are never shared. The strings of persistent ids (`'storage'`, storage keys,
/// locations) are memoized apart from the tree's own strings: in torch.save they are distinct
/// objects from equal-looking dict keys (`_metadata`'s `'0'` is not storage key `'0'`), so
/// keeping them apart reproduces torch's bytes in the common cases.
struct PickleWriter: PickleEmitter {
    var output: [UInt8] = []
    var memo = PickleMemo()
    private let storageKeys: [ObjectIdentifier: String]
    /// The storage class chosen for each storage when first met: a legacy typed storage's dtype,
    /// or nil for UntypedStorage.
    private var storageTypes: [ObjectIdentifier: DType?] = [:]

    /// Python's pickler writes dict items and list elements in batches of this many.
    private static let batchSize = 1000

    init(storageKeys: [ObjectIdentifier: String]) {
        self.storageKeys = storageKeys
    }

    mutating func writeRoot(_ value: StateValue) throws {
        output = [PickleOpcode.proto.rawValue, 2]
        try write(value, depth: 0)
        op(.stop)
    }

    // MARK: Containers

    /// A tuple: EMPTY_TUPLE, TUPLE1-3, or MARK … TUPLE, memoized unless empty.
    private mutating func tuple(count: Int, _ elements: (inout PickleWriter) throws -> Void) rethrows {
        if count == 0 { return op(.emptyTuple) }
        if count > 3 { op(.mark) }
        try elements(&self)
        closeTuple(count: count)
    }

    /// TUPLE1-3 (or TUPLE after a MARK) for a non-empty tuple of `count` elements, then BINPUT.
    private mutating func closeTuple(count: Int) {
        switch count {
        case 1: op(.tuple1)
        case 2: op(.tuple2)
        case 3: op(.tuple3)
        default: op(.tuple)
        }
        memoize()
    }

    private mutating func key(_ key: StateKey) throws {
        switch key {
        case .string(let text): try string(text)
        case .int(let number): integer(number)
        }
    }

    // MARK: Values

    /// A step of the writer's explicit stack: containers schedule their children and closing
    /// opcodes here instead of recursing, so the deepest tree needs no more thread stack than a
    /// flat one.
    private enum Task {
        case value(StateValue, depth: Int)
        case key(StateKey)
        case op(PickleOpcode)
        case memoize
        /// TUPLE1-3 or TUPLE for a tuple of this many elements, then BINPUT.
        case closeTuple(count: Int)
    }

    private mutating func write(_ root: StateValue, depth: Int) throws {
        var tasks: [Task] = [.value(root, depth: depth)]
        func schedule(_ steps: [Task]) { tasks.append(contentsOf: steps.reversed()) }
        while let task = tasks.popLast() {
            switch task {
            case .op(let opcode): op(opcode)
            case .memoize: memoize()
            case .key(let key): try self.key(key)
            case .closeTuple(let count): closeTuple(count: count)
            case .value(let value, let depth):
                // A data value is written as numpy or Python pickles it (see DataGlobalCodec).
                if let encoded = try DataGlobalCodec.encode(value) {
                    try checkDepth(depth)
                    schedule(try objectTasks(encoded, depth: depth))
                    continue
                }
                switch value {
                case .list(let elements):
                    try checkDepth(depth)
                    op(.emptyList)
                    memoize()
                    schedule(appendTasks(elements, depth: depth + 1))
                case .tuple(let elements):
                    try checkDepth(depth)
                    if elements.isEmpty {
                        op(.emptyTuple)
                    } else {
                        if elements.count > 3 { op(.mark) }
                        schedule(elements.map { .value($0, depth: depth + 1) } + [.closeTuple(count: elements.count)])
                    }
                case .set(let elements):
                    // set.__reduce__ at protocol 2: (set, (list(self),)).
                    try checkDepth(depth)
                    global("__builtin__", "set")
                    op(.emptyList)
                    memoize()
                    schedule(appendTasks(elements, depth: depth + 1) + [.closeTuple(count: 1), .op(.reduce), .memoize])
                case .dict(let dict):
                    try checkDepth(depth)
                    schedule(try dictTasks(dict, depth: depth))
                case .object(let object):
                    try checkDepth(depth)
                    schedule(try objectTasks(object, depth: depth))
                default:
                    try writeLeaf(value)
                }
            }
        }
    }

    private func checkDepth(_ depth: Int) throws {
        guard depth < Unpickler.maximumNestingDepth else {
            throw CheckpointError(
                .invalidArgument, "containers nest deeper than \(Unpickler.maximumNestingDepth) levels",
                expected: "at most \(Unpickler.maximumNestingDepth)")
        }
    }

    /// A value that holds no other values.
    private mutating func writeLeaf(_ value: StateValue) throws {
        switch value {
        case .none: op(.none)
        case .bool(let flag): bool(flag)
        case .int(let number): integer(number)
        case .float(let number): float(number)
        case .string(let text): try string(text)
        case .bytes(let raw): try bytes(raw)
        case .bytearray(let raw):
            global("__builtin__", "bytearray")
            if raw.isEmpty {
                op(.emptyTuple)
            } else {
                try tuple(count: 1) { try $0.bytes(raw) }
            }
            op(.reduce)
            memoize()
        case .complex(let real, let imaginary):
            global("__builtin__", "complex")
            tuple(count: 2) {
                $0.float(real)
                $0.float(imaginary)
            }
            op(.reduce)
            memoize()
        case .size(let dims):
            global("torch", "Size")
            tuple(count: 1) { writer in
                writer.tuple(count: dims.count) { inner in dims.forEach { inner.integer($0) } }
            }
            op(.reduce)
            memoize()
        case .device(let name):
            global("torch", "device")
            // torch.device pickles as (type,) or (type, index).
            if let colon = name.lastIndex(of: ":"), let index = Int64(name[name.index(after: colon)...]),
                !name[..<colon].contains(":")
            {
                try tuple(count: 2) {
                    try $0.string(String(name[..<colon]))
                    $0.integer(index)
                }
            } else {
                try tuple(count: 1) { try $0.string(name) }
            }
            op(.reduce)
            memoize()
        case .dtype(let dtype):
            global("torch", dtype.torchName)
        case .tensor(let tensor):
            try self.tensor(tensor)
        case .list, .tuple, .set, .dict, .object, .record:
            preconditionFailure("containers are written by write(_:depth:)")
        }
    }

    /// Python 3's protocol-2 form of bytes: `_codecs.encode(latin1_text, 'latin1')`. Used for empty
    /// bytes too, where Python writes `bytes()`, which torch's weights-only loader refuses.
    private mutating func bytes(_ raw: [UInt8]) throws {
        global("_codecs", "encode")
        try tuple(count: 2) {
            try $0.string(String(String.UnicodeScalarView(raw.map { Unicode.Scalar($0) })))
            try $0.string("latin1")
        }
        op(.reduce)
        memoize()
    }

    /// CPython's `batch_list_exact`: one APPEND for a single element, else MARK … APPENDS per batch.
    private func appendTasks(_ elements: [StateValue], depth: Int) -> [Task] {
        if elements.count == 1 { return [.value(elements[0], depth: depth), .op(.append)] }
        var tasks: [Task] = []
        tasks.reserveCapacity(elements.count + 2 * (elements.count / Self.batchSize + 1))
        var start = 0
        while start < elements.count {
            let end = min(start + Self.batchSize, elements.count)
            tasks.append(.op(.mark))
            for element in elements[start..<end] { tasks.append(.value(element, depth: depth)) }
            tasks.append(.op(.appends))
            start = end
        }
        return tasks
    }

    /// OrderedDict.__reduce__ is (OrderedDict, (), vars(self) or None, None, iter(items)); a
    /// plain dict is EMPTY_DICT and its items.
    private mutating func dictTasks(_ dict: StateDict, depth: Int) throws -> [Task] {
        let items = Array(dict.items.elements)
        if dict.isOrderedDict {
            global("collections", "OrderedDict")
            op(.emptyTuple)
            op(.reduce)
            memoize()
            var tasks = setItemTasks(items, exactDict: false, depth: depth + 1)
            if !dict.attributes.isEmpty {
                let attributes = dict.attributes.map { (key: StateKey.string($0.key), value: $0.value) }
                tasks += [.op(.emptyDict), .memoize]
                tasks += setItemTasks(attributes, exactDict: true, depth: depth + 1)
                tasks.append(.op(.build))
            }
            return tasks
        }
        guard dict.attributes.isEmpty else {
            throw CheckpointError(
                .invalidArgument, "a plain dict cannot carry attributes; only an OrderedDict can",
                found: dict.attributes.keys.joined(separator: ", "))
        }
        op(.emptyDict)
        memoize()
        return setItemTasks(items, exactDict: true, depth: depth + 1)
    }

    /// A placeholder as CPython's `save_reduce` writes the object it stands for: the global (and
    /// nothing else for a reference), the arguments tuple, REDUCE or NEWOBJ (NEWOBJ_EX after a
    /// keyword dict), the memo, then appended items, set items, and the state with BUILD. The parts
    /// sit one level below the object and their items two, as the reader counts them.
    private mutating func objectTasks(_ object: PickledObject, depth: Int) throws -> [Task] {
        for part in [object.module, object.name] where part.isEmpty || part.contains("\n") {
            throw CheckpointError(
                .invalidArgument, "a placeholder's module and name must be non-empty and without newlines",
                found: object.qualifiedName.debugDescription)
        }
        global(object.module, object.name)
        guard object.construction != .reference else {
            guard object.args.isEmpty, object.kwargs.isEmpty, object.state == nil, object.listItems.isEmpty,
                object.dictItems.isEmpty
            else {
                throw CheckpointError(
                    .invalidArgument, "a reference to a global has no arguments, items or state",
                    found: object.qualifiedName)
            }
            return []
        }
        var tasks: [Task] = [.value(.tuple(object.args), depth: depth + 1)]
        if object.construction == .reduce {
            guard object.kwargs.isEmpty else {
                throw CheckpointError(
                    .invalidArgument, "only NEWOBJ takes keyword arguments", found: object.qualifiedName)
            }
            tasks.append(.op(.reduce))
        } else if object.kwargs.isEmpty {
            tasks.append(.op(.newObj))
        } else {
            let keywords = StateDict(OrderedDictionary(uniqueKeysWithValues: object.kwargs.map { (StateKey.string($0.key), $0.value) }))
            tasks += [.value(.dict(keywords), depth: depth + 1), .op(.newObjEx)]
        }
        tasks.append(.memoize)
        if !object.listItems.isEmpty {
            try checkDepth(depth + 1)
            tasks += appendTasks(object.listItems, depth: depth + 2)
        }
        if !object.dictItems.isEmpty {
            try checkDepth(depth + 1)
            tasks += setItemTasks(Array(object.dictItems.storage.elements), exactDict: false, depth: depth + 2)
        }
        if let state = object.state {
            tasks += [.value(state, depth: depth + 1), .op(.build)]
        }
        return tasks
    }

    /// CPython's `batch_dict_exact` (a plain dict: MARK … SETITEMS per batch, including an empty
    /// last batch after a full one) or `batch_dict` (other mappings: a lone last item is SETITEM).
    private func setItemTasks(_ items: [(key: StateKey, value: StateValue)], exactDict: Bool, depth: Int) -> [Task] {
        if items.isEmpty { return [] }
        if items.count == 1 { return [.key(items[0].key), .value(items[0].value, depth: depth), .op(.setItem)] }
        var tasks: [Task] = []
        tasks.reserveCapacity(2 * items.count + 2 * (items.count / Self.batchSize + 2))
        var start = 0
        while true {
            let end = min(start + Self.batchSize, items.count)
            let count = end - start
            if count == 0 && !exactDict { break }
            if count == 1 && !exactDict {
                tasks += [.key(items[start].key), .value(items[start].value, depth: depth), .op(.setItem)]
                break
            }
            tasks.append(.op(.mark))
            for (key, value) in items[start..<end] {
                tasks.append(.key(key))
                tasks.append(.value(value, depth: depth))
            }
            tasks.append(.op(.setItems))
            if count < Self.batchSize { break }
            start = end
        }
        return tasks
    }

    // MARK: Tensors

    private mutating func tensor(_ tensor: Tensor) throws {
        guard !tensor.requiresGrad || tensor.dtype.isFloatingPoint || tensor.dtype.isComplex else {
            throw CheckpointError(
                .invalidArgument,
                "only floating-point and complex tensors can require gradients (torch.load refuses others)",
                found: "requires_grad on a \(tensor.dtype) tensor")
        }
        if tensor.isParameter {
            // Parameter.__reduce_ex__: _rebuild_parameter(self.data, requires_grad, OrderedDict()).
            global("torch._utils", "_rebuild_parameter")
            var data = tensor
            data.isParameter = false
            data.requiresGrad = false
            try self.tuple(count: 3) { writer in
                try writer.tensor(data)
                writer.bool(tensor.requiresGrad)
                writer.emptyHooks()
            }
            op(.reduce)
            memoize()
            return
        }
        let storageID = ObjectIdentifier(tensor.storage)
        guard let key = storageKeys[storageID] else {
            throw CheckpointError(
                .invalidArgument, "a tensor's storage has no record key",
                expected: "a key in storageKeys for every storage")
        }
        let storageType: DType?
        if let chosen = storageTypes[storageID] {
            storageType = chosen
        } else {
            let dtype = tensor.dtype
            storageType =
                dtype.legacyStorageName != nil && tensor.storage.byteCount % dtype.itemSize == 0 ? dtype : nil
            storageTypes[storageID] = storageType
        }
        let explicitDType = storageType != tensor.dtype
        global("torch._utils", explicitDType ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2")
        op(.mark)
        try persistentID(key: key, storageType: storageType, byteCount: tensor.storage.byteCount)
        integer(Int64(tensor.storageOffset))
        tuple(count: tensor.shape.count) { writer in tensor.shape.forEach { writer.integer(Int64($0)) } }
        tuple(count: tensor.strides.count) { writer in tensor.strides.forEach { writer.integer(Int64($0)) } }
        bool(tensor.requiresGrad)
        emptyHooks()
        if explicitDType { global("torch", tensor.dtype.torchName) }
        op(.tuple)
        memoize()
        op(.reduce)
        memoize()
    }

    /// `('storage', storage_type, key, 'cpu', numel)` then BINPERSID.
    private mutating func persistentID(key: String, storageType: DType?, byteCount: Int) throws {
        op(.mark)
        try string("storage", inPersistentID: true)
        let numel: Int
        if let storageType, let className = storageType.legacyStorageName {
            global("torch", className)
            numel = byteCount / storageType.itemSize
        } else {
            global("torch.storage", "UntypedStorage")
            numel = byteCount
        }
        try string(key, inPersistentID: true)
        try string("cpu", inPersistentID: true)
        integer(Int64(numel))
        op(.tuple)
        memoize()
        op(.binPersID)
    }

    /// `collections.OrderedDict()`, the backward_hooks argument torch always writes.
    private mutating func emptyHooks() {
        global("collections", "OrderedDict")
        op(.emptyTuple)
        op(.reduce)
        memoize()
    }
}
