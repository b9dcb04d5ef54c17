/// Reading `.metadata`: a plain pickle of DCP's `Metadata` dataclass. torch reads it with
/// `pickle.load`, which would run any global it names; here the pickle machine builds every
/// object as data (``PickledObject`` parts, never imported), and only DCP's dataclasses, the
/// helpers their pickles call and torch's weights-only allow-list may appear.
extension DistributedCheckpoint.Metadata {
    /// The globals `.metadata` may name besides torch's weights-only allow-list (torch.Size,
    /// dtypes), each a data-only record here.
    static let allowedGlobals: [String: Set<String>] = [
        module: [
            "Metadata", "TensorStorageMetadata", "TensorProperties", "ChunkStorageMetadata", "BytesStorageMetadata",
            "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING",
        ],
        filesystemModule: ["_StorageInfo"],
        "torch.serialization": ["_get_layout"],
        "pathlib": ["PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"],
    ]

    static let module = "torch.distributed.checkpoint.metadata"
    static let filesystemModule = "torch.distributed.checkpoint.filesystem"

    /// Decodes and checks a `.metadata` pickle: through ``FastMetadataDecoder`` when it reads it,
    /// else through the general machine.
    ///
    /// - Parameters:
    ///   - bytes: The pickle.
    ///   - file: The `.metadata` path, for errors.
    ///   - limits: The resource caps.
    /// - Throws: ``CheckpointError`` as ``DistributedCheckpoint/init(contentsOf:limits:)`` describes.
    init(pickle bytes: UnsafeRawBufferPointer, file: String, limits: ResourceLimits = .default) throws {
        self = try FastMetadataDecoder.decode(bytes, file: file, limits: limits) ?? Self(generalPickle: bytes, file: file, limits: limits)
        try validate(file: file)
    }

    /// Decodes `.metadata` through the general restricted pickle machine: what any pickle
    /// ``FastMetadataDecoder`` does not read goes through, and what gives its errors.
    ///
    /// - Parameters:
    ///   - bytes: The pickle.
    ///   - file: The `.metadata` path, for errors.
    ///   - limits: The resource caps.
    /// - Throws: ``CheckpointError`` as ``DistributedCheckpoint/init(contentsOf:limits:)`` describes.
    init(generalPickle bytes: UnsafeRawBufferPointer, file: String, limits: ResourceLimits = .default) throws {
        var machine = PickleMachine(bytes: bytes, file: file, limits: limits) { reference in
            throw CheckpointError(
                .corrupt, "DCP metadata holds a tensor storage", file: file, expected: "no persistent ids",
                found: "storage \(reference.key)")
        }
        let root = try machine.run()
        let reader = MetadataPickleReader(nodes: machine.nodes, file: file, limits: limits)
        try reader.checkGlobals(root: root)
        self = try reader.metadata(root)
    }
}

/// Walks the pickle machine's nodes as DCP's dataclasses: each an object node whose state is its
/// `__dict__` (or, for `TensorProperties`, the tuple its `__getstate__` returns).
private struct MetadataPickleReader {
    typealias Metadata = DistributedCheckpoint.Metadata

    let nodes: [PickleNode]
    let file: String
    let limits: ResourceLimits

    func failure(_ message: String, at path: String, expected: String? = nil, found: String? = nil) -> CheckpointError {
        CheckpointError(.corrupt, "DCP metadata: \(message)", file: file, path: path, expected: expected, found: found)
    }

    // MARK: Globals

    /// Refuses any global outside the allow-list, wherever the pickle put it: every object the
    /// pickle built (reachable or not) and every bare global inside a container or object.
    func checkGlobals(root: PickleObject) throws {
        func check(_ object: PickleObject) throws {
            guard case .global(.foreign(let module, let name)) = object else { return }
            try allow(module, name)
        }
        try check(root)
        for node in nodes {
            if let parts = node.object { try allow(parts.module, parts.name) }
            for element in node.elements { try check(element) }
            for value in node.items.values { try check(value) }
            for value in node.attributes.values { try check(value) }
            for (key, value) in node.otherKeyItems {
                try check(key)
                try check(value)
            }
            if let state = node.object?.state { try check(state) }
            if let keywords = node.object?.keywords { try check(keywords) }
        }
    }

