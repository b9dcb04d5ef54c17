import Checkpoint
import CheckpointTools
import Foundation

/// How a checkpoint made of several files is split, as `inspect` shows it: a DCP checkpoint's
/// data files and ranks and the chunks of each tensor, or a Hugging Face index and its shards.
struct InspectSharding {
    /// A data file or shard.
    struct File: Encodable {
        let name: String
        let bytes: Int
        /// The rank that wrote a DCP data file (from its name); nil for a shard.
        @Nullable var rank: Int?
        /// DCP items (tensor chunks and values) or shard tensors in it.
        let items: Int
    }

    /// `dcp` or `huggingface`.
    let kind: String
    let files: [File]
    /// Distinct ranks of a DCP checkpoint's data files.
    let ranks: Int?
    /// A DCP checkpoint's metadata version.
    let version: String?
    /// A Hugging Face index's file name, `total_size` and other metadata entries.
    let index: String?
    let totalSize: Int?
    let metadata: OrderedMap<String, String>?
    /// Bytes on disk of every file: the metadata or index and the data.
    let diskBytes: Int
    /// Each DCP tensor's number of chunks, by key path.
    let chunks: [[StateKey]: Int]
    /// Each Hugging Face tensor's shard, by key path.
    let shards: [[StateKey]: String]

    init?(_ contents: CheckpointContents) {
        if let checkpoint = contents.distributed {
            kind = "dcp"
            files = checkpoint.files.map { File(name: $0.name, bytes: $0.byteCount, rank: $0.rank, items: $0.itemCount) }
            ranks = Set(checkpoint.files.compactMap(\.rank)).count
            version = checkpoint.metadata.version
            (index, totalSize, metadata) = (nil, nil, nil)
            let metadataBytes = (try? FileIO.size(ofFileAt: checkpoint.directory.appendingPathComponent(DistributedCheckpoint.metadataName).path)) ?? 0
            diskBytes = metadataBytes + files.reduce(0) { $0 + $1.bytes }
            var chunks: [[StateKey]: Int] = [:]
            for (name, item) in checkpoint.metadata.items {
                if case .tensor(let tensor) = item { chunks[checkpoint.metadata.paths[name] ?? [.string(name)]] = tensor.chunks.count }
            }
            self.chunks = chunks
            shards = [:]
        } else if let checkpoint = contents.sharded {
            kind = "huggingface"
            files = checkpoint.files.map { File(name: $0.name, bytes: $0.byteCount, rank: nil, items: $0.tensorCount) }
            (ranks, version) = (nil, nil)
            index = checkpoint.index.lastPathComponent
            totalSize = checkpoint.totalSize
            metadata = checkpoint.metadata
            let indexBytes = (try? FileIO.size(ofFileAt: checkpoint.index.path)) ?? 0
            diskBytes = indexBytes + files.reduce(0) { $0 + $1.bytes }
            chunks = [:]
            shards = Dictionary(uniqueKeysWithValues: checkpoint.weightMap.map { ([StateKey.string($0.key)], $0.value) })
        } else {
            return nil
        }
    }

    /// The lines after the heading: what the files are, one line each, and the index metadata.
    func lines(style: Terminal.Style) -> [String] {
        var lines: [String] = []
        if kind == "dcp" {
            var head = "DCP checkpoint: \(Plural.count(ranks ?? 0, "rank")), \(Plural.count(files.count, "data file"))"
            if let version { head += ", metadata version \(version)" }
            lines.append(style.key("sharding: ") + head)
        } else {
            var head = "Hugging Face index \(index ?? ""), \(Plural.count(files.count, "shard"))"
            if let totalSize { head += ", total_size \(ByteCount.text(totalSize))" }
            lines.append(style.key("sharding: ") + head)
        }
        for file in files {
            var line = "  \(style.key(file.name)): "
            if let rank = file.rank { line += "rank \(rank), " }
            line += "\(Plural.count(file.items, kind == "dcp" ? "item" : "tensor")), \(ByteCount.text(file.bytes, exact: false))"
            lines.append(line)
        }
        if let metadata, !metadata.isEmpty {
            lines.append(style.key("index metadata") + " (\(Plural.count(metadata.count, "pair")))")
            for (key, value) in metadata { lines.append("  \(style.key(key)): " + style.value("'\(value)'")) }
        }
        return lines
    }
}

extension InspectSharding: Encodable {
    enum CodingKeys: String, CodingKey {
        case kind, files, ranks, version, index, totalSize = "total_size", metadata
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encode(files, forKey: .files)
        try container.encode(ranks, forKey: .ranks)
        try container.encode(version, forKey: .version)
        try container.encode(index, forKey: .index)
        try container.encode(totalSize, forKey: .totalSize)
        try container.encode(metadata?.jsonObject, forKey: .metadata)
    }
}
