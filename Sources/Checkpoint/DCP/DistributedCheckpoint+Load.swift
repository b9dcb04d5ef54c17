import Foundation
import OrderedCollections

extension DistributedCheckpoint {
    /// Loads the whole checkpoint as one tree, as torch's `dcp_to_torch_save` builds it: plain
    /// dicts (string keys, since DCP flattens every dict key to a string: an optimizer's `state`
    /// comes back keyed `'0'`, `'1'`, ...), lists where the planner data has list indices, tensors
    /// whole (not `Parameter`, `requires_grad` off), other values as torch.save stored them.
    ///
    /// Each item's torch.save archive is opened now (its zip directory and pickle; the items on
    /// all cores); tensor bytes are read when first used. A one-chunk tensor views the mapped data
    /// file. A tensor in several chunks is assembled the first time its bytes are read, into an
    /// unlinked scratch file in the temporary directory that is mapped like the data files (owned
    /// memory if none can be made): its pages can then leave memory once used, as a mapped
    /// tensor's can, so converting a checkpoint larger than memory works.
    ///
    /// - Parameter options: Checksum verification of the items' zip entries.
    /// - Returns: The tree.
    /// - Throws: ``CheckpointError`` naming the data file and the item: a bad archive, a value
    ///   where a tensor chunk should be, a chunk of another dtype or shape than the metadata says,
    ///   planner data that puts a value inside another, `.unsupported` for items stored through
    ///   DCP's stream transforms (compression extensions).
    public func load(options: LoadOptions = LoadOptions()) throws -> StateValue {
        try load(options: options, openingItems: true)
    }

    /// Loads the tree; with `openingItems` false (what `inspect` needs) only the values' items are
    /// opened now, and every tensor is assembled from its items, into owned memory, when its bytes
    /// are first read: nothing of a tensor is read until then.
    package func load(options: LoadOptions, openingItems: Bool) throws -> StateValue {
        let files = DataFiles(directory: directory)
        let area = openingItems ? AssemblyArea(metadata) : nil
        let items = Array(metadata.items)
        let values = ParallelWork.map(count: items.count) { number -> StateValue in
            let (name, item) = items[number]
            switch item {
            case .bytes(let location):
                return try files.value(of: StorageIndex(name: name, offsets: nil), at: location, options: options)
            case .tensor(let tensor):
                return .tensor(try assemble(name, tensor, files: files, options: options, area: openingItems ? area : nil, lazily: !openingItems))
            }
        }
        var tree = TreeBuilder()
        for ((name, _), value) in zip(items, values) {
            try tree.insert(try value.get(), at: metadata.paths[name] ?? [.string(name)], name: name, file: directory.path)
        }
        return tree.value
    }

    /// The chunks of a tensor, each read from its item and checked against the metadata.
    private func pieces(_ name: String, _ item: TensorItem, files: DataFiles, options: LoadOptions) throws -> [(chunk: Chunk, tensor: Tensor)] {
        try item.chunks.filter { $0.elementCount > 0 }.map { chunk in
            let index = StorageIndex(name: name, offsets: chunk.offsets)
            let value = try files.value(of: index, at: chunk.location, options: options)
            guard case .tensor(let tensor) = value, tensor.dtype == item.dtype, tensor.shape == chunk.sizes else {
                var found = value.pythonTypeName
                if case .tensor(let tensor) = value { found = "\(tensor.dtype) \(tensor.shape)" }
                throw CheckpointError(
                    .corrupt, "a DCP chunk holds another value than the metadata describes",
                    file: directory.appendingPathComponent(chunk.location?.file ?? "").path, path: index.description,
                    expected: "a \(item.dtype) tensor of shape \(chunk.sizes)", found: found)
            }
            return (chunk, tensor)
        }
    }

    /// A tensor from its chunks: the one chunk's own view when it covers the tensor, else storage
    /// the chunks are copied into when the bytes are first read (in `area` when there is one).
    private func assemble(
        _ name: String, _ item: TensorItem, files: DataFiles, options: LoadOptions, area: AssemblyArea?, lazily: Bool
    ) throws -> Tensor {
        let shape = item.shape
        let itemSize = item.dtype.itemSize
        let byteCount = try Tensor.checkedElementCount(shape) * itemSize
        if lazily {
            let storage = Storage(byteCount: byteCount) { destination in
                for piece in try self.pieces(name, item, files: files, options: options) {
                    try Self.place(piece.tensor, at: piece.chunk.offsets, in: destination, shape: shape, itemSize: itemSize)
                }
            }
            return try Tensor(storage: storage, dtype: item.dtype, shape: shape)
        }
        let pieces = try pieces(name, item, files: files, options: options)
        if pieces.count == 1, pieces[0].chunk.sizes == shape {
            var whole = pieces[0].tensor
            whole.requiresGrad = false
            whole.isParameter = false
            return whole
        }
        let fill: @Sendable (UnsafeMutableRawBufferPointer) throws -> Void = { destination in
            for piece in pieces {
                try Self.place(piece.tensor, at: piece.chunk.offsets, in: destination, shape: shape, itemSize: itemSize)
                piece.tensor.releaseMappedPages()
            }
        }
        let storage: Storage
        if let area, let offset = area.offsets[name] {
            storage = try Storage(mapping: area.file, offset: offset, byteCount: byteCount) {
                try area.write(offset: offset, byteCount: byteCount, fill)
            }
        } else {
            storage = Storage(byteCount: byteCount, deferredFill: fill)
        }
        return try Tensor(storage: storage, dtype: item.dtype, shape: shape)
    }

