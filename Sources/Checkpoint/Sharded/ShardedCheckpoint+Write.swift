import Foundation
import OrderedCollections

extension ShardedCheckpoint {
    /// Writes a flat state dict as a Hugging Face sharded checkpoint, as huggingface_hub's
    /// `save_torch_state_dict` does: shards split by ``split(_:maximumShardSize:pattern:)`` and
    /// named `model-00001-of-00003.safetensors` (`pytorch_model-…bin` for the pt format), plus
    /// `model.safetensors.index.json` (`pytorch_model.bin.index.json`) when there is more than
    /// one; one shard is `model.safetensors` alone.
    ///
    /// Tied tensors are recorded as huggingface_hub records them: safetensors cannot share memory,
    /// so of tensors sharing a storage one is written (the first by name that covers the whole
    /// storage) and each other name is recorded as `dropped: kept` in the index's `metadata` (in
    /// the file's `__metadata__` when there is one shard); `.bin` shards keep them together in one
    /// shard, sharing storage, each name in the `weight_map`. Each safetensors shard's
    /// `__metadata__` is `{"format": "pt"}`.
    ///
    /// Shards are written in parallel, each atomically; the index is written last, then shard
    /// files of this naming pattern left over from an earlier save in the directory are removed.
    ///
    /// - Parameters:
    ///   - value: A dict (or OrderedDict) of tensors under str keys.
    ///   - directory: The output directory, created if missing.
    ///   - format: ``CheckpointFormat/safetensors`` or ``CheckpointFormat/pt``.
    ///   - maximumShardSize: The largest shard in bytes (huggingface_hub's default 5 GB).
    ///   - options: Durability of each file (metadata and keepObjects do not apply).
    /// - Returns: The split that was written.
    /// - Throws: ``CheckpointError`` `.unsupported` for a tree that is not a flat dict of tensors
    ///   (naming the first other value) or tied tensors none of which covers its storage,
    ///   `.invalidArgument` for another format or a size that is not positive; what writing throws.
    @discardableResult
    public static func write(
        _ value: StateValue, to directory: URL, format: CheckpointFormat = .safetensors,
        maximumShardSize: Int = defaultMaximumShardSize, options: SaveOptions = SaveOptions()
    ) throws -> Split {
        guard format == .safetensors || format == .pt else {
            throw CheckpointError(
                .invalidArgument, "sharded checkpoints hold safetensors or torch.save shards", file: directory.path,
                expected: "safetensors or pt", found: format.rawValue)
        }
        guard maximumShardSize > 0 else {
            throw CheckpointError(.invalidArgument, "the largest shard size must be positive", found: "\(maximumShardSize)")
        }
        var tensors = try flatTensors(value, file: directory.path)
        var dropped = OrderedMap<String, String>()
        if format == .safetensors { (tensors, dropped) = try droppingSharedTensors(tensors) }
        let pattern = format == .safetensors ? "model{suffix}.safetensors" : "pytorch_model{suffix}.bin"
        let split = split(tensors, maximumShardSize: maximumShardSize, pattern: pattern)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        let byName = Dictionary(tensors.map { ($0.name, $0.tensor) }, uniquingKeysWith: { first, _ in first })
        let files = Array(split.files)
        var fileMetadata: OrderedDictionary<String, String> = ["format": "pt"]
        if !split.isSharded { for (name, kept) in dropped { fileMetadata[name] = kept } }
        let metadata = fileMetadata
        let results = ParallelWork.map(count: files.count) { number in
            let (name, names) = files[number]
            var items = OrderedDictionary<StateKey, StateValue>()
            for tensorName in names {
                var tensor = byName[tensorName]!
                if format == .safetensors {
                    tensor.requiresGrad = false
                    tensor.isParameter = false
                }
                items[.string(tensorName)] = .tensor(tensor)
            }
            let path = directory.appendingPathComponent(name).path
            if format == .safetensors {
                try Safetensors.write(.dict(StateDict(items)), toPath: path, sync: options.durable, metadata: metadata)
            } else {
                try StateValue.dict(StateDict(items)).write(to: URL(fileURLWithPath: path), format: .pt, options: SaveOptions(durable: options.durable))
            }
        }
        for result in results { try result.get() }
        let indexName = pattern.replacingOccurrences(of: "{suffix}", with: "") + ".index.json"
        if split.isSharded {
            let text = indexJSON(split, dropped: dropped)
            try DurableFile.write(to: directory.appendingPathComponent(indexName).path, sync: options.durable) { descriptor in
                try Array(text.utf8).withUnsafeBytes { bytes in
                    do {
                        try FileIO.writeAll(descriptor, bytes)
                    } catch {
                        throw CheckpointError(.io, "cannot write the index", file: directory.appendingPathComponent(indexName).path, cause: error)
                    }
                }
            }
        }
        let written = Set(split.files.map(\.key) + (split.isSharded ? [indexName] : []))
        removeStaleShards(in: directory, pattern: pattern, keeping: written)
        return split
    }

