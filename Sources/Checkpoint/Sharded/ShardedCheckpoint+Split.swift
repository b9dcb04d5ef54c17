import Foundation
import OrderedCollections

/// huggingface_hub's rules for sharding a state dict (`split_torch_state_dict_into_shards` and the
/// shared-tensor handling of `save_torch_state_dict`, huggingface_hub 2.4), replicated so that
/// ckpt's shards are the ones Hugging Face tools would write.
extension ShardedCheckpoint {
    /// How a state dict is split into shard files.
    public struct Split: Sendable, Equatable {
        /// Each file's name and the tensors it holds, in order.
        public var files: OrderedMap<String, [String]>
        /// The tensor bytes, each storage counted once (`metadata.total_size`).
        public var totalSize: Int

        /// True when there is more than one file, so an index is written.
        public var isSharded: Bool { files.count > 1 }
    }

    /// huggingface_hub's default largest shard, 5 GB.
    public static let defaultMaximumShardSize = 5_000_000_000

    /// Splits tensors into shards as `split_torch_state_dict_into_shards` does: in order, a new
    /// shard starts when the next tensor would take the current one past `maximumShardSize`, a
    /// tensor larger than the limit gets a shard of its own, and tensors sharing a storage count
    /// once (its whole size) and go to the shard of the first of them. One shard is named by the
    /// pattern alone (`model.safetensors`), several `model-00001-of-00003.safetensors`, ...
    ///
    /// - Parameters:
    ///   - tensors: The state dict's tensors, in order.
    ///   - maximumShardSize: The largest shard in bytes (decimal units: see ``parseSize(_:)``).
    ///   - pattern: The file name with `{suffix}` where the shard number goes
    ///     (`model{suffix}.safetensors`, `pytorch_model{suffix}.bin`).
    /// - Returns: The split.
    public static func split(
        _ tensors: [(name: String, tensor: Tensor)], maximumShardSize: Int, pattern: String = "model{suffix}.safetensors"
    ) -> Split {
        var sharers: OrderedDictionary<ObjectIdentifier, [String]> = [:]
        var shards: [[String]] = []
        var current: [String] = []
        var currentSize = 0
        var totalSize = 0
        for (name, tensor) in tensors {
            let storage = ObjectIdentifier(tensor.storage)
            if sharers[storage] != nil {
                sharers[storage]!.append(name)
                continue
            }
            sharers[storage] = [name]
            let size = tensor.storage.byteCount
            if size > maximumShardSize {
                totalSize += size
                shards.append([name])
                continue
            }
            if currentSize + size > maximumShardSize {
                shards.append(current)
                current = []
                currentSize = 0
            }
            current.append(name)
            currentSize += size
            totalSize += size
        }
        if !current.isEmpty { shards.append(current) }
        // Tensors sharing a storage follow the first of them, at the end of its shard.
        for (_, names) in sharers where names.count > 1 {
            if let shard = shards.firstIndex(where: { $0.contains(names[0]) }) { shards[shard] += names.dropFirst() }
        }
        var files = OrderedMap<String, [String]>()
        for (number, names) in shards.enumerated() {
            let suffix = shards.count == 1 ? "" : "-\(fiveDigits(number + 1))-of-\(fiveDigits(shards.count))"
            files[pattern.replacingOccurrences(of: "{suffix}", with: suffix)] = names
        }
        return Split(files: files, totalSize: totalSize)
    }

