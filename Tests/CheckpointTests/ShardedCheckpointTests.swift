import Foundation
import Testing
@testable import Checkpoint
import TestSupport

// Hugging Face sharded checkpoints written by huggingface_hub (scripts/make_dcp_fixtures.py) must
// load equal to the shards merged by torch and safetensors themselves, and ckpt's sharding must
// be huggingface_hub's.

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/sharded")

/// A copy of a fixture checkpoint in a scratch directory, to damage.
private func scratchCopy(_ name: String) throws -> URL {
    try TemporaryDirectory.scopedCopy(of: fixtures.appendingPathComponent(name), prefix: "ckpt-shards")
}


/// Rewrites a text file with `edit` applied.
private func edit(_ url: URL, _ edit: (String) -> String) throws {
    try edit(String(contentsOf: url, encoding: .utf8)).write(to: url, atomically: true, encoding: .utf8)
}

private func sourceTensors() throws -> [(name: String, tensor: Tensor)] {
    try ShardedCheckpoint.flatTensors(StateValue(contentsOf: fixtures.appendingPathComponent("source.pt")), file: "source.pt")
}

/// `splits.json`: huggingface_hub's split of source.pt at several sizes.
private struct Splits: Decodable {
    struct Split: Decodable {
        var filenameToTensors: [String: [String]]
        var metadata: [String: Int]
        var isSharded: Bool

        enum CodingKeys: String, CodingKey {
            case filenameToTensors = "filename_to_tensors", metadata, isSharded = "is_sharded"
        }
    }

    var splits: [String: Split]
}

@Suite struct ShardedCheckpointTests {
    @Test(arguments: ["safetensors", "bin"])
    func loadsEqualToTheShardsMerged(_ name: String) throws {
        let loaded = try StateValue(contentsOf: fixtures.appendingPathComponent(name))
        let expected = try StateValue(contentsOf: fixtures.appendingPathComponent("\(name).expected.pt"))
        #expect(loaded == expected)
    }

    @Test func readsTheIndexNamedDirectly() throws {
        let index = fixtures.appendingPathComponent("safetensors/model.safetensors.index.json")
        #expect(try StateValue(contentsOf: index) == StateValue(contentsOf: fixtures.appendingPathComponent("safetensors")))
        #expect(try CheckpointFormat(contentsOf: index) == .safetensors)
        #expect(try CheckpointFormat(contentsOf: fixtures.appendingPathComponent("bin")) == .pt)
    }

    @Test func opensTheIndexAndItsRecordOfTiedTensors() throws {
        let checkpoint = try ShardedCheckpoint(contentsOf: fixtures.appendingPathComponent("safetensors"))
        #expect(checkpoint.files.map(\.name) == (1...3).map { "model-0000\($0)-of-00003.safetensors" })
        #expect(checkpoint.totalSize == 2152)
        #expect(checkpoint.metadata["lm_head.weight"] == "embed.weight")
        #expect(checkpoint.weightMap.count == 9)
    }

    @Test func binShardsKeepTiedTensorsShared() throws {
        let tree = try StateValue(contentsOf: fixtures.appendingPathComponent("bin"))
        guard case .tensor(let embed)? = tree["embed.weight"], case .tensor(let head)? = tree["lm_head.weight"] else {
            Issue.record("tied tensors missing")
            return
        }
        #expect(embed.storage === head.storage)
    }

