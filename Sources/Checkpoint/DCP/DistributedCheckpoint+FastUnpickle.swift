import Foundation

/// A decoder specialised to the pickles torch and ckpt write as `.metadata`: the general pickle
/// machine makes a class instance per tuple, dict and dataclass (about 130,000 for 64 ranks of
/// 129 tensors) and strings and arrays that are retained and released at every step, which made
/// opening such a checkpoint take 300 ms. Here every value is a plain enum (a string is a range
/// of the input), containers are structs in one array, and `torch.Size` arguments are used in
/// place.
///
/// It decodes a strict subset of what the restricted unpickler accepts: the binary opcodes
/// torch's `pickle.dump` writes (protocols 2 to 5), DCP's dataclasses, `torch.Size` and torch
/// dtypes. Nothing is imported or run. Any other global, any other opcode or shape, anything
/// inconsistent makes it give up (nil), and the general path decodes the file and gives the
/// error the file deserves, so both paths agree on every file the fast one reads.
///
/// It honours the resource caps with its own, cheaper, units: a value here takes 16 bytes where
/// the general machine's takes ~80, so it holds its stack, memo, pool and nodes together to
/// ``valueBudgetFactor`` times ``ResourceLimits/maximumValues`` (16 MiB at the default) and its
/// memo to ``ResourceLimits/maximumMemoEntries``, and gives up past them (the general path then
/// refuses the file with its own counts, or reads it); it counts DCP chunks as it decodes them and
/// throws ``CheckpointError/Code/limitExceeded`` past ``ResourceLimits/maximumDCPChunks`` and
/// ``ResourceLimits/maximumDCPChunksPerTensor``, as the general path does.
struct FastMetadataDecoder: ~Copyable {
    typealias Metadata = DistributedCheckpoint.Metadata

    /// A global the decoder knows: torch.Size, a dtype, or one of DCP's dataclasses and helpers
    /// (by its name in ``DistributedCheckpoint/Metadata/allowedGlobals``).
    enum Global: Equatable, BitwiseCopyable {
        case size
        case dtype(DType)
        case dcp(Class)
    }

    /// The names of ``DistributedCheckpoint/Metadata/allowedGlobals``, each in one module only.
    enum Class: String, BitwiseCopyable {
        case metadata = "Metadata", tensorStorageMetadata = "TensorStorageMetadata", tensorProperties = "TensorProperties"
        case chunkStorageMetadata = "ChunkStorageMetadata", bytesStorageMetadata = "BytesStorageMetadata"
        case metadataIndex = "MetadataIndex", storageMeta = "StorageMeta", memoryFormatEncoding = "_MEM_FORMAT_ENCODING"
        case storageInfo = "_StorageInfo", getLayout = "_get_layout"
        case posixPath = "PosixPath", windowsPath = "WindowsPath", purePosixPath = "PurePosixPath", pureWindowsPath = "PureWindowsPath"

        var isPath: Bool { [.posixPath, .windowsPath, .purePosixPath, .pureWindowsPath].contains(self) }
    }

    enum Value: BitwiseCopyable {
        case none
        case bool(Bool)
        case int(Int64)
        case float(Double)
        /// UTF-8 bytes of the input, already validated.
        case string(offset: Int32, count: Int32)
        case global(Global)
        case node(Int32)
        /// `torch.Size(t)`: the node of the tuple or list of ints `t`.
        case size(Int32)
    }

    /// A container: its elements are `count` values of ``pool`` from `start` (a tuple's or list's
    /// elements, a dict's keys and values alternating, an object's constructor arguments).
    ///
    /// 16 bytes, as a ``Value`` is (32-bit positions: the decoder reads pickles under 2 GiB and
    /// gives up past 2²⁹ values, before any array nears 2³¹ entries). Decoding a 64-rank checkpoint touches about
    /// 10 MiB of these arrays, and first touches of fresh pages were a quarter of its time.
    struct Node: BitwiseCopyable {
        enum Kind: UInt8, BitwiseCopyable { case tuple, list, dict, object }
        var kind: Kind
        /// An object's class.
        var cls: Class? = nil
        var start: Int32
        var count: Int32
        /// The node BUILD gave an object as its state (a dict, or `TensorProperties`' tuple), -1
        /// before BUILD.
        var state: Int32 = -1