    /// Copies a chunk's elements into a contiguous tensor of `shape`, at `offsets`: one copy per
    /// run along the last dimension.
    static func place(
        _ chunk: Tensor, at offsets: [Int], in destination: UnsafeMutableRawBufferPointer, shape: [Int], itemSize: Int
    ) throws {
        let source = chunk.isContiguous ? chunk : try chunk.contiguousCopy()
        let strides = Tensor.contiguousStrides(for: shape)
        try source.storage.withUnsafeBytes { raw in
            let start = source.storageOffset * itemSize
            guard let base = destination.baseAddress, let from = raw.baseAddress else { return }
            let sizes = source.shape
            if sizes.isEmpty {
                (base).copyMemory(from: from + start, byteCount: itemSize)
                return
            }
            let last = sizes.count - 1
            let run = sizes[last] * itemSize
            let rows = sizes[..<last].reduce(1, *)
            var index = [Int](repeating: 0, count: last)
            for row in 0..<rows {
                var target = offsets[last]
                for d in 0..<last { target += (offsets[d] + index[d]) * strides[d] }
                (base + target * itemSize).copyMemory(from: from + start + row * run, byteCount: run)
                var d = last - 1
                while d >= 0 {
                    index[d] += 1
                    if index[d] < sizes[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}

extension DistributedCheckpoint {
    /// The data files, each mapped once on first use, and the items' archives in them.
    final class DataFiles: @unchecked Sendable {
        let directory: URL
        private var mapped: [String: MappedFile] = [:]
        private let lock = NSLock()

        init(directory: URL) { self.directory = directory }

        func file(_ name: String) throws -> MappedFile {
            lock.lock()
            defer { lock.unlock() }
            if let file = mapped[name] { return file }
            let file = try MappedFile(path: directory.appendingPathComponent(name).path)
            mapped[name] = file
            return file
        }

        /// The value an item's torch.save archive holds.
        func value(of index: StorageIndex, at location: Location?, options: LoadOptions) throws -> StateValue {
            guard let location else {
                // Opening checked that every item has a location; this is that check's error.
                throw CheckpointError(
                    .missingEntry, "DCP metadata has no storage entry for an item", file: directory.path, path: index.description,
                    expected: "storage_data for \(index)", found: "none")
            }
            let path = directory.appendingPathComponent(location.file).path
            guard location.transforms.isEmpty else {
                throw CheckpointError(
                    .unsupported, "DCP items stored through stream transforms are not supported", file: path,
                    path: index.description, expected: "plain torch.save bytes", found: location.transforms.joined(separator: ", "))
            }
            do {
                let reader = try ZipReader(
                    mapping: file(location.file), window: location.offset..<(location.offset + location.length), limits: options.limits)
                return try TorchArchive.read(reader, verifyChecksums: options.verifyChecksums)
            } catch var error as CheckpointError {
                error.message = "DCP item \(index) (bytes \(location.offset)..<\(location.offset + location.length)): " + error.message
                throw error
            }
        }
    }

    /// The nested tree torch's `set_element` builds from flattened names and planner paths.
    struct TreeBuilder {
        /// A container under construction: a dict, or a list whose unset places hold None.
        private final class Node {
            var dict: OrderedDictionary<StateKey, Slot>?
            var list: [Slot?]?
            init(list: Bool) {
                if list { self.list = [] } else { dict = [:] }
            }
        }

        private enum Slot {
            case node(Node)
            case leaf(StateValue)
        }

        private let root = Node(list: false)

        /// Puts `value` at `path`, making a dict before a str key and a list before an int key,
        /// as `set_element` does (a list grows with None up to an index).
        mutating func insert(_ value: StateValue, at path: [StateKey], name: String, file: String) throws {
            var current = root
            for (depth, key) in path.enumerated() {
                let isLast = depth == path.count - 1
                let next: Slot = isLast ? .leaf(value) : .node(Node(list: { if case .int = path[depth + 1] { true } else { false } }()))
                let existing = try slot(key, in: current, setting: next, replace: isLast, name: name, path: path, file: file)
                if isLast { return }
                guard case .node(let node) = existing else {
                    throw CheckpointError(
                        .corrupt, "DCP planner data puts an item inside a value that is not a dict or list", file: file,
                        path: name, expected: "a container at \(Array(path[...depth]).pathString)", found: "a leaf value")
                }
                current = node
            }
        }

        /// The slot at `key` of `node`, set to `fresh` when empty (or always when `replace`).
        private func slot(
            _ key: StateKey, in node: Node, setting fresh: Slot, replace: Bool, name: String, path: [StateKey], file: String
        ) throws -> Slot {
            if node.dict != nil {
                if !replace, let existing = node.dict![key] { return existing }
                node.dict![key] = fresh
                return fresh
            }
            guard case .int(let index) = key, index >= 0, index < 1 << 24 else {
                throw CheckpointError(
                    .corrupt, "DCP planner data indexes a list with something other than a small int", file: file, path: name,
                    expected: "a list index", found: "\(key) in \(path.pathString)")
            }
            let position = Int(index)
            while node.list!.count <= position { node.list!.append(nil) }
            if !replace, let existing = node.list![position] { return existing }
            node.list![position] = fresh
            return fresh
        }

        /// The finished tree.
        var value: StateValue { Self.convert(root) }

        private static func convert(_ node: Node) -> StateValue {
            func convert(_ slot: Slot?) -> StateValue {
                switch slot {
                case .node(let child)?: return Self.convert(child)
                case .leaf(let value)?: return value
                case nil: return .none
                }
            }
            if let list = node.list { return .list(list.map(convert)) }
            return .dict(StateDict(node.dict!.mapValues(convert)))
        }
    }
}