    /// The tensors of a flat dict, in order.
    static func flatTensors(_ value: StateValue, file: String) throws -> [(name: String, tensor: Tensor)] {
        guard case .dict(let dict) = value else {
            throw CheckpointError(
                .unsupported, "a sharded checkpoint holds a flat dict of tensors", file: file, path: "(root)",
                expected: "a dict of tensors", found: value.pythonTypeName)
        }
        return try dict.items.map { key, item in
            guard case .string(let name) = key, case .tensor(let tensor) = item else {
                throw CheckpointError(
                    .unsupported, "a sharded checkpoint holds a flat dict of tensors under str keys; select the model's "
                        + "state dict first (convert --select, --strip-prefix)", file: file, path: key.pathComponent,
                    expected: "a tensor under a str key", found: "\(item.pythonTypeName) under \(key)")
            }
            return (name, tensor)
        }
    }

    /// The index as `json.dump(index, f, indent=2)` writes it: `metadata` (`total_size`, then the
    /// dropped tied names) and `weight_map`, non-ASCII escaped as Python's `ensure_ascii` does.
    static func indexJSON(_ split: Split, dropped: OrderedMap<String, String>) -> String {
        var metadata = ["    \(pythonQuoted("total_size")): \(split.totalSize)"]
        for (name, kept) in dropped { metadata.append("    \(pythonQuoted(name)): \(pythonQuoted(kept))") }
        var map: [String] = []
        for (file, names) in split.files {
            for name in names { map.append("    \(pythonQuoted(name)): \(pythonQuoted(file))") }
        }
        return "{\n  \"metadata\": {\n" + metadata.joined(separator: ",\n") + "\n  },\n  \"weight_map\": {\n"
            + map.joined(separator: ",\n") + "\n  }\n}"
    }

    /// A string as Python's json module writes it by default (`ensure_ascii=True`).
    static func pythonQuoted(_ text: String) -> String {
        var out = "\""
        for unit in text.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(unit)!)
            default:
                let hex = String(unit, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        return out + "\""
    }

    /// Removes files of the naming pattern (`model.safetensors`, `model-0000k-of-0000n.safetensors`,
    /// the index) that this save did not write, as huggingface_hub clears them; a failure to remove
    /// one is ignored, as there.
    private static func removeStaleShards(in directory: URL, pattern: String, keeping: Set<String>) {
        let parts = pattern.components(separatedBy: "{suffix}")
        let (prefix, suffix) = (parts[0], parts[1])
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where !keeping.contains(name) {
            var rest = Substring(name)
            guard rest.hasPrefix(prefix) else { continue }
            rest = rest.dropFirst(prefix.count)
            if rest.hasPrefix("-"), rest.count >= 15 {
                let numbers = rest.prefix(15)
                let digits = numbers.dropFirst().prefix(5) + numbers.suffix(5)
                guard numbers.dropFirst(6).prefix(4) == "-of-", digits.allSatisfy(\.isNumber) else { continue }
                rest = rest.dropFirst(15)
            }
            guard rest.hasPrefix(suffix) else { continue }
            rest = rest.dropFirst(suffix.count)
            guard rest.isEmpty || rest == ".index.json" else { continue }
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }
}