    private func allow(_ module: String, _ name: String) throws {
        guard Metadata.allowedGlobals[module]?.contains(name) != true else { return }
        throw CheckpointError(
            .forbiddenGlobal, "DCP metadata names a global outside DCP's dataclasses; nothing was imported or run",
            file: file, expected: "torch.distributed.checkpoint dataclasses, torch.Size, torch dtypes",
            found: "\(module).\(name)")
    }

    // MARK: Values

    func node(_ object: PickleObject) -> PickleNode? {
        if case .node(let index) = object { return nodes[index] }
        return nil
    }

    /// The fields of a dataclass instance of `cls` in `module` (DCP's metadata module by default).
    func fields(
        _ object: PickleObject, _ cls: String, module: String = Metadata.module, at path: @autoclosure () -> String
    ) throws -> [String: PickleObject] {
        guard let parts = node(object)?.object, parts.name == cls, parts.module == module else {
            throw failure("expected a \(cls)", at: path(), expected: "\(module).\(cls)", found: describe(object))
        }
        guard let state = parts.state else { return [:] }
        guard let dict = node(state), case .dict = dict.kind, dict.otherKeyItems.isEmpty else {
            throw failure("\(parts.name)'s state is not a dict of fields", at: path(), found: describe(state))
        }
        var fields: [String: PickleObject] = [:]
        for (key, value) in dict.items {
            guard case .string(let name) = key else { throw failure("a field name is not a str", at: path(), found: "\(key)") }
            fields[name] = value
        }
        return fields
    }

    func describe(_ object: PickleObject) -> String {
        switch object {
        case .none: return "None"
        case .bool(let flag): return flag ? "True" : "False"
        case .int(let number): return String(number)
        case .float(let number): return String(number)
        case .string(let text): return "'\(text.prefix(60))'"
        case .value(let value): return value.pythonTypeName
        case .global(let global): return global.qualifiedName
        case .storage: return "a storage"
        case .node(let index):
            let node = nodes[index]
            if let parts = node.object { return "\(parts.module).\(parts.name)" }
            return node.pythonTypeName
        }
    }

    func string(_ object: PickleObject?, at path: @autoclosure () -> String) throws -> String {
        guard case .string(let text)? = object else {
            throw failure("expected a str", at: path(), found: object.map(describe) ?? "nothing")
        }
        return text
    }

    func optionalString(_ object: PickleObject?, at path: @autoclosure () -> String) throws -> String? {
        switch object {
        case nil, .none?: return nil
        default: return try string(object, at: path())
        }
    }

    func integer(_ object: PickleObject?, at path: @autoclosure () -> String) throws -> Int {
        guard case .int(let number)? = object, let value = Int(exactly: number) else {
            throw failure("expected an int", at: path(), found: object.map(describe) ?? "nothing")
        }
        return value
    }

    /// A torch.Size, or a tuple or list of ints.
    func integers(_ object: PickleObject?, at path: @autoclosure () -> String) throws -> [Int] {
        if case .value(.size(let dims))? = object { return dims.map { Int($0) } }
        guard let object, let sequence = node(object), sequence.kind == .tuple || sequence.kind == .list else {
            throw failure("expected a torch.Size", at: path(), found: object.map(describe) ?? "nothing")
        }
        return try sequence.elements.enumerated().map { try integer($0.element, at: "\(path())/\($0.offset)") }
    }

    /// A dict of str keys, in order.
    func dictionary(_ object: PickleObject?, at path: @autoclosure () -> String) throws -> [(key: String, value: PickleObject)] {
        guard let object, let dict = node(object), case .dict = dict.kind, dict.otherKeyItems.isEmpty else {
            throw failure("expected a dict with str keys", at: path(), found: object.map(describe) ?? "nothing")
        }
        return try dict.items.map { key, value in
            guard case .string(let name) = key else { throw failure("a key is not a str", at: path(), found: "\(key)") }
            return (name, value)
        }
    }

    // MARK: Dataclasses