        init(kind: Kind, start: Int, count: Int, cls: Class? = nil) {
            self.kind = kind
            self.cls = cls
            self.start = Int32(truncatingIfNeeded: start)
            self.count = Int32(truncatingIfNeeded: count)
        }

        var range: Range<Int> { Int(start)..<Int(start) + Int(count) }
    }

    /// Gives up: the general path takes over.
    struct Unhandled: Error {}

    /// How many of this decoder's values (stack, memo and pool entries; a node counts 2) one
    /// unit of ``ResourceLimits/maximumValues`` allows: the general machine's scalar costs ~80
    /// bytes, a value or a node here 16, so 4 keeps the fast path within about what the
    /// general one may spend, while a 64-rank checkpoint of 129 tensors (~30 values a chunk here,
    /// ~130 weighted values in the general machine) fits the default.
    static let valueBudgetFactor = 4

    let bytes: UnsafeRawBufferPointer
    let file: String
    let limits: ResourceLimits
    /// ``valueBudgetFactor`` times ``ResourceLimits/maximumValues``, saturating.
    private let valueBudget: Int
    private var chunkCount = 0
    private var position = 0
    private var stack: Buffer<Value>
    /// The stack height at each open MARK.
    private var marks: [Int] = []
    private var memo: Buffer<Value>
    private var nodes: Buffer<Node>
    /// Every container's elements, one after another: no allocation per container. A list or
    /// dict that grows when it is not last is first moved to the end.
    private var pool: Buffer<Value>
    /// The Swift string of each input string already converted, by offset: a name memoized once
    /// and named again by every chunk is made once.
    private var strings: [Int: String] = [:]

    /// The metadata, or nil when the pickle is not one this decoder reads or is past its value
    /// or memo budget (see the type's summary).
    ///
    /// - Parameters:
    ///   - bytes: The pickle.
    ///   - file: The `.metadata` path, for errors.
    ///   - limits: The resource caps (already made effective for the checkpoint's size).
    /// - Returns: The metadata, or nil for the general path to decode.
    /// - Throws: ``CheckpointError`` `.limitExceeded` past ``ResourceLimits/maximumDCPChunks`` or
    ///   ``ResourceLimits/maximumDCPChunksPerTensor``.
    static func decode(_ bytes: UnsafeRawBufferPointer, file: String = "", limits: ResourceLimits = .default) throws -> Metadata? {
        guard bytes.count < Int32.max else { return nil }
        var decoder = FastMetadataDecoder(bytes: bytes, file: file, limits: limits)
        do {
            let root = try decoder.run()
            return try decoder.metadata(root)
        } catch is Unhandled {
            return nil
        }
    }

    private init(bytes: UnsafeRawBufferPointer, file: String, limits: ResourceLimits) {
        self.bytes = bytes
        self.file = file
        self.limits = limits
        // At most 2²⁹, so that one opcode (which adds at most the stack and one node's elements,
        // each within the budget checked before it) cannot take an array past a 32-bit position.
        let (budget, overflow) = limits.maximumValues.multipliedReportingOverflow(by: Self.valueBudgetFactor)
        valueBudget = overflow ? 1 << 29 : min(budget, 1 << 29)
        // Room for them all up front keeps the arrays from being copied (and their new pages
        // touched) as they grow: a memo entry or a node takes at least an opcode byte, torch's
        // 64-rank files about 8, and the pool holds about 0.3 values per byte of torch's files
        // (more with the lists and dicts moved as they grow). Reserving costs address space only.
        stack = Buffer(capacity: 64)
        memo = Buffer(capacity: min(bytes.count / 4, 1 << 22))
        nodes = Buffer(capacity: min(bytes.count / 4, 1 << 22))
        pool = Buffer(capacity: min(bytes.count / 2, 1 << 23))
    }

