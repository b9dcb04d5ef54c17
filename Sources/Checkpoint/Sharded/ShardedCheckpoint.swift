import Foundation
import OrderedCollections

/// A Hugging Face sharded checkpoint: an index (`model.safetensors.index.json`,
/// `pytorch_model.bin.index.json`) whose `weight_map` names the shard file of every tensor, beside
/// the shards (`model-00001-of-00003.safetensors`, ...).
///
/// Opening reads the index and the size of each shard; ``load(options:)`` opens the shards (in
/// parallel) and gives one flat dict of tensors, in `weight_map` order, as transformers merges
/// the shards. The index is checked against the shards: every file present, every tensor in the
/// file the map names and in no other, every tensor a shard holds listed, and the tensor bytes
/// (each storage once, as huggingface_hub counts them) equal to `metadata.total_size`.
public struct ShardedCheckpoint: Sendable {
    /// The index file.
    public let index: URL
    /// Each tensor's shard file name, in the index's order.
    public let weightMap: OrderedMap<String, String>
    /// `metadata.total_size`: the tensor bytes of all shards, when the index gives it.
    public let totalSize: Int?
    /// The index's other `metadata` entries, a JSON string as its text and any other value as its
    /// JSON (`total_parameters`, and huggingface_hub's record of each tied tensor it dropped:
    /// dropped name → kept name).
    public let metadata: OrderedMap<String, String>
    /// The shard files in the order the map first names them.
    public let files: [Shard]

    /// A shard file.
    public struct Shard: Sendable, Equatable {
        /// The name in the index's directory.
        public var name: String
        /// Its size on disk.
        public var byteCount: Int
        /// The tensors the map puts in it.
        public var tensorCount: Int
    }

    /// The directory holding the index and its shards.
    public var directory: URL { index.deletingLastPathComponent() }

    /// Opens a sharded checkpoint: reads the index and the size of each shard it names.
    ///
    /// - Parameters:
    ///   - url: The `*.index.json`, or a directory holding one (see
    ///     ``StateValue/init(contentsOf:options:)`` for which).
    ///   - limits: The resource caps (``ResourceLimits/maximumJSONBytes`` holds the index).
    /// - Throws: ``CheckpointError`` naming the index and the tensor or file: `.corrupt` for an
    ///   index that is not `{"metadata": {...}, "weight_map": {name: file}}` or names a tensor twice,
    ///   `.unsafeName` for a shard name outside the directory, `.missingEntry` for a missing shard,
    ///   `.limitExceeded` for an index past ``ResourceLimits/maximumJSONBytes``.
    public init(contentsOf url: URL, limits: ResourceLimits = .default) throws {
        var indexURL = url
        if case .sharded(let found)? = try CheckpointLayout.detect(url) { indexURL = found }
        index = indexURL
        let path = indexURL.path
        let file = try MappedFile(path: path)
        let limits = limits.effective(fileBytes: ResourceLimits.directoryBytes(indexURL.deletingLastPathComponent()))
        // An index lists names only (a 1,000-layer model's is ~100 KB).
        try limits.check(.maximumJSONBytes, file.count, what: "index bytes", file: path)
        let json = try withExtendedLifetime(file) { try OrderedJSON.parse(file.bytes, file: path, what: "index", limits: limits) }
        guard case .object(let members) = json, case .object(let map)? = json["weight_map"] else {
            throw CheckpointError(
                .corrupt, "not a sharded-checkpoint index", file: path, path: "weight_map",
                expected: "an object {\"weight_map\": {tensor: file}}", found: json.kindName)
        }
        var weightMap = OrderedMap<String, String>()
        for (name, value) in map {
            guard case .string(let shard) = value else {
                throw CheckpointError(
                    .corrupt, "a weight_map entry is not a file name", file: path, path: "weight_map/\(KeyPathSyntax.escape(name))",
                    expected: "a string", found: value.kindName)
            }
            if let reason = Self.unsafeReason(shard) {
                throw CheckpointError(
                    .unsafeName, "weight_map names a shard outside the index's directory: \(reason)", file: path,
                    path: "weight_map/\(KeyPathSyntax.escape(name))", found: shard)
            }
            weightMap[name] = shard
        }
        self.weightMap = weightMap
        (totalSize, metadata) = try Self.readMetadata(members.first { $0.key == "metadata" }?.value, file: path)
        var counts = OrderedDictionary<String, Int>()
        for (_, shard) in weightMap { counts[shard, default: 0] += 1 }
        let directory = indexURL.deletingLastPathComponent()
        files = try counts.map { name, count in
            let shardPath = directory.appendingPathComponent(name).path
            do throws(SystemCallError) {
                return Shard(name: name, byteCount: try FileIO.size(ofFileAt: shardPath), tensorCount: count)
            } catch {
                throw CheckpointError(
                    .missingEntry, "a shard the index names is missing or unreadable: \(error.reason)", file: shardPath,
                    path: weightMap.first { $0.value == name }.map { "weight_map/\(KeyPathSyntax.escape($0.key))" },
                    expected: "a regular file", cause: error)
            }
        }
    }

