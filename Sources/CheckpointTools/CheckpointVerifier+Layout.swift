import Checkpoint
import Foundation

/// `verify` of a checkpoint made of several files: a DCP directory, or a Hugging Face index and its
/// shards. Checks, in order:
/// - `layout`: `.metadata` (every chunk inside its tensor, none overlapping, each tensor covered,
///   every item inside a data file that exists) or the index (every shard present).
/// - `items` (DCP): every item's torch.save archive opens and holds what the metadata says.
///   `shards` (Hugging Face): every shard opens, holds the tensors the index puts in it and no
///   other, and their bytes add up to `total_size`.
/// - `crc32`: every byte of every item's storages against its zip CRC-32 (DCP; safetensors shards
///   have no checksums), a tensor in chunks assembled whole.
extension CheckpointVerifier {
    static func verifyLayout(_ url: URL, _ layout: CheckpointLayout, limits: ResourceLimits) -> VerificationReport {
        let path = url.path
        var checks: [VerificationReport.Check] = []
        func add(_ name: String, _ detail: String, _ error: (any Error)?) {
            checks.append(.init(
                name: name, status: error == nil ? .passed : .failed, detail: detail,
                failures: error.map { [checkpointError($0, path)] } ?? []))
        }
        func skip(_ names: [String], _ reason: String) {
            for name in names { checks.append(.init(name: name, status: .skipped, detail: reason, failures: [])) }
        }
        let format: CheckpointFormat
        let tree: StateValue
        switch layout {
        case .distributed:
            format = .dcp
            let checkpoint: DistributedCheckpoint
            do {
                checkpoint = try DistributedCheckpoint(contentsOf: url, limits: limits)
                add("layout", ".metadata: \(Plural.count(checkpoint.metadata.items.count, "item")) in \(Plural.count(checkpoint.files.count, "data file"))", nil)
            } catch {
                add("layout", ".metadata", error)
                skip(["items", "crc32"], "the metadata cannot be read")
                return VerificationReport(file: path, format: format, checks: checks)
            }
            do {
                tree = try checkpoint.load(options: LoadOptions(limits: limits))
                add("items", "every item's torch.save archive opens and holds what .metadata says", nil)
            } catch {
                add("items", "the items' torch.save archives", error)
                skip(["crc32"], "an item cannot be read")
                return VerificationReport(file: path, format: format, checks: checks)
            }
        case .sharded(let index):
            format = ShardedCheckpoint.shardFormat(ofIndex: index)
            let checkpoint: ShardedCheckpoint
            do {
                checkpoint = try ShardedCheckpoint(contentsOf: index, limits: limits)
                add("layout", "\(index.lastPathComponent): \(Plural.count(checkpoint.weightMap.count, "tensor")) in \(Plural.count(checkpoint.files.count, "shard"))", nil)
            } catch {
                add("layout", index.lastPathComponent, error)
                skip(["shards", "crc32"], "the index cannot be read")
                return VerificationReport(file: path, format: format, checks: checks)
            }
            do {
                tree = try checkpoint.load(options: LoadOptions(limits: limits))
                add("shards", "every shard holds the tensors the index puts in it, \(checkpoint.totalSize.map { "\($0) bytes as total_size says" } ?? "no total_size")", nil)
            } catch {
                add("shards", "the shards against the index", error)
                skip(["crc32"], "a shard cannot be read")
                return VerificationReport(file: path, format: format, checks: checks)
            }
        }
        do {
            try tree.verifyChecksums()
            add("crc32", "every storage read (CRC-32 of each archive entry; safetensors has none)", nil)
        } catch {
            add("crc32", "every storage read", error)
        }
        return VerificationReport(file: path, format: format, checks: checks)
    }
}
