import Foundation

extension DistributedCheckpoint {
    /// Writes a whole tree as a DCP checkpoint of `ranks` ranks, as if each rank held its piece:
    /// every tensor of two or more rows is split along its first dimension as `torch.chunk` (and
    /// DTensor's `Shard(0)`) splits it, rank r writing the r-th piece; smaller tensors and other
    /// values are written once, each by the rank with the fewest bytes so far. The ranks' data
    /// files are written in parallel, then `.metadata` (``commit(_:to:options:)``).
    ///
    /// The tree is flattened as torch's `flatten_state_dict` flattens it: dicts are walked (an int key
    /// becomes its digits: `dcp.load` into a template restores it, `dcp_to_torch_save` gives `'0'`),
    /// lists holding a tensor or a dict are walked by index, and anything else (tuples, lists of
    /// numbers, strings) is one value. An empty dict leaves nothing, and an OrderedDict's attributes
    /// are not saved, as in torch.
    ///
    /// An earlier checkpoint in `directory` stops being one first (its `.metadata` is removed), so
    /// a save that fails leaves no checkpoint rather than a mix of two.
    ///
    /// - Parameters:
    ///   - value: The tree.
    ///   - directory: The checkpoint directory, created if missing.
    ///   - ranks: How many ranks to split it over (1 for `torch_save_to_dcp`'s layout).
    ///   - options: Durability; ``SaveOptions/keepObjects`` for values holding Python objects.
    /// - Returns: The metadata written.
    /// - Throws: ``CheckpointError`` `.invalidArgument` for fewer than one rank or a tree whose
    ///   flattened names collide; what ``writeShard(_:rank:to:options:)`` and
    ///   ``commit(_:to:options:)`` throw.
    @discardableResult
    public static func write(
        _ value: StateValue, to directory: URL, ranks: Int = 1, options: SaveOptions = SaveOptions()
    ) throws -> Metadata {
        let plan = try plan(value, ranks: ranks)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let metadata = directory.appendingPathComponent(metadataName)
        if FileManager.default.fileExists(atPath: metadata.path) { try FileManager.default.removeItem(at: metadata) }
        let writing = plan.enumerated().filter { !$0.element.isEmpty }
        let results = ParallelWork.map(count: writing.count) { number in
            try writeShard(writing[number].element, rank: writing[number].offset, to: directory, options: options)
        }
        return try commit(results.map { try $0.get() }, to: directory, options: options)
    }

    /// What each of `ranks` ranks writes for ``write(_:to:ranks:options:)``: the same plan on every
    /// rank for the same tree, so each process can call ``writeShard(_:rank:to:options:)`` with its own.
    ///
    /// - Parameters:
    ///   - value: The tree.
    ///   - ranks: How many ranks.
    /// - Returns: Each rank's items, by rank.
    /// - Throws: ``CheckpointError`` `.invalidArgument` for fewer than one rank, a root that is not a
    ///   dict, or two values whose flattened names collide (`{"a.b": x, "a": {"b": y}}`).
    public static func plan(_ value: StateValue, ranks: Int) throws -> [[WriteItem]] {
        guard ranks >= 1 else {
            throw CheckpointError(.invalidArgument, "a DCP checkpoint needs at least one rank", found: "\(ranks)")
        }
        guard case .dict = value else {
            throw CheckpointError(
                .invalidArgument, "a DCP checkpoint holds a dict", path: "(root)", expected: "a dict", found: value.pythonTypeName)
        }
        var leaves: [(path: [StateKey], value: StateValue)] = []
        flatten(value, path: [], into: &leaves)
        var names: [String: [StateKey]] = [:]
        for leaf in leaves {
            let name = leaf.path.map(\.description).joined(separator: ".")
            if let other = names.updateValue(leaf.path, forKey: name) {
                throw CheckpointError(
                    .invalidArgument, "two values flatten to one DCP name", path: name, expected: "distinct names",
                    found: "\(other.pathString) and \(leaf.path.pathString)")
            }
        }
        var plan = [[WriteItem]](repeating: [], count: ranks)
        var load = [Int](repeating: 0, count: ranks)
        func leastLoaded() -> Int { load.indices.min { load[$0] < load[$1] }! }
        for (position, (path, leaf)) in leaves.enumerated() {
            func item(_ content: WriteItem.Content) -> WriteItem {
                var item = WriteItem(path: path, content: content)
                item.position = position
                return item
            }
            guard case .tensor(let tensor) = leaf else {
                let rank = leastLoaded()
                plan[rank].append(item(.value(leaf)))
                load[rank] += 1024
                continue
            }
            let rows = tensor.shape.first ?? 0
            guard ranks > 1, rows >= 2, tensor.numel > 0 else {
                let rank = leastLoaded()
                plan[rank].append(item(.chunk(tensor, shape: tensor.shape, offsets: tensor.shape.map { _ in 0 })))
                load[rank] += tensor.byteCount
                continue
            }
            // torch.chunk: pieces of ceil(rows / ranks) rows, the last ones shorter or absent.
            let step = (rows + ranks - 1) / ranks
            let rowStride = tensor.strides[0]
            for rank in 0..<ranks where rank * step < rows {
                let count = min(step, rows - rank * step)
                let piece = try tensor.viewed(
                    shape: [count] + tensor.shape.dropFirst(), strides: tensor.strides,
                    storageOffset: tensor.storageOffset + rank * step * rowStride)
                let offsets = [rank * step] + tensor.shape.dropFirst().map { _ in 0 }
                plan[rank].append(item(.chunk(piece, shape: tensor.shape, offsets: offsets)))
                load[rank] += piece.byteCount
            }
        }
        return plan
    }

    /// torch's `traverse_state_dict`: into dicts (keys as strings) and into lists that hold a
    /// tensor or a container with one; everything else is a leaf.
    private static func flatten(_ value: StateValue, path: [StateKey], into leaves: inout [(path: [StateKey], value: StateValue)]) {
        switch value {
        case .dict(let dict):
            for (key, item) in dict.items { flatten(item, path: path + [.string(key.description)], into: &leaves) }
        case .list(let elements) where !isTerminal(value):
            for (index, element) in elements.enumerated() { flatten(element, path: path + [.int(Int64(index))], into: &leaves) }
        default:
            leaves.append((path, value))
        }
    }

    /// `_is_terminal`: a list is one value unless it holds a tensor, a dict, or such a list.
    private static func isTerminal(_ value: StateValue) -> Bool {
        switch value {
        case .dict: return false
        case .list(let elements):
            return elements.allSatisfy { element in
                switch element {
                case .tensor, .dict: return false
                case .list: return isTerminal(element)
                default: return true
                }
            }
        default: return true
        }
    }
}
