import Foundation
import Testing
@testable import Checkpoint
import TestSupport

// DCP checkpoints written by real torch (scripts/make_dcp_fixtures.py) must load equal to torch's
// own reading of them: dcp_to_torch_save's output, read back by ckpt's zip reader.

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/dcp")

/// A copy of a fixture checkpoint in a scratch directory, to damage.
private func scratchCopy(_ name: String) throws -> URL {
    try TemporaryDirectory.scopedCopy(of: fixtures.appendingPathComponent(name), prefix: "ckpt-dcp")
}


@Suite struct DistributedCheckpointReadTests {
    @Test(arguments: ["single", "two_ranks"])
    func loadsEqualToTorch(_ name: String) throws {
        let loaded = try StateValue(contentsOf: fixtures.appendingPathComponent(name))
        let expected = try StateValue(contentsOf: fixtures.appendingPathComponent("\(name).expected.pt"))
        #expect(loaded == expected)
    }

    @Test func detectsTheFormat() throws {
        #expect(try CheckpointFormat(contentsOf: fixtures.appendingPathComponent("two_ranks")) == .dcp)
    }

    @Test func opensFromMetadataAlone() throws {
        let checkpoint = try DistributedCheckpoint(contentsOf: fixtures.appendingPathComponent("two_ranks"))
        #expect(checkpoint.files.map(\.name) == ["__0_0.distcp", "__1_0.distcp"])
        #expect(checkpoint.files.map(\.rank) == [0, 1])
        guard case .tensor(let w)? = checkpoint.metadata.items["model.w"] else {
            Issue.record("model.w is not a tensor item")
            return
        }
        #expect(w.shape == [6, 4])
        #expect(w.chunks == [.init(offsets: [0, 0], sizes: [3, 4]), .init(offsets: [3, 0], sizes: [3, 4])])
        guard case .tensor(let cols)? = checkpoint.metadata.items["model.cols"] else {
            Issue.record("model.cols is not a tensor item")
            return
        }
        #expect(cols.chunks.map(\.offsets) == [[0, 0], [0, 3]])
        #expect(checkpoint.metadata.items["step"] == .bytes)
        #expect(checkpoint.metadata.paths["model.w"] == ["model", "w"])
        #expect(checkpoint.metadata.version == "1.0.0")
        #expect(checkpoint.metadata.checkpointID == "two_ranks")
    }

    @Test func keepsListIndicesAndStringKeysOfThePlannerData() throws {
        let checkpoint = try DistributedCheckpoint(contentsOf: fixtures.appendingPathComponent("single"))
        #expect(checkpoint.metadata.paths["optim.param_groups.0.lr"] == ["optim", "param_groups", 0, "lr"])
        #expect(checkpoint.metadata.paths["optim.state.0.sum"] == ["optim", "state", "0", "sum"])
        let tree = try checkpoint.load()
        #expect(tree.value(atPath: "buffers")?.pythonTypeName == "list")
        #expect(tree["optim"]?["state"]?[.string("0")] != nil)
    }

    @Test func oneChunkTensorsViewTheDataFile() throws {
        let tree = try StateValue(contentsOf: fixtures.appendingPathComponent("single"))
        guard case .tensor(let w)? = tree.value(atPath: "model/w") else {
            Issue.record("no model/w")
            return
        }
        #expect(w.storage.isMapped)
    }

    @Test func chunkedTensorsAreAssembledOnFirstRead() throws {
        let tree = try StateValue(contentsOf: fixtures.appendingPathComponent("two_ranks"))
        guard case .tensor(let w)? = tree.value(atPath: "model/w") else {
            Issue.record("no model/w")
            return
        }
        // In the scratch file, not filled yet; skipping checks must not skip the assembly.
        #expect(w.storage.isMapped)
        #expect(!w.storage.isVerified)
        w.storage.skipVerification()
        #expect(try w.scalars(as: Float.self) == (0..<24).map(Float.init))
        #expect(w.storage.isVerified)
    }

