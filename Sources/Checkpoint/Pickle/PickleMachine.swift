import OrderedCollections

/// A value on the pickle machine's stack or in its memo.
///
/// Mutable containers are referred to by index into ``PickleMachine/nodes`` instead of being
/// nested, so that memo aliasing works (an `APPEND` after a `BINPUT` is seen through every
/// reference) and so that no deeply nested Swift value exists before the depth check.
enum PickleObject {
    // Scalars get their own cases: wrapping them in StateValue (an indirect enum) would
    // allocate for every int and string the pickle pushes.
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    /// Any other finished value with no containers inside (bytes, tensor, Size, device, ...).
    case value(StateValue)
    case node(Int)
    case global(PickleGlobal)
    case storage(PickleStorage)
}

/// A storage returned by a persistent id, with the dtype its storage class names.
struct PickleStorage {
    var storage: Storage
    /// nil for `UntypedStorage`.
    var dtype: DType?
    /// For a storage view of the pre-1.6 format (`view_metadata`): where the view starts in the
    /// root storage and how many bytes it spans; tensors on it are offset and bounded by it.
    var view: (byteOffset: Int, byteCount: Int)? = nil
}

/// The parts of an object outside the allow-list (see ``PickledObject``): its global, the call
/// that made it, and the nodes its arguments, items and state were put in.
struct PickleObjectParts {
    var module: String
    var name: String
    var construction: PickledObject.Construction
    /// The tuple node of the positional arguments.
    var arguments: Int
    /// The keyword arguments of NEWOBJ_EX (a dict node), if any.
    var keywords: PickleObject?
    /// What BUILD passed, if it ran.
    var state: PickleObject?
    /// The list node APPEND(S) add to, made by the first one.
    var listItems: Int?
    /// The dict node SETITEM(S) set, made by the first one.
    var dictItems: Int?
}

/// A Python container under construction.
final class PickleNode {
    enum Kind: Equatable {
        case list, tuple, set
        case dict(ordered: Bool)
        /// An object outside the allow-list; its parts are in ``PickleNode/object``.
        case object
    }

    let kind: Kind
    /// Elements of a list, tuple or set.
    var elements: [PickleObject] = []
    /// Items of a dict.
    var items: OrderedDictionary<StateKey, PickleObject> = [:]
    /// The parts of an object.
    var object: PickleObjectParts?
    /// Attributes set on an OrderedDict by BUILD.
    var attributes: OrderedDictionary<String, PickleObject> = [:]
    /// The Python type of the first key that was neither str nor int; reported when the dict is
    /// converted, where its key path is known.
    var invalidKeyType: String?
    /// The items whose keys are neither str nor int, in order: a state tree refuses them (see
    /// ``invalidKeyType``), but DCP's `.metadata` is keyed by `MetadataIndex` objects.
    var otherKeyItems: [(key: PickleObject, value: PickleObject)] = []

    init(_ kind: Kind, elements: [PickleObject] = []) {
        self.kind = kind
        self.elements = elements
    }

    var pythonTypeName: String {
        switch kind {
        case .list: return "list"
        case .tuple: return "tuple"
        case .set: return "set"
        case .dict(let ordered): return ordered ? "OrderedDict" : "dict"
        case .object: return object.map { "\($0.module).\($0.name)" } ?? "object"
        }
    }
}

/// The pickle virtual machine: reads opcodes until STOP and returns the top of the stack.
struct PickleMachine {
    let bytes: UnsafeRawBufferPointer
    let file: String?
    let resolveStorage: (StorageReference) throws -> Storage
    /// Persistent ids as torch's pre-1.6 format writes them: `('storage', type, root_key, location,
    /// numel, view_metadata)` or `('module', cls, source_file, source)`.
    let legacyPersistentIDs: Bool
    let limits: ResourceLimits

    private(set) var nodes: [PickleNode] = []
    /// The offset of the next opcode; after ``run()``, one past the STOP.
    private(set) var position = 0
    private var opcodeOffset = 0
    private var opcode: PickleOpcode = .proto
    private var stack: [PickleObject] = []
    private var metastack: [[PickleObject]] = []
    /// The memo: indices 0, 1, 2, ... (what picklers write) in an array, any other index in a
    /// dictionary, so a hostile LONG_BINPUT 4294967295 allocates nothing.
    private var memoDense: [PickleObject] = []
    private var memoSparse: [Int: PickleObject] = [:]
    private var storages: [String: Storage] = [:]
    /// Values pushed so far, held to ``ResourceLimits/maximumValues``: each costs memory on the
    /// stack or in a container, whatever the input spent on it (a BINGET is 2 bytes).
    private var pushCount = 0
    /// What a new container counts toward ``pushCount``, in values: a scalar costs ~80 bytes by
    /// the time the tree is built, a container (its node, its table, its converted value) ~470.
    static let containerWeight = 6

