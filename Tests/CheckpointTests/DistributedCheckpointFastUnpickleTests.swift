import Foundation
import Testing
@testable import Checkpoint
import TestSupport

// The decoder specialised to `.metadata` must read what torch and ckpt write exactly as the general
// restricted unpickler does, and leave every other pickle to it.

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/dcp")

private typealias Metadata = DistributedCheckpoint.Metadata

/// Both decodings of a `.metadata` file: the fast one (nil when it gives up) and the general one.
private func decodings(_ url: URL, limits: ResourceLimits = .default) throws -> (fast: Metadata?, general: Result<Metadata, any Error>) {
    let file = try MappedFile(path: url.path)
    return withExtendedLifetime(file) {
        (
            (try? FastMetadataDecoder.decode(file.bytes, limits: limits)) ?? nil,
            Result { try Metadata(generalPickle: file.bytes, file: url.path, limits: limits) }
        )
    }
}

@Suite struct DistributedCheckpointFastUnpickleTests {
    /// torch's files (one process, 2 gloo ranks with DTensors) and torch-pickled variants whose
    /// problems only the later checks find.
    @Test(arguments: [
        "single/.metadata", "two_ranks/.metadata", "hostile/overlap.metadata", "hostile/outside.metadata",
        "hostile/gap.metadata", "hostile/past_file.metadata", "hostile/missing_file.metadata",
        "storage_variants/hints_none.metadata", "storage_variants/hints_wrong.metadata",
        "storage_variants/extra_entries.metadata",
    ])
    func readsTorchFilesAsTheGeneralPathDoes(_ name: String) throws {
        let (fast, general) = try decodings(fixtures.appendingPathComponent(name))
        let expected = try general.get()
        #expect(fast != nil, "the fast decoder gave up on a file torch wrote")
        #expect(fast == expected)
    }

    @Test func readsCkptFilesAsTheGeneralPathDoes() throws {
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-dcp-fast").appendingPathComponent("three")
        let source = try StateValue(contentsOf: fixtures.appendingPathComponent("single.source.pt"))
        try DistributedCheckpoint.write(source, to: directory, ranks: 3, options: SaveOptions(durable: false))
        let (fast, general) = try decodings(directory.appendingPathComponent(".metadata"))
        #expect(fast != nil)
        #expect(fast == (try general.get()))
    }

    /// A `.metadata` of 6,400 chunks (over 256 KiB): the decoder's element pool then starts past
    /// 2 MiB, where on Linux it is mapped for huge pages, and it still reads as the general path
    /// (with its caps raised, as opening the checkpoint raises them for its size) reads.
    @Test func readsLargeFilesAsTheGeneralPathDoes() throws {
        let directory = TemporaryDirectory.scoped(prefix: "ckpt-dcp-fast").appendingPathComponent("large")
        let tensors = try (0..<100).map { index in
            (StateKey.string("layer\(index).weight"), StateValue.tensor(try Tensor(Array(repeating: Float(index), count: 64))))
        }
        try DistributedCheckpoint.write(.dict(StateDict(tensors)), to: directory, ranks: 64, options: SaveOptions(durable: false))
        let url = directory.appendingPathComponent(".metadata")
        #expect(try FileIO.size(ofFileAt: url.path) > 256 << 10)
        let (fast, general) = try decodings(url, limits: ResourceLimits(maximumValues: 1 << 24))
        #expect(fast != nil)
        #expect(fast == (try general.get()))
    }

    /// The decoder's arrays keep every element through growth, from a small allocation and from a
    /// mapping (past 2 MiB).
    @Test(arguments: [16, 300_000])
    func buffersKeepTheirElementsAsTheyGrow(_ capacity: Int) {
        var buffer = FastMetadataDecoder.Buffer<Int>(capacity: capacity)
        let count = capacity * 3 + 5
        for value in 0..<count { buffer.append(value * 7) }
        #expect(buffer.count == count)
        #expect(buffer[0] == 0 && buffer[count - 1] == (count - 1) * 7)
        #expect(buffer.elements(count - 3..<count).elementsEqual([(count - 3) * 7, (count - 2) * 7, (count - 1) * 7]))
        buffer.truncate(to: 2)
        #expect(buffer.removeLast() == 7)
        #expect(buffer.count == 1)
    }

    /// A global outside DCP's dataclasses: the fast decoder leaves the file to the general path,
    /// which refuses it by name.
    @Test func leavesForbiddenGlobalsToTheGeneralPath() throws {
        let (fast, general) = try decodings(fixtures.appendingPathComponent("hostile/forbidden_global.metadata"))
        #expect(fast == nil)
        #expect(throws: CheckpointError.self) { try general.get() }
        #expect((try? general.get()) == nil)
        if case .failure(let error as CheckpointError) = general {
            #expect(error.code == .forbiddenGlobal)
            #expect("\(error)".contains("posix.system"))
        }
    }

    /// Every cut of a torch file: the fast decoder reads none of them (each ends before STOP), and
    /// never crashes.
    @Test func givesUpOnTruncatedFiles() throws {
        let bytes = try Data(contentsOf: fixtures.appendingPathComponent("two_ranks/.metadata"))
        for length in stride(from: 0, to: bytes.count - 1, by: 7) {
            let fast = bytes.prefix(length).withUnsafeBytes { (try? FastMetadataDecoder.decode($0)) ?? nil }
            #expect(fast == nil, "decoded \(length) of \(bytes.count) bytes")
        }
    }
}