    // MARK: Input

    @inline(__always)
    private mutating func read(_ count: Int) throws -> Int {
        guard count >= 0, count <= bytes.count - position else { throw Unhandled() }
        defer { position += count }
        return position
    }

    @inline(__always)
    private mutating func byte() throws -> UInt8 { bytes[try read(1)] }

    @inline(__always)
    private mutating func uint(_ width: Int) throws -> UInt64 {
        let start = try read(width)
        switch width {
        case 1: return UInt64(bytes[start])
        case 2: return UInt64(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: start, as: UInt16.self)))
        case 4: return UInt64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: start, as: UInt32.self)))
        case 8: return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: start, as: UInt64.self))
        default:
            var value: UInt64 = 0
            for index in 0..<width { value |= UInt64(bytes[start + index]) << (8 * UInt64(index)) }
            return value
        }
    }

    /// A string of `count` bytes, checked as the general machine checks it (valid UTF-8).
    private mutating func string(_ count: UInt64) throws -> Value {
        guard count <= UInt64(bytes.count - position) else { throw Unhandled() }
        let start = try read(Int(count))
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<start + Int(count)])
        if !raw.allSatisfy({ $0 < 0x80 }), String(validating: raw, as: UTF8.self) == nil { throw Unhandled() }
        return .string(offset: Int32(start), count: Int32(count))
    }

    /// GLOBAL's newline-terminated argument.
    private mutating func line() throws -> String {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[position...])
        guard let newline = rest.firstIndex(of: 0x0A),
            let text = String(validating: UnsafeRawBufferPointer(rebasing: rest[..<newline]), as: UTF8.self)
        else { throw Unhandled() }
        position += newline + 1
        return text
    }

    // MARK: Stack

    @inline(__always)
    private mutating func pop() throws -> Value {
        guard stack.count > (marks.last ?? 0) else { throw Unhandled() }
        return stack.removeLast()
    }

    @inline(__always)
    private mutating func top() throws -> Value {
        guard stack.count > (marks.last ?? 0) else { throw Unhandled() }
        return stack[stack.count - 1]
    }

    /// The stack height at the last MARK, which is removed.
    private mutating func popMark() throws -> Int {
        guard let mark = marks.popLast() else { throw Unhandled() }
        return mark
    }

    /// A new node of the values above stack height `from`, which leave the stack.
    @inline(__always)
    private mutating func newNode(_ kind: Node.Kind, from mark: Int? = nil) -> Int {
        let start = pool.count
        if let mark { moveToPool(from: mark) }
        nodes.append(Node(kind: kind, start: start, count: pool.count - start))
        return nodes.count - 1
    }

    @inline(__always)
    private mutating func push(_ kind: Node.Kind, from mark: Int? = nil) {
        stack.append(.node(Int32(newNode(kind, from: mark))))
    }

    /// Adds the values above stack height `mark` to a list's or dict's elements.
    private mutating func extend(_ index: Int, from mark: Int) {
        let range = nodes[index].range
        if range.upperBound != pool.count {
            nodes[index].start = Int32(pool.count)
            // One element at a time: appending a slice of the pool to itself would copy the pool.
            for position in range { pool.append(pool[position]) }
        }
        nodes[index].count += Int32(stack.count - mark)
        moveToPool(from: mark)
    }

    /// Moves the values above stack height `mark` to the end of the pool, one at a time: a slice
    /// of the stack would retain and release its buffer at every container.
    @inline(__always)
    private mutating func moveToPool(from mark: Int) {
        for position in mark..<stack.count { pool.append(stack[position]) }
        stack.truncate(to: mark)
    }

    /// A node's elements.
    private func elements(_ index: Int) -> Slice<UnsafeBufferPointer<Value>> {
        pool.elements(nodes[index].range)
    }

    /// The index of the node `value` refers to, when it is of `kind` (or `other`).
    private func node(_ value: Value, _ kind: Node.Kind, _ other: Node.Kind? = nil) throws -> Int {
        try Self.node(value, kind, other, in: nodes)
    }

    /// Static, so that ``run()`` borrows only the nodes while it changes the stack.
    @inline(__always)
    private static func node(_ value: Value, _ kind: Node.Kind, _ other: Node.Kind? = nil, in nodes: borrowing Buffer<Node>) throws -> Int {
        guard case .node(let node) = value else { throw Unhandled() }
        let index = Int(node)
        guard nodes[index].kind == kind || nodes[index].kind == other else { throw Unhandled() }
        return index
    }

    private static func global(module: String, name: String) throws -> Global {
        if Metadata.allowedGlobals[module]?.contains(name) == true, let cls = Class(rawValue: name) { return .dcp(cls) }
        switch try PickleGlobal.resolve(module: module, name: name) {
        case .torchSize?: return .size
        case .dtype(let dtype)?: return .dtype(dtype)
        default: throw Unhandled()
        }
    }

    // MARK: Running

    private mutating func run() throws -> Value {
        let opcodes = PickleOpcode.byByte  // once: a static read in the loop calls swift_once per opcode
        while true {
            // Every opcode adds at most one value or node, or moves one list: checked before each.
            guard memo.count <= limits.maximumMemoEntries,
                stack.count &+ memo.count &+ pool.count &+ 2 &* nodes.count <= valueBudget
            else { throw Unhandled() }
            guard let op = opcodes[Int(try byte())] else { throw Unhandled() }
            switch op {
            case .stop: return try pop()
            case .proto: guard try byte() <= 5 else { throw Unhandled() }
            case .frame: guard try uint(8) <= UInt64(bytes.count - position) else { throw Unhandled() }
            case .none: stack.append(.none)
            case .newTrue: stack.append(.bool(true))
            case .newFalse: stack.append(.bool(false))
            case .binInt: stack.append(.int(Int64(Int32(truncatingIfNeeded: try uint(4)))))
            case .binInt1: stack.append(.int(Int64(try byte())))
            case .binInt2: stack.append(.int(Int64(try uint(2))))
            case .long1:
                let count = Int(try byte())
                guard count <= 8 else { throw Unhandled() }
                let raw = try uint(count)
                let shift = UInt64(64 - 8 * count)
                stack.append(.int(count == 0 ? 0 : Int64(bitPattern: raw << shift) >> shift))
            case .binFloat: stack.append(.float(Double(bitPattern: try uint(8).byteSwapped)))
            case .shortBinUnicode: stack.append(try string(UInt64(try byte())))
            case .binUnicode: stack.append(try string(try uint(4)))
            case .binUnicode8: stack.append(try string(try uint(8)))
            case .emptyTuple: push(.tuple)
            case .emptyList: push(.list)
            case .emptyDict: push(.dict)
            case .tuple: push(.tuple, from: try popMark())
            case .list: push(.list, from: try popMark())
            case .dict:
                let mark = try popMark()
                guard (stack.count - mark) % 2 == 0 else { throw Unhandled() }
                push(.dict, from: mark)
            case .tuple1, .tuple2, .tuple3:
                let count = Int(op.rawValue - PickleOpcode.tuple1.rawValue) + 1
                guard stack.count - (marks.last ?? 0) >= count else { throw Unhandled() }
                push(.tuple, from: stack.count - count)
            case .append, .setItem:
                let count = op == .append ? 1 : 2
                guard stack.count - (marks.last ?? 0) > count else { throw Unhandled() }
                let target = try Self.node(stack[stack.count - count - 1], op == .append ? .list : .dict, in: nodes)
                extend(target, from: stack.count - count)
            case .appends, .setItems:
                let mark = try popMark()
                // The target is the value under the MARK, inside the frame below it.
                guard mark - (marks.last ?? 0) >= 1, op == .appends || (stack.count - mark) % 2 == 0 else { throw Unhandled() }
                let target = try Self.node(stack[mark - 1], op == .appends ? .list : .dict, in: nodes)
                extend(target, from: mark)
            case .mark: marks.append(stack.count)
            case .pop: _ = try pop()
            case .popMark: stack.truncate(to: try popMark())
            case .dup: stack.append(try top())
            case .binPut: try put(Int(try byte()))
            case .longBinPut: try put(Int(try uint(4)))
            case .memoize: try put(memo.count)
            case .binGet: try get(Int(try byte()))
            case .longBinGet: try get(Int(try uint(4)))
            case .global:
                let module = try line()
                let found = try Self.global(module: module, name: try line())
                stack.append(.global(found))
            case .stackGlobal:
                let name = try pop()
                let module = try pop()
                guard case .string(let nameOffset, let nameCount) = name, case .string(let moduleOffset, let moduleCount) = module
                else { throw Unhandled() }
                let found = try Self.global(
                    module: Self.text(Int(moduleOffset), Int(moduleCount), in: bytes), name: Self.text(Int(nameOffset), Int(nameCount), in: bytes))
                stack.append(.global(found))
            case .reduce, .newObj:
                let tuple = try Self.node(try pop(), .tuple, in: nodes)
                let arguments = nodes[tuple]
                guard case .global(let callable) = try pop() else { throw Unhandled() }
                switch callable {
                case .size:
                    if arguments.count == 0 {
                        stack.append(.size(Int32(newNode(.tuple))))
                    } else {
                        guard arguments.count == 1, case .node(let index) = pool[Int(arguments.start)],
                            nodes[Int(index)].kind == .tuple || nodes[Int(index)].kind == .list,
                            elements(Int(index)).allSatisfy({ if case .int = $0 { true } else { false } })
                        else { throw Unhandled() }
                        stack.append(.size(index))
                    }
                case .dcp(let name):
                    // A tuple never changes: the object shares its elements.
                    nodes.append(Node(kind: .object, start: Int(arguments.start), count: Int(arguments.count), cls: name))
                    stack.append(.node(Int32(nodes.count - 1)))
                case .dtype:
                    throw Unhandled()
                }
            case .build:
                guard case .node(let state) = try pop() else { throw Unhandled() }
                let object = try Self.node(try top(), .object, in: nodes)
                guard nodes[object].state < 0 else { throw Unhandled() }
                nodes[object].state = state
            default:
                throw Unhandled()
            }
        }
    }

    @inline(__always)
    private mutating func put(_ index: Int) throws {
        let value = try top()
        if index < memo.count {
            memo[index] = value
        } else if index == memo.count {
            memo.append(value)
        } else {
            throw Unhandled()
        }
    }

    @inline(__always)
    private mutating func get(_ index: Int) throws {
        guard index < memo.count else { throw Unhandled() }
        stack.append(memo[index])
    }

    // MARK: Values

    private static func text(_ offset: Int, _ count: Int, in bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]), as: UTF8.self)
    }

    private mutating func string(_ value: Value?) throws -> String {
        guard case .string(let offset, let count)? = value else { throw Unhandled() }
        if let known = strings[Int(offset)] { return known }
        let made = Self.text(Int(offset), Int(count), in: bytes)
        strings[Int(offset)] = made
        return made
    }

    private func isNone(_ value: Value?) -> Bool {
        switch value {
        case nil, .none?: return true
        default: return false
        }
    }

    private func integer(_ value: Value?) throws -> Int {
        guard case .int(let number)? = value, let result = Int(exactly: number) else { throw Unhandled() }
        return result
    }

    /// A torch.Size, or a tuple or list of ints.
    private func integers(_ value: Value?) throws -> [Int] {
        let index: Int
        switch value {
        case .size(let sizeIndex)?: index = Int(sizeIndex)
        case let value?: index = try node(value, .tuple, .list)
        case nil: throw Unhandled()
        }
        return try elements(index).map { try integer($0) }
    }

    /// An object's fields: BUILD's dict of str keys (the last of a repeated key counts, as in
    /// Python), none without BUILD.
    struct Fields {
        let items: Slice<UnsafeBufferPointer<Value>>
        let bytes: UnsafeRawBufferPointer

        subscript(name: StaticString) -> Value? {
            for pair in stride(from: items.endIndex - 2, through: items.startIndex, by: -2) {
                if case .string(let offset, let count) = items[pair], Int(count) == name.utf8CodeUnitCount,
                    memcmp(bytes.baseAddress! + Int(offset), name.utf8Start, Int(count)) == 0 {
                    return items[pair + 1]
                }
            }
            return nil
        }
    }

    private func fields(_ value: Value?, _ cls: Class) throws -> Fields {
        guard let value, case .node(let node) = value, nodes[Int(node)].kind == .object, nodes[Int(node)].cls == cls else {
            throw Unhandled()
        }
        let state = Int(nodes[Int(node)].state)
        guard state >= 0 else { return Fields(items: UnsafeBufferPointer(start: nil, count: 0)[...], bytes: bytes) }
        guard nodes[state].kind == .dict else { throw Unhandled() }
        let items = elements(state)
        for pair in stride(from: items.startIndex, to: items.endIndex, by: 2) {
            guard case .string = items[pair] else { throw Unhandled() }
        }
        return Fields(items: items, bytes: bytes)
    }

    /// A dict's items in order.
    private func pairs(_ value: Value?) throws -> [(key: Value, value: Value)] {
        guard let value else { throw Unhandled() }
        let items = elements(try node(value, .dict))
        return stride(from: items.startIndex, to: items.endIndex, by: 2).map { (items[$0], items[$0 + 1]) }
    }

    // MARK: Dataclasses

    private mutating func metadata(_ root: Value) throws -> Metadata {
        let field = try fields(root, .metadata)
        var items = OrderedMap<String, DistributedCheckpoint.Item>()
        for (key, value) in try pairs(field["state_dict_metadata"]) {
            let name = try string(key)
            items[name] = try item(value, name: name)
        }
        var paths = OrderedMap<String, [StateKey]>()
        if !isNone(field["planner_data"]) {
            for (key, value) in try pairs(field["planner_data"]) {
                let keys = elements(try node(value, .tuple, .list))
                guard !keys.isEmpty else { throw Unhandled() }
                paths[try string(key)] = try keys.map { key -> StateKey in
                    if case .int(let index) = key { return .int(index) }
                    return .string(try string(key))
                }
            }
        }
        // A name the pickle memoizes and refers to again (one string object in Python; torch's
        // 64-rank file has 234 string literals and 83,137 references to them) is found by its
        // position in the pickle, without hashing it again; other names by their text.
        var positions: [Int: Int] = [:]
        var matcher = StorageEntryMatcher()
        for (key, value) in try pairs(field["storage_data"]) {
            let index = try fields(key, .metadataIndex)
            let location = try location(value)
            guard case .string(let nameOffset, _)? = index["fqn"] else { throw Unhandled() }
            let offsets = isNone(index["offset"]) ? nil : try integers(index["offset"])
            let position: Int
            if let known = positions[Int(nameOffset)] {
                position = known
            } else if let found = items.storage.index(forKey: try string(index["fqn"])) {
                position = found
                positions[Int(nameOffset)] = found
            } else {
                continue
            }
            if matcher.attach(location, offsets: offsets, hint: Self.hint(index["index"]), toItemAt: position, in: &items) == .duplicate {
                throw Unhandled()
            }
        }
        return Metadata(
            items: items, paths: paths, version: isNone(field["version"]) ? nil : try string(field["version"]),
            checkpointID: try checkpointID(field["storage_meta"]))
    }

    /// `MetadataIndex.index`: a chunk's position, when it is an int (it is only a hint).
    private static func hint(_ value: Value?) -> Int? {
        guard case .int(let number)? = value else { return nil }
        return Int(exactly: number)
    }

    private mutating func item(_ value: Value, name: String) throws -> DistributedCheckpoint.Item {
        if case .node(let index) = value, nodes[Int(index)].cls == .bytesStorageMetadata {
            _ = try fields(value, .bytesStorageMetadata)
            return .bytes(location: nil)
        }
        let field = try fields(value, .tensorStorageMetadata)
        let (dtype, requiresGrad) = try properties(field["properties"])
        let shape = try integers(field["size"])
        guard let list = field["chunks"] else { throw Unhandled() }
        let listElements = elements(try node(list, .list))
        let path = "state_dict_metadata/\(KeyPathSyntax.escape(name))"
        try limits.check(.maximumDCPChunksPerTensor, listElements.count, what: "chunks of one tensor", file: file, path: "\(path)/chunks")
        chunkCount += listElements.count
        try limits.check(.maximumDCPChunks, chunkCount, what: "DCP chunks", file: file, path: path)
        let chunks = try listElements.map { element in
            let chunk = try fields(element, .chunkStorageMetadata)
            return DistributedCheckpoint.Chunk(offsets: try integers(chunk["offsets"]), sizes: try integers(chunk["sizes"]))
        }
        return .tensor(DistributedCheckpoint.TensorItem(dtype: dtype, shape: shape, chunks: chunks, requiresGrad: requiresGrad))
    }

    /// `TensorProperties`: its `__getstate__` tuple `(dtype, layout, requires_grad,
    /// memory_format, pin_memory[, strides])`, or a dict of fields in older files.
    private func properties(_ value: Value?) throws -> (DType, Bool) {
        guard case .node(let node)? = value, nodes[Int(node)].cls == .tensorProperties else { throw Unhandled() }
        var dtype: Value?
        var requiresGrad: Value?
        let state = Int(nodes[Int(node)].state)
        if state >= 0, nodes[state].kind == .tuple {
            let tuple = elements(state)
            guard tuple.count == 5 || tuple.count == 6 else { throw Unhandled() }
            (dtype, requiresGrad) = (tuple[tuple.startIndex], tuple[tuple.startIndex + 2])
        } else {
            let field = try fields(value, .tensorProperties)
            (dtype, requiresGrad) = (field["dtype"], field["requires_grad"])
        }
        guard case .global(.dtype(let type))? = dtype else { throw Unhandled() }
        switch requiresGrad {
        case .bool(let flag)?: return (type, flag)
        case nil: return (type, false)
        default: throw Unhandled()
        }
    }

    private mutating func location(_ value: Value) throws -> DistributedCheckpoint.Location {
        let field = try fields(value, .storageInfo)
        var transforms: [String] = []
        if let descriptors = field["transform_descriptors"], !isNone(descriptors) {
            transforms = try elements(try node(descriptors, .list, .tuple)).map { try string($0) }
        }
        let location = DistributedCheckpoint.Location(
            file: try string(field["relative_path"]), offset: try integer(field["offset"]), length: try integer(field["length"]),
            transforms: transforms)
        guard location.offset >= 0, location.length >= 0, !location.offset.addingReportingOverflow(location.length).overflow else {
            throw Unhandled()
        }
        return location
    }

    /// `storage_meta.checkpoint_id`: a str, or a `PosixPath` pickled as its parts.
    private mutating func checkpointID(_ value: Value?) throws -> String? {
        guard !isNone(value) else { return nil }
        let id = try fields(value, .storageMeta)["checkpoint_id"]
        guard !isNone(id) else { return nil }
        if case .string? = id { return try string(id) }
        guard case .node(let index)? = id, nodes[Int(index)].cls?.isPath == true else {
            throw Unhandled()
        }
        return DistributedCheckpoint.path(ofParts: try elements(Int(index)).map { try string($0) })
    }
}

