import Checkpoint
import Foundation
import Testing
import TestSupport

// inspect and convert on checkpoints made of several files: DCP directories and Hugging Face
// shards (fixtures written by torch and huggingface_hub, scripts/make_dcp_fixtures.py).

private func fixture(_ name: String) -> String { Tool.fixtures.appendingPathComponent(name).path }

private func load(_ path: String) throws -> StateValue { try StateValue(contentsOf: URL(fileURLWithPath: path)) }

@Suite("ckpt-tool on DCP and sharded checkpoints")
struct ShardedLayoutCommandTests {
    @Test func inspectShowsRanksFilesAndChunks() throws {
        let result = try Tool.run(["inspect", fixture("dcp/two_ranks"), "--no-color"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("  dcp  "))
        #expect(result.stdout.contains("sharding: DCP checkpoint: 2 ranks, 2 data files, metadata version 1.0.0"))
        #expect(result.stdout.contains("__1_0.distcp: rank 1, 6 items"))
        #expect(result.stdout.contains("w: Tensor float32 [6, 4] 96 B in 2 chunks"))
        #expect(result.stdout.contains("bias: Tensor float32 [4] 16 B\n"))
    }

    @Test func inspectJSONGivesTheSharding() throws {
        let json = try Tool.inspectJSON(fixture("sharded/safetensors"))
        #expect(json["format"] as? String == "safetensors")
        let sharding = try #require(json["sharding"] as? [String: Any])
        #expect(sharding["kind"] as? String == "huggingface")
        #expect(sharding["total_size"] as? Int == 2152)
        #expect((sharding["metadata"] as? [String: String])?["lm_head.weight"] == "embed.weight")
        #expect((sharding["files"] as? [[String: Any]])?.count == 3)
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(tensors.first { $0["path"] as? String == "norm.steps" }?["shard"] as? String == "model-00003-of-00003.safetensors")
    }

    @Test func convertReshardsADCPCheckpoint() throws {
        let directory = Tool.temporaryDirectory()
        let three = directory.appendingPathComponent("three").path
        let result = try Tool.run(["convert", fixture("dcp/two_ranks"), three, "--format", "dcp", "--ranks", "3", "--no-sync"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("(dcp, 3 ranks, 4 tensors"))
        #expect(try DistributedCheckpoint(contentsOf: URL(fileURLWithPath: three)).files.count == 3)
        let single = directory.appendingPathComponent("whole.pt").path
        #expect(try Tool.run(["convert", three, single]).status == 0)
        #expect(try load(single) == load(fixture("dcp/two_ranks.expected.pt")))
    }

    @Test func convertWritesHuggingFaceShards() throws {
        let output = Tool.temporaryDirectory().appendingPathComponent("hf").path
        let result = try Tool.run(["convert", fixture("sharded/source.pt"), output, "--max-shard-size", "1KB", "--no-sync"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("(safetensors, 3 shards, 10 tensors"))
        let index = try String(contentsOfFile: output + "/model.safetensors.index.json", encoding: .utf8)
        #expect(index == (try String(contentsOfFile: fixture("sharded/safetensors/model.safetensors.index.json"), encoding: .utf8)))
        #expect(try load(output) == load(fixture("sharded/safetensors.expected.pt")))
    }

    @Test(arguments: [
        (["--ranks", "2"], "--ranks needs --format dcp"),
        (["--format", "dcp", "--ranks", "0"], "--ranks must be at least 1"),
        (["--max-shard-size", "5GiB"], "unknown size unit"),
        (["--max-shard-size", "1KB", "--format", "ckpt"], "writes safetensors or pt shards"),
    ])
    func refusesBadLayoutOptions(_ options: [String], _ message: String) throws {
        let output = Tool.temporaryDirectory().appendingPathComponent("out").path
        let result = try Tool.run(["convert", fixture("sharded/source.pt"), output] + options)
        #expect(result.status == 64)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    @Test func aHostileDCPCheckpointIsAnErrorLine() throws {
        let directory = Tool.temporaryDirectory().appendingPathComponent("hostile")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: fixture("dcp/single")), to: directory)
        let metadata = directory.appendingPathComponent(".metadata")
        try FileManager.default.removeItem(at: metadata)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: fixture("dcp/hostile/forbidden_global.metadata")), to: metadata)
        let result = try Tool.run(["inspect", directory.path])
        #expect(result.status == 1)
        #expect(!result.looksLikeCrash)
        #expect(result.stderr.contains("posix.system"), "\(result.stderr)")
    }
}

@Suite("ckpt-tool verify on DCP and sharded checkpoints")
struct ShardedLayoutVerifyTests {
    @Test(arguments: ["dcp/two_ranks", "dcp/single", "sharded/safetensors", "sharded/bin"])
    func verifiesTorchsCheckpoints(_ name: String) throws {
        let result = try Tool.run(["verify", fixture(name), "--no-color"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("PASS crc32"))
    }

    @Test func aFlippedByteInAnItemFailsCRC32() throws {
        let directory = Tool.temporaryDirectory().appendingPathComponent("damaged")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: fixture("dcp/two_ranks")), to: directory)
        let file = directory.appendingPathComponent("__1_0.distcp")
        let checkpoint = try DistributedCheckpoint(contentsOf: directory)
        let location = try #require(checkpoint.metadata.locations[.init(name: "model.w", offsets: [3, 0])])
        let reader = try ZipReader(mapping: MappedFile(path: file.path), window: location.offset..<(location.offset + location.length))
        let data = try #require(reader.entries.first { $0.name.hasSuffix("data/0") })
        var bytes = [UInt8](try Data(contentsOf: file))
        bytes[data.dataOffset] ^= 0x01
        try Data(bytes).write(to: file)
        let result = try Tool.run(["verify", directory.path, "--no-color"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("FAIL crc32"), "\(result.stdout)")
    }
}