    private static func fiveDigits(_ number: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    /// A size as huggingface_hub's `parse_size_to_int` reads it: a number and a decimal unit
    /// (`5GB` = 5 × 10⁹ bytes, `1.5KB` = 1500; units TB, GB, MB, KB in any case), or a plain byte count.
    ///
    /// - Parameter text: The size.
    /// - Returns: Bytes.
    /// - Throws: ``CheckpointError`` `.invalidArgument` for another unit, a bad number, or a size
    ///   that is not positive.
    public static func parseSize(_ text: String) throws -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let bytes = Int(trimmed), bytes > 0 { return bytes }
        let units: [String: Double] = ["TB": 1e12, "GB": 1e9, "MB": 1e6, "KB": 1e3]
        let unit = String(trimmed.suffix(2)).uppercased()
        guard let multiplier = units[unit] else {
            throw CheckpointError(
                .invalidArgument, "unknown size unit", expected: "a byte count or a number with TB, GB, MB or KB (5GB)",
                found: text)
        }
        let number = trimmed.dropLast(2).trimmingCharacters(in: .whitespaces)
        guard let value = Double(number), value.isFinite, value * multiplier >= 1, value * multiplier < 9.2e18 else {
            throw CheckpointError(
                .invalidArgument, "not a positive size", expected: "a number before the unit (5GB, 1.5MB)", found: text)
        }
        // Python's int() of the product: truncation toward zero.
        return Int(value * multiplier)
    }

    /// The tensors huggingface_hub drops before writing safetensors (which cannot share memory):
    /// of each group of tensors overlapping in one storage, all but one that covers the whole
    /// storage, the first by name. The records map each dropped name to the kept one.
    ///
    /// - Parameter tensors: The state dict's tensors, in order.
    /// - Returns: The tensors kept, in order, and the dropped names with the names kept instead.
    /// - Throws: ``CheckpointError`` `.unsupported` for a group of which no tensor covers its
    ///   whole storage (huggingface_hub refuses it too).
    static func droppingSharedTensors(
        _ tensors: [(name: String, tensor: Tensor)]
    ) throws -> (kept: [(name: String, tensor: Tensor)], dropped: OrderedMap<String, String>) {
        var byStorage: OrderedDictionary<ObjectIdentifier, [(name: String, tensor: Tensor)]> = [:]
        for entry in tensors where entry.tensor.storage.byteCount > 0 {
            byStorage[ObjectIdentifier(entry.tensor.storage), default: []].append(entry)
        }
        var dropped = OrderedMap<String, String>()
        var removed = Set<String>()
        for (_, group) in byStorage where group.count > 1 {
            for shared in overlappingGroups(group) where shared.count > 1 {
                let complete = shared.filter { entry in
                    entry.tensor.storageOffset == 0 && entry.tensor.byteCount == entry.tensor.storage.byteCount
                }.map(\.name).sorted()
                guard let keep = complete.first else {
                    throw CheckpointError(
                        .unsupported, "tensors share memory and none covers the whole storage, so none can stand for the others",
                        path: shared.map(\.name).sorted().joined(separator: ", "),
                        expected: "one tensor of the group viewing its entire storage")
                }
                for entry in shared.sorted(by: { $0.name < $1.name }) where entry.name != keep {
                    if dropped[entry.name] == nil { dropped[entry.name] = keep }
                    removed.insert(entry.name)
                }
            }
        }
        return (tensors.filter { !removed.contains($0.name) }, dropped)
    }

    /// `_filter_shared_not_shared`: tensors of one storage sorted by their byte range, a new group
    /// starting at each one that begins at or after the end of the one before it.
    private static func overlappingGroups(_ group: [(name: String, tensor: Tensor)]) -> [[(name: String, tensor: Tensor)]] {
        func area(_ tensor: Tensor) -> (start: Int, stop: Int) {
            let start = tensor.storageOffset * tensor.dtype.itemSize
            let extent = (try? Tensor.requiredStorageBytes(
                shape: tensor.shape, strides: tensor.strides, storageOffset: tensor.storageOffset, itemSize: tensor.dtype.itemSize)) ?? 0
            return (start, tensor.numel == 0 ? start : extent)
        }
        let sorted = group.map { (area: area($0.tensor), entry: $0) }.sorted {
            ($0.area.start, $0.area.stop, $0.entry.name) < ($1.area.start, $1.area.stop, $1.entry.name)
        }
        var groups: [[(name: String, tensor: Tensor)]] = [[sorted[0].entry]]
        var lastStop = sorted[0].area.stop
        for item in sorted.dropFirst() {
            if item.area.start >= lastStop {
                groups.append([item.entry])
            } else {
                groups[groups.count - 1].append(item.entry)
            }
            lastStop = item.area.stop
        }
        return groups
    }
}