    @Test func splitsAsHuggingFaceHub() throws {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("splits.json"))
        let expected = try JSONDecoder().decode(Splits.self, from: data)
        let tensors = try sourceTensors()
        #expect(expected.splits.count == 5)
        for (size, split) in expected.splits {
            let ours = ShardedCheckpoint.split(tensors, maximumShardSize: try ShardedCheckpoint.parseSize(size))
            #expect(Dictionary(uniqueKeysWithValues: ours.files.map { ($0.key, $0.value) }) == split.filenameToTensors, "\(size)")
            #expect(ours.totalSize == split.metadata["total_size"], "\(size)")
            #expect(ours.isSharded == split.isSharded, "\(size)")
        }
    }

    @Test(arguments: [("5GB", 5_000_000_000), ("1.5KB", 1500), ("100", 100), (" 2 mb ", 2_000_000), ("0.1GB", 100_000_000)])
    func parsesSizesAsHuggingFaceHub(_ text: String, _ bytes: Int) throws {
        #expect(try ShardedCheckpoint.parseSize(text) == bytes)
    }

    @Test(arguments: ["5GiB", "GB", "-1KB", "0"])
    func refusesOtherSizes(_ text: String) {
        let error = #expect(throws: CheckpointError.self) { _ = try ShardedCheckpoint.parseSize(text) }
        #expect(error?.code == .invalidArgument)
    }

    @Test func writesWhatHuggingFaceHubWrites() throws {
        let source = try StateValue(contentsOf: fixtures.appendingPathComponent("source.pt"))
        for (format, name, index) in [
            (CheckpointFormat.safetensors, "safetensors", "model.safetensors.index.json"),
            (.pt, "bin", "pytorch_model.bin.index.json"),
        ] {
            let directory = TemporaryDirectory.scoped(prefix: "ckpt-shards-out")
            try ShardedCheckpoint.write(source, to: directory, format: format, maximumShardSize: 1000)
            let ours = try String(contentsOf: directory.appendingPathComponent(index), encoding: .utf8)
            let theirs = try String(contentsOf: fixtures.appendingPathComponent("\(name)/\(index)"), encoding: .utf8)
            #expect(ours == theirs)
            let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
            let expectedNames = try FileManager.default.contentsOfDirectory(atPath: fixtures.appendingPathComponent(name).path).sorted()
            #expect(names == expectedNames)
            #expect(try StateValue(contentsOf: directory) == StateValue(contentsOf: fixtures.appendingPathComponent("\(name).expected.pt")))
            if format == .safetensors {
                #expect(try Safetensors.metadata(contentsOf: directory.appendingPathComponent("model-00001-of-00003.safetensors")) == ["format": "pt"])
            }
        }
    }

    @Test func oneShardHasNoIndexAndKeepsTheTiedRecordInTheFile() throws {
        let source = try StateValue(contentsOf: fixtures.appendingPathComponent("source.pt"))
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-shards-one")
        // A stale sharded save in the same directory is cleared, as huggingface_hub clears it.
        try ShardedCheckpoint.write(source, to: directory, maximumShardSize: 1000)
        try ShardedCheckpoint.write(source, to: directory)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.safetensors"])
        let file = directory.appendingPathComponent("model.safetensors")
        #expect(try Safetensors.metadata(contentsOf: file) == ["format": "pt", "lm_head.weight": "embed.weight"])
    }

    @Test func refusesNestedTrees() throws {
        let tree: StateValue = ["model": ["w": .tensor(try Tensor([Float(1)]))]]
        let error = #expect(throws: CheckpointError.self) { try ShardedCheckpoint.write(tree, to: TemporaryDirectory.scoped(prefix: "ckpt-shards-nested"), maximumShardSize: 10) }
        #expect(error?.code == .unsupported)
        #expect(error?.path == "model")
    }

    // MARK: Hostile indexes

    @Test func refusesAMissingShard() throws {
        let directory = try scratchCopy("safetensors")
        try FileManager.default.removeItem(at: directory.appendingPathComponent("model-00002-of-00003.safetensors"))
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: directory) }
        #expect(error?.code == .missingEntry)
        #expect(error?.file?.hasSuffix("model-00002-of-00003.safetensors") == true)
        #expect(error?.path == "weight_map/layers.0.mlp.weight")
    }

    @Test func refusesATensorNamedTwice() throws {
        let directory = try scratchCopy("safetensors")
        try edit(directory.appendingPathComponent("model.safetensors.index.json")) {
            $0.replacingOccurrences(of: "\"norm.steps\"", with: "\"norm.weight\"")
        }
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: directory) }
        #expect(error?.code == .corrupt)
        #expect(error.map { "\($0)".contains("norm.weight") } == true)
    }

    @Test func refusesATensorInTheWrongShard() throws {
        let directory = try scratchCopy("safetensors")
        try edit(directory.appendingPathComponent("model.safetensors.index.json")) {
            $0.replacingOccurrences(of: "\"norm.steps\": \"model-00003", with: "\"norm.steps\": \"model-00001")
        }
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: directory) }
        #expect(error?.code == .corrupt)
        #expect(error?.path == "norm.steps")
    }

    @Test func refusesATensorTheShardLacks() throws {
        let directory = try scratchCopy("safetensors")
        try edit(directory.appendingPathComponent("model.safetensors.index.json")) {
            $0.replacingOccurrences(of: "\"norm.steps\": \"model-00003-of-00003.safetensors\"",
                                    with: "\"norm.steps\": \"model-00003-of-00003.safetensors\",\n    \"extra\": \"model-00002-of-00003.safetensors\"")
        }
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: directory) }
        #expect(error?.code == .missingEntry)
        #expect(error?.path == "extra")
    }

    @Test func refusesAWrongTotalSize() throws {
        let directory = try scratchCopy("bin")
        try edit(directory.appendingPathComponent("pytorch_model.bin.index.json")) {
            $0.replacingOccurrences(of: "\"total_size\": 2152", with: "\"total_size\": 2153")
        }
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: directory) }
        #expect(error?.code == .corrupt)
        #expect(error?.path == "metadata/total_size")
    }

    @Test func refusesAShardOutsideTheDirectory() throws {
        let directory = try scratchCopy("safetensors")
        try edit(directory.appendingPathComponent("model.safetensors.index.json")) {
            $0.replacingOccurrences(of: "\"norm.steps\": \"model-00003", with: "\"norm.steps\": \"../model-00003")
        }
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: directory) }
        #expect(error?.code == .unsafeName)
    }

    @Test func refusesADirectoryWithoutACheckpoint() throws {
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-empty-dir")
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: directory) }
        #expect(error?.code == .notRecognized)
    }
}

@Suite struct ShardedCheckpointInteropTests {
    /// What ckpt writes loads in torch as transformers loads shards (safetensors.torch.load_file or
    /// torch.load per shard, merged by weight_map), tied tensors through huggingface_hub's record.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason), arguments: [
        (CheckpointFormat.safetensors, 1000), (.pt, 1500), (.safetensors, 1_000_000),
    ])
    func shardLoadersReadWhatCkptWrites(_ format: CheckpointFormat, _ maximumShardSize: Int) throws {
        let sourceURL = fixtures.appendingPathComponent("source.pt")
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-shards-torch")
        try ShardedCheckpoint.write(
            try StateValue(contentsOf: sourceURL), to: directory, format: format, maximumShardSize: maximumShardSize,
            options: SaveOptions(durable: false))
        let script = fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/check_dcp_interop.py")
        let result = try TorchVenv.run([script.path, "hf", directory.path, sourceURL.path])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("OK"), "\(result.output)")
    }
}