    func metadata(_ root: PickleObject) throws -> Metadata {
        let fields = try fields(root, "Metadata", at: "(root)")
        var items = OrderedMap<String, DistributedCheckpoint.Item>()
        var chunkCount = 0
        for (name, value) in try dictionary(fields["state_dict_metadata"], at: "state_dict_metadata") {
            let item = try item(value, at: "state_dict_metadata/\(KeyPathSyntax.escape(name))")
            if case .tensor(let tensor) = item {
                chunkCount += tensor.chunks.count
                try limits.check(
                    .maximumDCPChunks, chunkCount, what: "DCP chunks", file: file, path: "state_dict_metadata/\(KeyPathSyntax.escape(name))")
            }
            items[name] = item
        }
        var paths = OrderedMap<String, [StateKey]>()
        if let planner = fields["planner_data"], planner.isPresent {
            for (name, value) in try dictionary(planner, at: "planner_data") {
                paths[name] = try keyPath(value, at: "planner_data/\(KeyPathSyntax.escape(name))")
            }
        }
        guard let storage = fields["storage_data"], let dict = node(storage), case .dict = dict.kind else {
            throw failure("no storage_data", at: "storage_data", expected: "a dict of MetadataIndex to _StorageInfo")
        }
        guard dict.items.isEmpty else {
            throw failure("storage_data keys must be MetadataIndex objects", at: "storage_data", found: "\(dict.items.keys.first!)")
        }
        var matcher = StorageEntryMatcher()
        for (number, (key, value)) in dict.otherKeyItems.enumerated() {
            let (index, hint) = try storageIndex(key, at: "storage_data/\(number)")
            let location = try location(value, at: "storage_data/\(number)")
            guard let position = items.storage.index(forKey: index.name) else { continue }
            if matcher.attach(location, offsets: index.offsets, hint: hint, toItemAt: position, in: &items) == .duplicate {
                throw failure("an item has two storage locations", at: "storage_data/\(number)", found: "\(index.name) \(index.offsets ?? [])")
            }
        }
        return Metadata(
            items: items, paths: paths,
            version: try optionalString(fields["version"], at: "version"),
            checkpointID: try checkpointID(fields["storage_meta"]))
    }

    func item(_ object: PickleObject, at path: @autoclosure () -> String) throws -> DistributedCheckpoint.Item {
        if let parts = node(object)?.object, parts.name == "BytesStorageMetadata" {
            _ = try fields(object, "BytesStorageMetadata", at: path())
            return .bytes(location: nil)
        }
        let fields = try fields(object, "TensorStorageMetadata", at: path())
        let (dtype, requiresGrad) = try properties(fields["properties"], at: "\(path())/properties")
        let shape = try integers(fields["size"], at: "\(path())/size")
        guard let list = fields["chunks"].flatMap(node), list.kind == .list else {
            throw failure("expected a list of chunks", at: "\(path())/chunks", found: fields["chunks"].map(describe) ?? "nothing")
        }
        try limits.check(.maximumDCPChunksPerTensor, list.elements.count, what: "chunks of one tensor", file: file, path: "\(path())/chunks")
        let chunks = try list.elements.enumerated().map { number, element in
            let chunkPath = "\(path())/chunks/\(number)"
            let chunk = try self.fields(element, "ChunkStorageMetadata", at: chunkPath)
            return DistributedCheckpoint.Chunk(
                offsets: try integers(chunk["offsets"], at: "\(chunkPath)/offsets"),
                sizes: try integers(chunk["sizes"], at: "\(chunkPath)/sizes"))
        }
        return .tensor(DistributedCheckpoint.TensorItem(dtype: dtype, shape: shape, chunks: chunks, requiresGrad: requiresGrad))
    }

    /// `TensorProperties`: its `__getstate__` tuple `(dtype, layout, requires_grad,
    /// memory_format, pin_memory[, strides])`, or a dict of fields in older files.
    func properties(_ object: PickleObject?, at path: @autoclosure () -> String) throws -> (DType, Bool) {
        guard let object, let parts = node(object)?.object, parts.name == "TensorProperties", parts.module == Metadata.module else {
            throw failure("expected TensorProperties", at: path(), expected: "\(Metadata.module).TensorProperties", found: object.map(describe) ?? "nothing")
        }
        var dtype: PickleObject?
        var requiresGrad: PickleObject?
        if let state = parts.state, let tuple = node(state), tuple.kind == .tuple {
            guard tuple.elements.count == 5 || tuple.elements.count == 6 else {
                throw failure("TensorProperties' state has the wrong length", at: path(), expected: "5 or 6 fields",
                              found: "\(tuple.elements.count)")
            }
            dtype = tuple.elements[0]
            requiresGrad = tuple.elements[2]
        } else {
            let fields = try fields(object, "TensorProperties", at: path())
            dtype = fields["dtype"]
            requiresGrad = fields["requires_grad"]
        }
        guard case .global(.dtype(let type))? = dtype else {
            throw failure("expected a torch dtype", at: "\(path())/dtype", found: dtype.map(describe) ?? "nothing")
        }
        switch requiresGrad {
        case .bool(let flag)?: return (type, flag)
        case nil: return (type, false)
        default: throw failure("requires_grad must be a bool", at: "\(path())/requires_grad", found: describe(requiresGrad!))
        }
    }