extension FastMetadataDecoder {
    /// A growable array of plain values with no copy-on-write: the decoder appends to its stack,
    /// memo, nodes and pool at almost every one of the 547,163 opcodes of torch's 64-rank
    /// `.metadata`, and `Array`'s out-of-line uniqueness and capacity checks there cost about a
    /// tenth of that inspect's CPU (36.1 → 33.7 ms, best of 25 runs of each). Indices are checked;
    /// ``elements(_:)``'s view is valid until the next append.
    struct Buffer<Element: BitwiseCopyable>: ~Copyable {
        private var base: UnsafeMutablePointer<Element>
        private var capacity: Int
        private(set) var count = 0
        /// The mapping `base` is in, when it is one.
        private var mapping: (start: UnsafeMutableRawPointer, length: Int)?

        init(capacity: Int) {
            self.capacity = max(capacity, 16)
            (base, mapping) = Self.allocate(self.capacity)
        }

        deinit { Self.free(base, mapping) }

        /// Room for `capacity` elements. On Linux, 2 MiB or more is mapped 2 MiB-aligned and
        /// marked for transparent huge pages: a 64-rank `.metadata` fills about 8 MiB of these
        /// arrays, and faulting that in 4 KiB pages (2,200 faults) was a tenth of its inspect.
        /// Where huge pages are off, the mapping behaves as plain memory.
        static func allocate(_ capacity: Int) -> (UnsafeMutablePointer<Element>, (start: UnsafeMutableRawPointer, length: Int)?) {
            #if os(Linux)
            let huge = 2 << 20
            let bytes = capacity * MemoryLayout<Element>.stride
            if bytes >= huge {
                let length = (bytes + huge - 1) / huge * huge + huge
                let start = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                if let start, start != MAP_FAILED {
                    let aligned = (Int(bitPattern: start) + huge - 1) / huge * huge
                    _ = madvise(UnsafeMutableRawPointer(bitPattern: aligned), length - huge, Int32(MADV_HUGEPAGE))
                    return (UnsafeMutableRawPointer(bitPattern: aligned)!.bindMemory(to: Element.self, capacity: capacity), (start, length))
                }
            }
            #endif
            return (.allocate(capacity: capacity), nil)
        }