    private static func readMetadata(_ json: OrderedJSON?, file: String) throws -> (Int?, OrderedMap<String, String>) {
        guard let json, json != .null else { return (nil, [:]) }
        guard case .object(let members) = json else {
            throw CheckpointError(.corrupt, "the index's metadata is not an object", file: file, path: "metadata", found: json.kindName)
        }
        var totalSize: Int?
        var others = OrderedMap<String, String>()
        for (key, value) in members {
            if key == "total_size" {
                guard let size = value.nonNegativeInt else {
                    throw CheckpointError(
                        .corrupt, "total_size is not a byte count", file: file, path: "metadata/total_size",
                        expected: "a non-negative integer", found: value.kindName)
                }
                totalSize = size
            } else if case .string(let text) = value {
                others[key] = text
            } else {
                others[key] = value.serialized(.compact)
            }
        }
        return (totalSize, others)
    }

    /// Why a shard name could leave the index's directory, or nil for a safe one.
    static func unsafeReason(_ name: String) -> String? {
        if name.isEmpty { return "an empty name" }
        if name.hasPrefix("/") { return "an absolute path" }
        if name.contains("\\") || name.contains("\0") { return "a backslash or NUL" }
        if name.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) {
            return "a '..', '.' or empty component"
        }
        return nil
    }

    /// The format of the shards an index names, told from its name (`*.safetensors.index.json`).
    package static func shardFormat(ofIndex index: URL) -> CheckpointFormat {
        index.lastPathComponent.hasSuffix(".safetensors.index.json") ? .safetensors : .pt
    }
}

extension ShardedCheckpoint {
    /// Loads every shard and merges them into one flat dict of tensors in `weight_map` order.
    ///
    /// Safetensors shards are mapped zero-copy; `.bin` shards are torch.save archives (tensors
    /// sharing storage in one shard, as tied weights are saved there, stay shared).
    ///
    /// - Parameter options: Checksum verification of `.bin` shards.
    /// - Returns: The tree.
    /// - Throws: ``CheckpointError`` naming the shard and the tensor: a shard that is not a flat
    ///   dict of tensors, a tensor missing from the shard the map names (`.missingEntry`), a tensor
    ///   in a shard the map does not list or puts elsewhere (`.corrupt`), tensor bytes that differ
    ///   from `total_size` (`.corrupt`); whatever reading a shard throws.
    public func load(options: LoadOptions = LoadOptions()) throws -> StateValue {
        let directory = directory
        let shards = files
        let loaded = ParallelWork.map(count: shards.count) { number -> OrderedDictionary<StateKey, StateValue> in
            let url = directory.appendingPathComponent(shards[number].name)
            guard case .dict(let dict) = try StateValue(contentsOf: url, options: options) else {
                throw CheckpointError(.corrupt, "a shard is not a dict of tensors", file: url.path, expected: "a dict")
            }
            return dict.items
        }
        var tensors: [String: (tensor: Tensor, file: String)] = [:]
        for (shard, result) in zip(shards, loaded) {
            let path = directory.appendingPathComponent(shard.name).path
            for (key, value) in try result.get() {
                guard case .string(let name) = key, case .tensor(let tensor) = value else {
                    throw CheckpointError(
                        .corrupt, "a shard holds something other than named tensors", file: path, path: key.pathComponent,
                        expected: "a tensor under a str key", found: "\(value.pythonTypeName) under \(key)")
                }
                guard let mapped = weightMap[name] else {
                    throw CheckpointError(
                        .corrupt, "a shard holds a tensor the index does not list", file: path, path: KeyPathSyntax.escape(name),
                        expected: "a weight_map entry for it", found: "none")
                }
                if let earlier = tensors[name] {
                    throw CheckpointError(
                        .corrupt, "a tensor is in two shards", file: path, path: KeyPathSyntax.escape(name),
                        expected: "only in \(mapped)", found: "in \(earlier.file) and \(shard.name)")
                }
                guard mapped == shard.name else {
                    throw CheckpointError(
                        .corrupt, "a shard holds a tensor the index puts in another file", file: path, path: KeyPathSyntax.escape(name),
                        expected: "in \(mapped)", found: "in \(shard.name)")
                }
                tensors[name] = (tensor, shard.name)
            }
        }
        var items = OrderedDictionary<StateKey, StateValue>()
        var seen = Set<ObjectIdentifier>()
        var bytes = 0
        for (name, shard) in weightMap {
            guard let tensor = tensors[name]?.tensor else {
                throw CheckpointError(
                    .missingEntry, "the index names a tensor its shard does not hold", file: directory.appendingPathComponent(shard).path,
                    path: KeyPathSyntax.escape(name), expected: "tensor \(name)", found: "none")
            }
            if seen.insert(ObjectIdentifier(tensor.storage)).inserted { bytes += tensor.storage.byteCount }
            items[.string(name)] = .tensor(tensor)
        }
        if let totalSize, totalSize != bytes {
            throw CheckpointError(
                .corrupt, "the shards' tensor bytes differ from the index's total_size", file: index.path,
                path: "metadata/total_size", expected: "\(totalSize) bytes", found: "\(bytes) bytes in \(files.count) shards")
        }
        return .dict(StateDict(items))
    }
}
