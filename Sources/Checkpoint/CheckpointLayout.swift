import Foundation

/// How a checkpoint spans files: one file (nil from ``detect(_:)``), a DCP directory, or a Hugging
/// Face index naming its shards.
package enum CheckpointLayout: Equatable {
    /// A directory holding `.metadata` (``DistributedCheckpoint``).
    case distributed
    /// A Hugging Face `*.index.json`, named directly or found in the directory given
    /// (``ShardedCheckpoint``).
    case sharded(index: URL)

    /// The layout at `url`: nil for a single checkpoint file, told from the name and what is in the
    /// directory, never from the data.
    ///
    /// In a directory, `.metadata` means DCP; otherwise its index file is found as transformers
    /// finds it, safetensors first: `model.safetensors.index.json`, another single
    /// `*.safetensors.index.json`, `pytorch_model.bin.index.json`, another single `*.index.json`.
    ///
    /// - Parameter url: A file or directory.
    /// - Returns: The layout, nil for anything that is not a directory or an `*.index.json`.
    /// - Throws: ``CheckpointError`` `.notRecognized` for a directory with neither, or with several
    ///   candidate index files.
    package static func detect(_ url: URL) throws -> CheckpointLayout? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return nil }
        guard isDirectory.boolValue else {
            return url.lastPathComponent.hasSuffix(".index.json") ? .sharded(index: url) : nil
        }
        if DistributedCheckpoint.isCheckpoint(url) { return .distributed }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        let indexes = names.filter { $0.hasSuffix(".index.json") }.sorted()
        for preferred in [
            indexes.filter { $0 == "model.safetensors.index.json" },
            indexes.filter { $0.hasSuffix(".safetensors.index.json") },
            indexes.filter { $0 == "pytorch_model.bin.index.json" },
            indexes,
        ] where !preferred.isEmpty {
            guard preferred.count == 1 else {
                throw CheckpointError(
                    .notRecognized, "the directory holds several sharded-checkpoint indexes; name the one to read", file: url.path,
                    expected: "one *.index.json", found: preferred.joined(separator: ", "))
            }
            return .sharded(index: url.appendingPathComponent(preferred[0]))
        }
        throw CheckpointError(
            .notRecognized, "not a checkpoint directory", file: url.path,
            expected: "a DCP checkpoint (.metadata and __<rank>_<n>.distcp files) or a Hugging Face *.index.json with its shards",
            found: names.isEmpty ? "an empty directory" : "\(names.count) entries: " + names.sorted().prefix(5).joined(separator: ", "))
    }
}