        static func free(_ base: UnsafeMutablePointer<Element>, _ mapping: (start: UnsafeMutableRawPointer, length: Int)?) {
            if let mapping { munmap(mapping.start, mapping.length) } else { base.deallocate() }
        }

        @inline(__always)
        mutating func append(_ element: Element) {
            if count == capacity { grow() }
            (base + count).initialize(to: element)
            count += 1
        }

        @inline(never)
        private mutating func grow() {
            let (larger, largerMapping) = Self.allocate(capacity * 2)
            larger.moveInitialize(from: base, count: count)
            Self.free(base, mapping)
            (base, mapping) = (larger, largerMapping)
            capacity *= 2
        }

        subscript(index: Int) -> Element {
            @inline(__always) get {
                precondition(index >= 0 && index < count, "index out of range")
                return base[index]
            }
            @inline(__always) set {
                precondition(index >= 0 && index < count, "index out of range")
                base[index] = newValue
            }
        }

        /// Removes and returns the last element; the caller has checked there is one.
        @inline(__always)
        mutating func removeLast() -> Element {
            precondition(count > 0, "removeLast of an empty buffer")
            count -= 1
            return base[count]
        }

        /// Drops the elements from `newCount` on.
        mutating func truncate(to newCount: Int) {
            precondition(newCount >= 0 && newCount <= count, "truncate past the end")
            count = newCount
        }

        /// The elements in `range`, valid until the next append.
        func elements(_ range: Range<Int>) -> Slice<UnsafeBufferPointer<Element>> {
            precondition(range.lowerBound >= 0 && range.upperBound <= count, "range out of bounds")
            return UnsafeBufferPointer(start: base, count: count)[range]
        }
    }
}