    init(
        bytes: UnsafeRawBufferPointer, file: String?, legacyPersistentIDs: Bool = false, limits: ResourceLimits = .default,
        resolveStorage: @escaping (StorageReference) throws -> Storage
    ) {
        self.bytes = bytes
        self.file = file
        self.legacyPersistentIDs = legacyPersistentIDs
        self.limits = limits
        self.resolveStorage = resolveStorage
        // Every entry takes a MEMOIZE byte at least. Reserved once, the memo is never copied as it
        // grows: a copy holds the old and the new buffer at once, 3 times what the entries take,
        // past the budget of a cap grown with the file. Untouched pages are never resident; past
        // 2^24 entries it grows as usual.
        memoDense.reserveCapacity(min(limits.maximumMemoEntries, bytes.count, 1 << 24))
    }

    // MARK: Errors

    /// An error at the current opcode, its byte offset and name in the message.
    func failure(
        _ code: CheckpointError.Code, _ message: String, expected: String? = nil, found: String? = nil
    ) -> CheckpointError {
        CheckpointError(
            code, "pickle byte \(opcodeOffset) (\(opcode.name)): \(message)", file: file, expected: expected,
            found: found)
    }

    /// Another layer's error (a tensor view past its storage), placed at the current opcode.
    func located(_ error: CheckpointError) -> CheckpointError {
        var copy = error
        copy.message = "pickle byte \(opcodeOffset) (\(opcode.name)): \(error.message)"
        if copy.file == nil { copy.file = file }
        return copy
    }

    // MARK: Reading input

