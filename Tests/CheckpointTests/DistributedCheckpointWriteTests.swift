import Foundation
import Testing
@testable import Checkpoint
import TestSupport

// What ckpt writes as DCP: read back by ckpt equal to what torch read from its own DCP save of the
// same state (single.expected.pt), and loaded by torch itself (dcp.load in one process and in 2 gloo
// ranks, dcp_to_torch_save) when the torch venv is there.

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

private func source() throws -> StateValue {
    try StateValue(contentsOf: fixtures.appendingPathComponent("dcp/single.source.pt"))
}


private func tensor(_ values: [Float], _ shape: [Int]) throws -> StateValue {
    .tensor(try Tensor(values, shape: shape))
}

@Suite struct DistributedCheckpointWriteTests {
    @Test(arguments: [1, 2, 3, 5])
    func readsBackAsTorchReadsItsOwnSave(_ ranks: Int) throws {
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-dcp-write")
        try DistributedCheckpoint.write(try source(), to: directory, ranks: ranks, options: SaveOptions(durable: false))
        let expected = try StateValue(contentsOf: fixtures.appendingPathComponent("dcp/single.expected.pt"))
        #expect(try StateValue(contentsOf: directory) == expected)
    }

    @Test func splitsTensorsAlongTheFirstDimensionAsTorchChunk() throws {
        let tree: StateValue = ["w": try tensor((0..<10).map(Float.init), [5, 2]), "b": try tensor([1], [1]), "n": 3]
        let plan = try DistributedCheckpoint.plan(tree, ranks: 3)
        func chunks(_ rank: Int) -> [[Int]] {
            plan[rank].compactMap { item in
                if case .chunk(let piece, _, let offsets) = item.content, item.name == "w" { return offsets + piece.shape }
                return nil
            }
        }
        // torch.chunk(5 rows, 3): 2, 2, 1.
        #expect(chunks(0) == [[0, 0, 2, 2]])
        #expect(chunks(1) == [[2, 0, 2, 2]])
        #expect(chunks(2) == [[4, 0, 1, 2]])
        #expect(plan.joined().filter { $0.name == "b" || $0.name == "n" }.count == 2)
    }

    @Test func writesAtomicallyAndLeavesNoTemporaryFile() throws {
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-dcp-atomic")
        try DistributedCheckpoint.write(try source(), to: directory, ranks: 4)
        // A smaller save over it: the data files it does not name are removed.
        try DistributedCheckpoint.write(try source(), to: directory, ranks: 2)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == [".metadata", "__0_0.distcp", "__1_0.distcp"])
    }

    @Test func writesThroughTheFormatAPI() throws {
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-dcp-format").appendingPathComponent("out")
        let tree: StateValue = ["model": ["w": try tensor([1, 2, 3, 4], [2, 2])], "step": 7]
        try tree.write(to: directory, format: .dcp, options: SaveOptions(durable: false))
        #expect(try CheckpointFormat(contentsOf: directory) == .dcp)
        #expect(try StateValue(contentsOf: directory) == tree)
    }

    @Test func ranksWriteTheirOwnShardAndOneCommits() throws {
        // Two "processes", each with its half of w, and results passed as JSON.
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-dcp-ranks")
        let halves = [try Tensor([0, 1, 2, 3] as [Float], shape: [2, 2]), try Tensor([4, 5, 6, 7] as [Float], shape: [2, 2])]
        var results: [DistributedCheckpoint.ShardResult] = []
        for rank in 0..<2 {
            var items = [DistributedCheckpoint.WriteItem(path: ["model", "w"], content: .chunk(halves[rank], shape: [4, 2], offsets: [2 * rank, 0]))]
            if rank == 1 { items.append(.init(path: ["step"], content: .value(5))) }
            let result = try DistributedCheckpoint.writeShard(items, rank: rank, to: directory, options: SaveOptions(durable: false))
            let json = try JSONEncoder().encode(result)
            results.append(try JSONDecoder().decode(DistributedCheckpoint.ShardResult.self, from: json))
        }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent(".metadata").path))
        try DistributedCheckpoint.commit(results, to: directory)
        let tree = try StateValue(contentsOf: directory)
        #expect(tree == ["model": ["w": try tensor((0..<8).map(Float.init), [4, 2])], "step": 5])
    }

    @Test func commitRefusesPiecesThatLeaveAHole() throws {
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-dcp-hole")
        let piece = try Tensor([0, 1] as [Float], shape: [1, 2])
        let result = try DistributedCheckpoint.writeShard(
            [.init(path: ["w"], content: .chunk(piece, shape: [2, 2], offsets: [0, 0]))], rank: 0, to: directory)
        let error = #expect(throws: CheckpointError.self) { try DistributedCheckpoint.commit([result], to: directory) }
        #expect(error?.code == .corrupt)
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent(".metadata").path))
    }

    @Test func refusesPiecesOutsideTheirTensorAndCollidingNames() throws {
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-dcp-bad")
        let piece = try Tensor([0, 1] as [Float], shape: [1, 2])
        let error = #expect(throws: CheckpointError.self) {
            _ = try DistributedCheckpoint.writeShard([.init(path: ["w"], content: .chunk(piece, shape: [2, 2], offsets: [1, 1]))], rank: 0, to: directory)
        }
        #expect(error?.code == .invalidArgument)
        let colliding: StateValue = ["a.b": 1, "a": ["b": 2]]
        let collision = #expect(throws: CheckpointError.self) { _ = try DistributedCheckpoint.plan(colliding, ranks: 1) }
        #expect(collision?.code == .invalidArgument)
    }

    /// ckpt writes 3 ranks; torch loads them in one process (dcp.load, dcp_to_torch_save) and in 2
    /// gloo ranks holding DTensors sharded Shard(0), so it reshards 3 → 2 as it loads.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason))
    func torchLoadsWhatCkptWrites() throws {
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-dcp-torch")
        try DistributedCheckpoint.write(try source(), to: directory, ranks: 3, options: SaveOptions(durable: false))
        let script = fixtures.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/check_dcp_interop.py")
        let arguments = [script.path, "dcp", directory.path, fixtures.appendingPathComponent("dcp/single.source.pt").path, "--ranks", "2"]
        let result = try TorchVenv.run(arguments)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("OK"), "\(result.output)")
    }
}