    @Test(arguments: ["single", "two_ranks"])
    func loadsLazilyForInspection(_ name: String) throws {
        let checkpoint = try DistributedCheckpoint(contentsOf: fixtures.appendingPathComponent(name))
        let lazy = try checkpoint.load(options: LoadOptions(), openingItems: false)
        var pending = 0
        lazy.forEachTensor { _, tensor in if !tensor.storage.isVerified { pending += 1 } }
        #expect(pending > 0)
        #expect(lazy == (try StateValue(contentsOf: fixtures.appendingPathComponent("\(name).expected.pt"))))
    }

    @Test func lazyLoadingReportsABadItemWhenItIsRead() throws {
        let directory = try scratchCopy("two_ranks")
        let file = directory.appendingPathComponent("__0_0.distcp")
        var bytes = [UInt8](try Data(contentsOf: file))
        for index in 1570..<1577 { bytes[index] = 0 }
        try Data(bytes).write(to: file)
        let tree = try DistributedCheckpoint(contentsOf: directory).load(options: LoadOptions(), openingItems: false)
        guard case .tensor(let w)? = tree.value(atPath: "model/w") else {
            Issue.record("no model/w")
            return
        }
        let failure = #expect(throws: CheckpointError.self) { _ = try w.contiguousBytes() }
        #expect(failure.map { "\($0)".contains("DCP item model.w@[0, 0]") } == true, "\(failure.map { "\($0)" } ?? "no error")")
    }

    // MARK: Hostile variants

    @Test(arguments: [
        ("overlap", CheckpointError.Code.corrupt, "overlap"),
        ("outside", .outOfBounds, "outside its tensor"),
        ("gap", .corrupt, "uncovered"),
        ("past_file", .outOfBounds, "past the end of its data file"),
        ("missing_file", .missingEntry, "__7_0.distcp"),
        ("forbidden_global", .forbiddenGlobal, "posix.system"),
    ])
    func refusesHostileMetadata(_ name: String, _ code: CheckpointError.Code, _ mentions: String) throws {
        let directory = try scratchCopy("single")
        let metadata = directory.appendingPathComponent(".metadata")
        try FileManager.default.removeItem(at: metadata)
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("hostile/\(name).metadata"), to: metadata)
        let failure = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: directory) }
        #expect(failure?.code == code)
        #expect(failure.map { "\($0)".contains(mentions) } == true, "\(failure.map { "\($0)" } ?? "no error")")
    }

    @Test func refusesAMissingDataFile() throws {
        let directory = try scratchCopy("two_ranks")
        try FileManager.default.removeItem(at: directory.appendingPathComponent("__1_0.distcp"))
        let failure = #expect(throws: CheckpointError.self) { _ = try DistributedCheckpoint(contentsOf: directory) }
        #expect(failure?.code == .missingEntry)
        #expect(failure?.file?.hasSuffix("__1_0.distcp") == true)
    }

    @Test func refusesATruncatedDataFile() throws {
        let directory = try scratchCopy("two_ranks")
        let file = directory.appendingPathComponent("__1_0.distcp")
        let bytes = try Data(contentsOf: file)
        try bytes.prefix(bytes.count - 100).write(to: file)
        let failure = #expect(throws: CheckpointError.self) { _ = try DistributedCheckpoint(contentsOf: directory) }
        #expect(failure?.code == .outOfBounds)
        #expect(failure?.path == "model.bias@[0]")
    }

    @Test func refusesADamagedItem() throws {
        let directory = try scratchCopy("two_ranks")
        let file = directory.appendingPathComponent("__0_0.distcp")
        var bytes = [UInt8](try Data(contentsOf: file))
        // The end of the first item's archive: its end-of-central-directory record.
        for index in 1570..<1577 { bytes[index] = 0 }
        try Data(bytes).write(to: file)
        let failure = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: directory) }
        #expect(failure != nil)
        #expect(failure.map { "\($0)".contains("DCP item model.w@[0, 0]") } == true, "\(failure.map { "\($0)" } ?? "no error")")
    }
}