    /// A planner-data path: a tuple of str (dict keys) and int (list indices).
    func keyPath(_ object: PickleObject, at path: @autoclosure () -> String) throws -> [StateKey] {
        guard let tuple = node(object), tuple.kind == .tuple || tuple.kind == .list, !tuple.elements.isEmpty else {
            throw failure("expected a non-empty tuple of keys", at: path(), found: describe(object))
        }
        return try tuple.elements.map { element in
            switch element {
            case .string(let key): return .string(key)
            case .int(let index): return .int(index)
            default: throw failure("a key must be a str or an int", at: path(), found: describe(element))
            }
        }
    }

    /// A `MetadataIndex`: the name and offsets it keys, and its `index` when that is an int (it is
    /// only a hint of the chunk's position).
    func storageIndex(_ object: PickleObject, at path: @autoclosure () -> String) throws -> (DistributedCheckpoint.StorageIndex, hint: Int?) {
        let fields = try fields(object, "MetadataIndex", at: path())
        let offsets: [Int]?
        if let offset = fields["offset"], offset.isPresent {
            offsets = try integers(offset, at: "\(path())/offset")
        } else {
            offsets = nil
        }
        var hint: Int?
        if case .int(let number)? = fields["index"] { hint = Int(exactly: number) }
        return (DistributedCheckpoint.StorageIndex(name: try string(fields["fqn"], at: "\(path())/fqn"), offsets: offsets), hint)
    }

    func location(_ object: PickleObject, at path: @autoclosure () -> String) throws -> DistributedCheckpoint.Location {
        let fields = try fields(object, "_StorageInfo", module: Metadata.filesystemModule, at: path())
        var transforms: [String] = []
        if let descriptors = fields["transform_descriptors"], descriptors.isPresent {
            guard let list = node(descriptors), list.kind == .list || list.kind == .tuple else {
                throw failure("transform_descriptors must be a list of str", at: path(), found: describe(descriptors))
            }
            transforms = try list.elements.map { try string($0, at: "\(path())/transform_descriptors") }
        }
        let location = DistributedCheckpoint.Location(
            file: try string(fields["relative_path"], at: "\(path())/relative_path"),
            offset: try integer(fields["offset"], at: "\(path())/offset"),
            length: try integer(fields["length"], at: "\(path())/length"), transforms: transforms)
        guard location.offset >= 0, location.length >= 0, !location.offset.addingReportingOverflow(location.length).overflow else {
            throw CheckpointError(
                .outOfBounds, "DCP metadata: an item's byte range is negative or overflows", file: file, path: path(),
                found: "offset \(location.offset), length \(location.length)")
        }
        return location
    }

    /// `storage_meta.checkpoint_id`: a str, or a `PosixPath` pickled as its parts.
    func checkpointID(_ object: PickleObject?) throws -> String? {
        guard let object, object.isPresent else { return nil }
        let fields = try fields(object, "StorageMeta", at: "storage_meta")
        guard let id = fields["checkpoint_id"], id.isPresent else { return nil }
        if case .string(let text) = id { return text }
        guard let parts = node(id)?.object, parts.module == "pathlib" else {
            throw failure("checkpoint_id must be a str or a path", at: "storage_meta/checkpoint_id", found: describe(id))
        }
        return DistributedCheckpoint.path(ofParts: try nodes[parts.arguments].elements.map { try string($0, at: "storage_meta/checkpoint_id") })
    }
}

extension DistributedCheckpoint {
    /// The path a pickled `pathlib` path names, from its parts (`PurePath.__reduce__`): joined by
    /// `/`, without a second one after a first part that ends in one (the root, `/`); `.` for none.
    static func path(ofParts parts: [String]) -> String {
        guard let first = parts.first else { return "." }
        // Appended in a loop: `joined(separator:)` instantiated its generic types at run time, a
        // search of every protocol conformance in the binary (0.4% of an inspect).
        var rest = ""
        for (number, part) in parts.dropFirst().enumerated() {
            if number > 0 { rest += "/" }
            rest += part
        }
        return first.hasSuffix("/") || rest.isEmpty ? first + rest : first + "/" + rest
    }
}

extension PickleObject {
    /// False for Python's None.
    fileprivate var isPresent: Bool {
        if case .none = self { return false }
        return true
    }
}
