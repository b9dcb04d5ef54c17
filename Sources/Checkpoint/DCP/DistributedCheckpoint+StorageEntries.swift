/// `storage_data` entries put on the chunks and values they locate.
///
/// torch keys each entry by `MetadataIndex(fqn, offset, index)`, where `index` is a hint: the
/// chunk's position in its tensor's chunk list, which torch's own lookup tries first and which
/// equality ignores. The hint is checked against the chunk's offsets; where it misses, the chunk
/// is found through a table of that tensor's chunks by offsets, made the first time it is needed,
/// so hostile hints cost a hash per entry, never a scan.
struct StorageEntryMatcher {
    /// What became of an entry.
    enum Outcome {
        /// It was put on its chunk or value.
        case attached
        /// No item of the name has a chunk at those offsets (or is a value, for nil offsets).
        /// torch never reads such an entry; it is dropped.
        case unmatched
        /// The chunk or value already had one.
        case duplicate
    }

    /// For each tensor (by position) whose hints missed, its chunks' positions by offsets (the
    /// first chunk of repeated offsets; overlapping chunks are refused later anyway).
    private var chunkPositions: [Int: [[Int]: Int]] = [:]

    /// Puts one entry on the item at `position` of `items`.
    ///
    /// - Parameters:
    ///   - location: Where the bytes are.
    ///   - offsets: The chunk's offsets, nil for a value.
    ///   - hint: `MetadataIndex.index`, when recorded.
    ///   - position: The item's position in `items` (the entry's `fqn`).
    ///   - items: The metadata's items.
    /// - Returns: What became of the entry.
    mutating func attach(
        _ location: DistributedCheckpoint.Location, offsets: [Int]?, hint: Int?, toItemAt position: Int,
        in items: inout OrderedMap<String, DistributedCheckpoint.Item>
    ) -> Outcome {
        // OrderedDictionary's values are indexed by position.
        return items.storage.values[position].attach(location, offsets: offsets) { tensor, offsets in
            if let hint, tensor.chunks.indices.contains(hint), tensor.chunks[hint].offsets == offsets { return hint }
            return chunkPosition(of: offsets, in: tensor, at: position)
        }
    }

    private mutating func chunkPosition(of offsets: [Int], in tensor: DistributedCheckpoint.TensorItem, at position: Int) -> Int? {
        if let table = chunkPositions[position] { return table[offsets] }
        var table: [[Int]: Int] = [:]
        table.reserveCapacity(tensor.chunks.count)
        for (number, chunk) in tensor.chunks.enumerated() where table[chunk.offsets] == nil {
            table[chunk.offsets] = number
        }
        chunkPositions[position] = table
        return table[offsets]
    }
}

extension DistributedCheckpoint.Item {
    /// Puts a location on this value, or on the chunk of this tensor that `find` finds for
    /// `offsets`, in place.
    fileprivate mutating func attach(
        _ location: DistributedCheckpoint.Location, offsets: [Int]?, chunk find: (DistributedCheckpoint.TensorItem, [Int]) -> Int?
    ) -> StorageEntryMatcher.Outcome {
        guard let offsets else {
            guard case .bytes(let known) = self else { return .unmatched }
            guard known == nil else { return .duplicate }
            self = .bytes(location: location)
            return .attached
        }
        guard case .tensor(var tensor) = self, let chunk = find(tensor, offsets) else { return .unmatched }
        guard tensor.chunks[chunk].location == nil else { return .duplicate }
        // The item lets go of its tensor while the chunk changes, so that the chunk list is not
        // shared: changed where it is, the whole list would be copied at every entry.
        self = .bytes(location: nil)
        tensor.chunks[chunk].location = location
        self = .tensor(tensor)
        return .attached
    }
}
