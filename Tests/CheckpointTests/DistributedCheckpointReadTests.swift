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
        // Offsets, sizes and storage_data entries as torch's own unpickler reads this .metadata.
        #expect(w.chunks == [
            .init(offsets: [0, 0], sizes: [3, 4], location: .init(file: "__0_0.distcp", offset: 0, length: 1577)),
            .init(offsets: [3, 0], sizes: [3, 4], location: .init(file: "__1_0.distcp", offset: 2522, length: 1577)),
        ])
        guard case .tensor(let cols)? = checkpoint.metadata.items["model.cols"] else {
            Issue.record("model.cols is not a tensor item")
            return
        }
        #expect(cols.chunks.map(\.offsets) == [[0, 0], [0, 3]])
        #expect(checkpoint.metadata.items["step"] == .bytes(location: .init(file: "__1_0.distcp", offset: 0, length: 1261)))
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

    /// `MetadataIndex.index` is only a hint, and entries that name no chunk are never read: torch
    /// loads these variants of two_ranks/.metadata equal to two_ranks (scripts/make_dcp_fixtures.py
    /// checks it), so ckpt must too, each chunk with the bytes torch reads for it.
    @Test(arguments: ["hints_none", "hints_wrong", "extra_entries"])
    func findsEachChunksBytesWhateverTheHints(_ name: String) throws {
        let directory = try scratchCopy("two_ranks")
        let metadata = directory.appendingPathComponent(".metadata")
        try FileManager.default.removeItem(at: metadata)
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("storage_variants/\(name).metadata"), to: metadata)
        let original = try DistributedCheckpoint(contentsOf: fixtures.appendingPathComponent("two_ranks"))
        let variant = try DistributedCheckpoint(contentsOf: directory)
        #expect(variant.metadata.items == original.metadata.items)
        let expected = try StateValue(contentsOf: fixtures.appendingPathComponent("two_ranks.expected.pt"))
        #expect(try variant.load() == expected)
    }

    // MARK: Hostile variants

    @Test(arguments: [
        ("overlap", CheckpointError.Code.corrupt, "overlap"),
        ("outside", .outOfBounds, "outside its tensor"),
        ("gap", .corrupt, "uncovered"),
        ("past_file", .outOfBounds, "past the end of its data file"),
        ("missing_file", .missingEntry, "__7_0.distcp"),
        ("forbidden_global", .forbiddenGlobal, "posix.system"),
        ("duplicate_entry", .corrupt, "two storage locations"),
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

    /// Chunk checks made straight on metadata: the sweep along the dimension with the most
    /// distinct offsets must find an overlap whichever dimension the chunks are split along.
    @Test(arguments: [
        // Rows, columns, a 2 × 2 grid: disjoint, covering.
        ([4, 6], [([0, 0], [2, 6]), ([2, 0], [2, 6])], nil as String?),
        ([4, 6], [([0, 0], [4, 3]), ([0, 3], [4, 3])], nil),
        ([4, 6], [([2, 3], [2, 3]), ([0, 0], [2, 3]), ([2, 0], [2, 3]), ([0, 3], [2, 3])], nil),
        // Columns overlapping in column 2 (both span every row, so the sweep runs along columns).
        ([4, 6], [([0, 0], [4, 3]), ([0, 2], [4, 4])], "overlap"),
        // Grid cells where one cell also covers its right neighbour; the total still matches.
        ([4, 6], [([0, 0], [2, 6]), ([2, 0], [2, 3]), ([2, 2], [2, 1]), ([2, 4], [2, 2])], "overlap"),
        // The overlap is not with the next chunk along the sweep: found by the second comparison.
        ([3, 6], [([0, 0], [1, 5]), ([1, 1], [2, 1]), ([0, 3], [1, 1])], "overlap"),
        // Four full-size chunks of a tensor of 2⁶² elements: their counts add up past Int.max.
        ([1 << 62], [([0], [1 << 62]), ([0], [1 << 62]), ([0], [1 << 62]), ([0], [1 << 62])], "overlap"),
        ([4, 6], [([0, 0], [2, 6])], "uncovered"),
    ] as [([Int], [([Int], [Int])], String?)])
    func checksChunksAlongAnyDimension(_ shape: [Int], _ boxes: [([Int], [Int])], _ error: String?) throws {
        let chunks = boxes.map { DistributedCheckpoint.Chunk(offsets: $0.0, sizes: $0.1) }
        let tensor = DistributedCheckpoint.TensorItem(dtype: .uint8, shape: shape, chunks: chunks)
        let check = { try DistributedCheckpoint.Metadata.checkChunks(of: tensor, file: ".metadata", path: "w") }
        guard let error else {
            try check()
            return
        }
        let failure = #expect(throws: CheckpointError.self) { try check() }
        #expect(failure?.code == .corrupt)
        #expect(failure.map { "\($0)".contains(error) } == true, "\(failure.map { "\($0)" } ?? "no error")")
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