    private mutating func read(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0 else {
            throw failure(.malformedPickle, "negative length", found: "\(count)")
        }
        guard count <= bytes.count - position else {
            throw failure(
                .truncated, "the pickle ends inside an argument",
                expected: "\(count) bytes at offset \(position)", found: "\(bytes.count - position)")
        }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[position..<position + count])
        position += count
        return slice
    }

    private mutating func readByte() throws -> UInt8 {
        try read(1)[0]
    }

    /// A little-endian unsigned integer of `width` bytes.
    private mutating func readUInt(_ width: Int) throws -> UInt64 {
        let raw = try read(width)
        var value: UInt64 = 0
        for (index, byte) in raw.enumerated() { value |= UInt64(byte) << (8 * UInt64(index)) }
        return value
    }

    /// A length field, checked against what is left of the input before anything is allocated.
    private mutating func readLength(_ width: Int) throws -> Int {
        let length = try readUInt(width)
        guard length <= UInt64(bytes.count - position) else {
            throw failure(
                .truncated, "length field runs past the end of the pickle",
                expected: "at most \(bytes.count - position) bytes", found: "\(length)")
        }
        return Int(length)
    }

    /// A newline-terminated line (text opcodes, GLOBAL), without the newline.
    private mutating func readLine() throws -> String {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[position...])
        guard let newline = rest.firstIndex(of: 0x0A) else {
            throw failure(.truncated, "the pickle ends inside a line argument", expected: "a newline")
        }
        let line = try decodeUTF8(UnsafeRawBufferPointer(rebasing: rest[..<newline]))
        position += newline + 1
        return line
    }

    private func decodeUTF8(_ raw: UnsafeRawBufferPointer) throws -> String {
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw failure(
                .malformedPickle, "string is not valid UTF-8 (a lone surrogate is not supported either)")
        }
        return text
    }

    // MARK: Stack

    private mutating func pop() throws -> PickleObject {
        guard let top = stack.popLast() else {
            throw failure(
                .malformedPickle, "stack underflow", expected: "a value on the stack", found: "an empty stack")
        }
        return top
    }

    private func top() throws -> PickleObject {
        guard let top = stack.last else {
            throw failure(
                .malformedPickle, "stack underflow", expected: "a value on the stack", found: "an empty stack")
        }
        return top
    }

    /// The values pushed since the last MARK, which is removed.
    private mutating func popMark() throws -> [PickleObject] {
        guard let outer = metastack.popLast() else {
            throw failure(.malformedPickle, "no MARK to pop to", expected: "a MARK earlier on the stack")
        }
        let items = stack
        stack = outer
        return items
    }

    private mutating func push(_ object: PickleObject) {
        pushCount &+= 1
        stack.append(object)
    }

    mutating func newNode(_ kind: PickleNode.Kind, elements: [PickleObject] = []) -> PickleObject {
        .node(newNodeIndex(kind, elements: elements))
    }

    /// A new container's index in ``nodes``.
    mutating func newNodeIndex(_ kind: PickleNode.Kind, elements: [PickleObject] = []) -> Int {
        // The push of the node itself counts the first one.
        pushCount &+= Self.containerWeight - 1
        nodes.append(PickleNode(kind, elements: elements))
        return nodes.count - 1
    }

    /// The node a stack value refers to, if it is a container.
    func node(_ object: PickleObject) -> PickleNode? {
        if case .node(let index) = object { return nodes[index] }
        return nil
    }

    /// The Python type name of a stack value, for messages.
    func typeName(_ object: PickleObject) -> String {
        switch object {
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .value(let value): return value.pythonTypeName
        case .node(let index): return nodes[index].pythonTypeName
        case .global(let global): return global.qualifiedName
        case .storage(let storage): return storage.dtype?.legacyStorageName ?? "UntypedStorage"
        }
    }

    // MARK: Running

    /// Runs the machine to STOP.
    ///
    /// - Returns: The object STOP pops.
    mutating func run() throws -> PickleObject {
        let opcodes = PickleOpcode.byByte  // once: a static read in the loop calls swift_once per opcode
        while true {
            // One comparison each per opcode; what a pickle takes is known only as it runs (torch's
            // pre-1.6 format has data after each pickle).
            if pushCount > limits.maximumValues {
                throw limits.exceeded(
                    .maximumValues, found: "more than \(limits.maximumValues) by pickle byte \(opcodeOffset)",
                    what: "values pushed by the pickle", file: file)
            }
            if position > limits.maximumPickleBytes {
                throw limits.exceeded(
                    .maximumPickleBytes, found: "no STOP in the first \(limits.maximumPickleBytes) bytes", what: "pickle bytes",
                    file: file)
            }
            opcodeOffset = position
            guard position < bytes.count else {
                throw failure(.truncated, "the pickle ends without STOP", expected: "a STOP opcode")
            }
            let byte = bytes[position]
            position += 1
            guard let op = opcodes[Int(byte)] else {
                opcode = .stop
                throw CheckpointError(
                    .malformedPickle, "pickle byte \(opcodeOffset): unknown opcode 0x\(String(byte, radix: 16))",
                    file: file, found: "0x\(String(byte, radix: 16))")
            }
            opcode = op
            if op == .stop { return try pop() }
            try execute(op)
        }
    }

    private mutating func execute(_ op: PickleOpcode) throws {
        switch op {
        case .proto:
            let version = try readByte()
            guard version <= 5 else {
                throw failure(.unsupported, "pickle protocol \(version) is newer than 5", found: "\(version)")
            }
        case .frame:
            // Frames only group opcodes for buffered reading; the whole input is already in memory.
            _ = try readLength(8)
        case .stop:
            break

        // Scalars.
        case .none: push(.none)
        case .newTrue: push(.bool(true))
        case .newFalse: push(.bool(false))
        case .binInt: push(.int(Int64(Int32(truncatingIfNeeded: try readUInt(4)))))
        case .binInt1: push(.int(Int64(try readByte())))
        case .binInt2: push(.int(Int64(try readUInt(2))))
        case .long1:
            let count = try readLength(1)
            push(.int(try decodeLong(try read(count))))
        case .long4:
            let count = Int32(truncatingIfNeeded: try readUInt(4))
            guard count >= 0 else { throw failure(.malformedPickle, "negative byte count", found: "\(count)") }
            guard Int(count) <= bytes.count - position else {
                throw failure(.truncated, "length field runs past the end of the pickle", found: "\(count)")
            }
            push(.int(try decodeLong(try read(Int(count)))))
        case .int:
            let line = try readLine()
            switch line {
            case "00": push(.bool(false))
            case "01": push(.bool(true))
            default: push(.int(try parseDecimal(line)))
            }
        case .long:
            let line = try readLine()
            push(.int(try parseDecimal(line.hasSuffix("L") ? String(line.dropLast()) : line)))
        case .binFloat:
            // BINFLOAT is big-endian; readUInt composes little-endian.
            push(.float(Double(bitPattern: try readUInt(8).byteSwapped)))
        case .float:
            let line = try readLine()
            guard let value = Double(line) else {
                throw failure(.malformedPickle, "not a float", found: line)
            }
            push(.float(value))

        // Strings and bytes.
        case .binUnicode: push(.string(try decodeUTF8(try read(try readLength(4)))))
        case .shortBinUnicode: push(.string(try decodeUTF8(try read(try readLength(1)))))
        case .binUnicode8: push(.string(try decodeUTF8(try read(try readLength(8)))))
        case .shortBinString:
            // Python 2 str; torch.load decodes these as UTF-8.
            push(.string(try decodeUTF8(try read(try readLength(1)))))
        case .binString:
            let count = Int32(truncatingIfNeeded: try readUInt(4))
            guard count >= 0 else { throw failure(.malformedPickle, "negative string length", found: "\(count)") }
            guard Int(count) <= bytes.count - position else {
                throw failure(.truncated, "length field runs past the end of the pickle", found: "\(count)")
            }
            push(.string(try decodeUTF8(try read(Int(count)))))
        case .shortBinBytes: push(.value(.bytes(Array(try read(try readLength(1))))))
        case .binBytes: push(.value(.bytes(Array(try read(try readLength(4))))))
        case .binBytes8: push(.value(.bytes(Array(try read(try readLength(8))))))
        case .byteArray8: push(.value(.bytearray(Array(try read(try readLength(8))))))

        // Containers.
        case .emptyTuple: push(newNode(.tuple))
        case .emptyList: push(newNode(.list))
        case .emptyDict: push(newNode(.dict(ordered: false)))
        case .emptySet: push(newNode(.set))
        case .tuple: push(newNode(.tuple, elements: try popMark()))
        case .tuple1, .tuple2, .tuple3:
            let count = Int(op.rawValue - PickleOpcode.tuple1.rawValue) + 1
            guard stack.count >= count else {
                throw failure(
                    .malformedPickle, "stack underflow", expected: "\(count) values on the stack",
                    found: "\(stack.count)")
            }
            let elements = Array(stack.suffix(count))
            stack.removeLast(count)
            push(newNode(.tuple, elements: elements))
        case .list: push(newNode(.list, elements: try popMark()))
        case .dict:
            let items = try popMark()
            let dict = newNode(.dict(ordered: false))
            try setItems(items, into: dict)
            push(dict)
        case .append:
            let item = try pop()
            try appendTarget().elements.append(item)
        case .appends:
            let items = try popMark()
            try appendTarget().elements.append(contentsOf: items)
        case .setItem:
            let value = try pop()
            let key = try pop()
            try setItems([key, value], into: try top())
        case .setItems:
            let items = try popMark()
            try setItems(items, into: try top())
        case .addItems:
            let items = try popMark()
            guard let set = node(try top()), set.kind == .set else {
                throw failure(.malformedPickle, "ADDITEMS on a non-set", expected: "set", found: typeName(try top()))
            }
            set.elements.append(contentsOf: items)
        case .frozenSet:
            throw failure(.unsupported, "frozenset has no state-tree equivalent")

        // Stack and memo.
        case .mark:
            metastack.append(stack)
            stack = []
        case .pop:
            if stack.isEmpty { _ = try popMark() } else { stack.removeLast() }
        case .popMark:
            _ = try popMark()
        case .dup:
            push(try top())
        case .binPut: try put(Int(try readByte()))
        case .longBinPut: try put(Int(try readUInt(4)))
        case .put: try put(Int(try parseDecimal(try readLine())))
        case .memoize: try put(memoDense.count + memoSparse.count)
        case .binGet: try get(Int(try readByte()))
        case .longBinGet: try get(Int(try readUInt(4)))
        case .get: try get(Int(try parseDecimal(try readLine())))

        // Objects.
        case .global:
            let module = try readLine()
            let name = try readLine()
            push(.global(try lookUpGlobal(module: module, name: name)))
        case .stackGlobal:
            let name = try pop()
            let module = try pop()
            guard case .string(let moduleName) = module, case .string(let globalName) = name else {
                throw failure(
                    .malformedPickle, "STACK_GLOBAL needs two strings", expected: "str, str",
                    found: "\(typeName(module)), \(typeName(name))")
            }
            push(.global(try lookUpGlobal(module: moduleName, name: globalName)))
        case .reduce:
            let arguments = try pop()
            let callable = try pop()
            push(try call(callable, arguments: try tupleElements(arguments, role: "REDUCE arguments")))
        case .newObj:
            let arguments = try pop()
            let cls = try pop()
            push(try construct(cls, arguments: try tupleElements(arguments, role: "NEWOBJ arguments")))
        case .newObjEx:
            let keywords = try pop()
            let arguments = try pop()
            let cls = try pop()
            guard let keywordDict = node(keywords), case .dict = keywordDict.kind else {
                throw failure(.malformedPickle, "NEWOBJ_EX keywords must be a dict", found: typeName(keywords))
            }
            let elements = try tupleElements(arguments, role: "NEWOBJ_EX arguments")
            if case .global(.foreign) = cls {
                push(try construct(cls, arguments: elements, keywords: keywordDict.items.isEmpty ? nil : keywords))
                return
            }
            guard keywordDict.items.isEmpty, keywordDict.invalidKeyType == nil else {
                throw failure(.unsupported, "keyword arguments to \(typeName(cls)) are not supported")
            }
            push(try construct(cls, arguments: elements))
        case .build:
            let state = try pop()
            try build(try top(), state: state)
        case .binPersID:
            push(try persistentLoad(try pop()))

        case .persID, .string, .unicode, .inst, .obj, .ext1, .ext2, .ext4, .nextBuffer, .readonlyBuffer:
            throw failure(.unsupported, "opcode \(op.name) is not supported by the restricted unpickler")
        }
    }

    /// The allow-listed global, or a ``PickleGlobal/foreign(module:name:)`` placeholder for any
    /// other: nothing is imported, so naming one is never an error by itself.
    private mutating func lookUpGlobal(module: String, name: String) throws -> PickleGlobal {
        let global: PickleGlobal?
        do {
            global = try PickleGlobal.resolve(module: module, name: name)
        } catch let error as CheckpointError {
            throw located(error)
        }
        if let global { return global }
        // A name Python could not import, and that could not be written back as a GLOBAL line.
        guard !module.isEmpty, !name.isEmpty, !module.contains("\n"), !name.contains("\n") else {
            throw failure(
                .malformedPickle, "a global's module and name must be non-empty lines",
                found: "\(module.debugDescription), \(name.debugDescription)")
        }
        return .foreign(module: module, name: name)
    }

    /// The list APPEND(S) adds to: a list, or the list items of an object (a list subclass).
    private mutating func appendTarget() throws -> PickleNode {
        let target = try top()
        if let object = node(target), object.kind == .object { return nodes[itemNode(of: object, dict: false)] }
        guard let list = node(target), list.kind == .list else {
            throw failure(.malformedPickle, "\(opcode.name) on a non-list", expected: "list", found: typeName(target))
        }
        return list
    }

    /// The node holding an object's list items or dict items, made on first use.
    private mutating func itemNode(of object: PickleNode, dict: Bool) -> Int {
        if let index = dict ? object.object?.dictItems : object.object?.listItems { return index }
        let index = newNodeIndex(dict ? .dict(ordered: false) : .list)
        if dict { object.object?.dictItems = index } else { object.object?.listItems = index }
        return index
    }

    mutating func setItems(_ items: [PickleObject], into target: PickleObject) throws {
        if let object = node(target), object.kind == .object {
            return try setItems(items, into: .node(itemNode(of: object, dict: true)))
        }
        guard let dict = node(target), case .dict = dict.kind else {
            throw failure(
                .malformedPickle, "\(opcode.name) on a non-dict", expected: "dict or OrderedDict",
                found: typeName(target))
        }
        guard items.count % 2 == 0 else {
            throw failure(.malformedPickle, "odd number of values for key-value pairs", found: "\(items.count)")
        }
        var index = 0
        while index < items.count {
            switch items[index] {
            case .string(let key): dict.items[.string(key)] = items[index + 1]
            case .int(let key): dict.items[.int(key)] = items[index + 1]
            default:
                if dict.invalidKeyType == nil { dict.invalidKeyType = typeName(items[index]) }
                dict.otherKeyItems.append((items[index], items[index + 1]))
            }
            index += 2
        }
    }

    private mutating func put(_ index: Int) throws {
        guard index >= 0 else { throw failure(.malformedPickle, "negative memo index", found: "\(index)") }
        let value = try top()
        if index < memoDense.count {
            memoDense[index] = value
        } else if index == memoDense.count {
            if memoDense.count + memoSparse.count >= limits.maximumMemoEntries {
                throw limits.exceeded(
                    .maximumMemoEntries, found: "more than \(limits.maximumMemoEntries) at pickle byte \(opcodeOffset)",
                    what: "memo entries", file: file)
            }
            memoSparse[index] = nil
            memoDense.append(value)
        } else {
            if memoSparse[index] == nil, memoDense.count + memoSparse.count >= limits.maximumMemoEntries {
                throw limits.exceeded(
                    .maximumMemoEntries, found: "more than \(limits.maximumMemoEntries) at pickle byte \(opcodeOffset)",
                    what: "memo entries", file: file)
            }
            memoSparse[index] = value
        }
    }

    private mutating func get(_ index: Int) throws {
        guard let value = index >= 0 && index < memoDense.count ? memoDense[index] : memoSparse[index] else {
            throw failure(.malformedPickle, "bad memo index", expected: "an index stored by PUT", found: "\(index)")
        }
        push(value)
    }

    private func parseDecimal(_ text: String) throws -> Int64 {
        if let value = Int64(text) { return value }
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        if !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) {
            throw failure(.unsupported, "integer does not fit in 64 bits", found: text)
        }
        throw failure(.malformedPickle, "not an integer", found: text)
    }

    /// A two's-complement little-endian integer (LONG1, LONG4).
    private func decodeLong(_ raw: UnsafeRawBufferPointer) throws -> Int64 {
        guard let last = raw.last else { return 0 }
        let negative = last & 0x80 != 0
        let fill: UInt8 = negative ? 0xFF : 0x00
        // Bytes past the eighth must only repeat the sign; otherwise the value needs more bits.
        if raw.count > 8 {
            let signBitSet = raw[7] & 0x80 != 0
            guard raw[8...].allSatisfy({ $0 == fill }), signBitSet == negative else {
                throw failure(.unsupported, "integer does not fit in 64 bits", found: "\(raw.count)-byte integer")
            }
        }
        var value: UInt64 = negative ? ~0 : 0
        for index in 0..<min(raw.count, 8) {
            let shift = UInt64(8 * index)
            value &= ~(UInt64(0xFF) << shift)
            value |= UInt64(raw[index]) << shift
        }
        return Int64(bitPattern: value)
    }

    /// The elements of a tuple argument list.
    func tupleElements(_ object: PickleObject, role: String) throws -> [PickleObject] {
        guard let tuple = node(object), tuple.kind == .tuple else {
            throw failure(.malformedPickle, "\(role) must be a tuple", expected: "tuple", found: typeName(object))
        }
        return tuple.elements
    }

    // MARK: Persistent ids

    private mutating func persistentLoad(_ pid: PickleObject) throws -> PickleObject {
        if case .int = pid {
            throw failure(.unsupported, "integer persistent ids (torch's tar format, before 0.4) are not supported")
        }
        guard let tuple = node(pid), tuple.kind == .tuple else {
            throw failure(.malformedPickle, "persistent id must be a tuple", found: typeName(pid))
        }
        let fields = tuple.elements
        if legacyPersistentIDs, let first = fields.first, case .string("module") = asciiString(first) {
            // A pickled nn.Module class: torch returns the class (and only compares its source).
            guard fields.count == 4 else {
                throw failure(
                    .malformedPickle, "module persistent id has the wrong length",
                    expected: "('module', class, source_file, source)", found: "\(fields.count) fields")
            }
            return fields[1]
        }
        guard let first = fields.first, case .string("storage") = asciiString(first) else {
            throw failure(
                .malformedPickle, "persistent id must start with 'storage'", found: fields.first.map(typeName) ?? "()")
        }
        guard fields.count == (legacyPersistentIDs ? 6 : 5) else {
            throw failure(
                .malformedPickle, "storage persistent id has the wrong length",
                expected: legacyPersistentIDs
                    ? "('storage', storage_type, root_key, location, numel, view_metadata)"
                    : "('storage', storage_type, key, location, numel)",
                found: "\(fields.count) fields")
        }
        guard case .global(.storageType(let dtype)) = fields[1] else {
            throw failure(
                .malformedPickle, "persistent id's storage type is not a storage class", found: typeName(fields[1]))
        }
        let key: String
        switch asciiString(fields[2]) {
        case .string(let text): key = text
        case .int(let number): key = String(number)
        default: throw failure(.malformedPickle, "storage key must be a str", found: typeName(fields[2]))
        }
        guard case .string(let location) = asciiString(fields[3]) else {
            throw failure(.malformedPickle, "storage location must be a str", found: typeName(fields[3]))
        }
        guard case .int(let numel) = fields[4], numel >= 0 else {
            throw failure(.malformedPickle, "storage numel must be a non-negative int", found: describe(fields[4]))
        }
        let itemSize = dtype?.itemSize ?? 1
        let byteCount = try bytes(numel, itemSize, of: "storage")
        let storage: Storage
        if let cached = storages[key] {
            // The pre-1.6 format names one storage again for each tensor on it; a size that
            // disagrees with the first would have torch read the data into a different storage.
            guard !legacyPersistentIDs || cached.byteCount == byteCount else {
                throw failure(
                    .corrupt, "storage '\(key)' is named with two different sizes",
                    expected: "\(cached.byteCount) bytes", found: "\(byteCount) bytes")
            }
            storage = cached
        } else {
            storage = try resolveStorage(
                StorageReference(key: key, dtype: dtype, byteCount: byteCount, location: location))
            storages[key] = storage
        }
        var result = PickleStorage(storage: storage, dtype: dtype)
        if legacyPersistentIDs, !isNone(fields[5]) {
            result.view = try storageView(fields[5], itemSize: itemSize, rootBytes: byteCount)
        }
        return .storage(result)
    }

    /// `count × itemSize`, or an out-of-bounds error naming `what` when it overflows.
    private func bytes(_ count: Int64, _ itemSize: Int, of what: String) throws -> Int {
        let (byteCount, overflow) = Int(count).multipliedReportingOverflow(by: itemSize)
        guard !overflow else {
            throw failure(.outOfBounds, "\(what) size overflows", found: "\(count) × \(itemSize) bytes")
        }
        return byteCount
    }

    private func isNone(_ object: PickleObject) -> Bool {
        if case .none = object { return true }
        return false
    }

    /// The pre-1.6 format's `view_metadata = (view_key, offset, size)`, in elements of the storage's
    /// dtype: a window of the root storage (what torch before 0.4 called a storage view).
    private mutating func storageView(
        _ metadata: PickleObject, itemSize: Int, rootBytes: Int
    ) throws -> (byteOffset: Int, byteCount: Int) {
        guard let tuple = node(metadata), tuple.kind == .tuple, tuple.elements.count == 3,
            case .int(let offset) = tuple.elements[1], case .int(let size) = tuple.elements[2], offset >= 0, size >= 0
        else {
            throw failure(
                .malformedPickle, "storage view metadata must be (view_key, offset, size)", found: typeName(metadata))
        }
        let byteOffset = try bytes(offset, itemSize, of: "storage view offset")
        let byteCount = try bytes(size, itemSize, of: "storage view")
        guard byteOffset <= rootBytes, byteCount <= rootBytes - byteOffset else {
            throw failure(
                .outOfBounds, "storage view reaches past its root storage", expected: "at most \(rootBytes) bytes",
                found: "offset \(byteOffset) + \(byteCount) bytes")
        }
        return (byteOffset, byteCount)
    }

    /// Python 2 pickles may hold persistent-id fields as bytes; torch decodes them as ASCII.
    private func asciiString(_ object: PickleObject) -> PickleObject {
        if case .value(.bytes(let raw)) = object, raw.allSatisfy({ $0 < 0x80 }) {
            return .string(String(decoding: raw, as: UTF8.self))
        }
        return object
    }

    /// A short description of a stack value: its value for scalars, else its type.
    func describe(_ object: PickleObject) -> String {
        switch object {
        case .int(let value): return String(value)
        case .bool(let value): return value ? "True" : "False"
        case .string(let value): return "'\(value.prefix(60))'"
        default: return typeName(object)
        }
    }
}
