import Checkpoint
import CheckpointTools
import Foundation
import Testing
import TestSupport

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

private func scratchFile(_ name: String) -> String {
    let directory = TemporaryDirectory.scoped(prefix: "verifier")
    return directory.appendingPathComponent(name).path
}

/// torch's tiny training run (model, Adagrad state, epoch, loss) saved again as a `.ckpt`.
private func ckptCopy() throws -> String {
    let path = scratchFile("run.ckpt")
    let tree = try StateValue(contentsOf: fixtures.appendingPathComponent("../../Samples/data/tiny-run.pt"))
    try tree.write(to: URL(fileURLWithPath: path), options: SaveOptions(durable: false))
    return path
}

/// Rewrites a stored entry's bytes in place, fixing its CRC-32 in the local and central headers so
/// only the content is wrong, not the zip.
private func patchEntry(_ path: String, _ name: String, _ edit: (inout [UInt8]) -> Void) throws {
    let entry = try ZipReader(path: path).requireEntry(named: name)
    var file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    var content = Array(file[entry.dataOffset..<entry.dataOffset + entry.uncompressedSize])
    edit(&content)
    #expect(content.count == entry.uncompressedSize)
    file.replaceSubrange(entry.dataOffset..<entry.dataOffset + content.count, with: content)
    let old = withUnsafeBytes(of: entry.crc32.littleEndian, Array.init)
    let new = withUnsafeBytes(of: CRC32.checksum(content).littleEndian, Array.init)
    var replaced = 0
    var index = 0
    while index + 4 <= file.count {
        if Array(file[index..<index + 4]) == old, index < entry.dataOffset || index >= entry.dataOffset + content.count {
            file.replaceSubrange(index..<index + 4, with: new)
            replaced += 1
        }
        index += 1
    }
    #expect(replaced == 2, "the old CRC-32 should appear once in the local and once in the central header")
    try Data(file).write(to: URL(fileURLWithPath: path))
}

private func replace(_ text: String, with replacement: String, in bytes: inout [UInt8]) {
    let source = String(decoding: bytes, as: UTF8.self)
    #expect(source.components(separatedBy: text).count == 2, "\(text) should occur exactly once")
    bytes = Array(source.replacingOccurrences(of: text, with: replacement).utf8)
}

@Suite("CheckpointVerifier")
struct CheckpointVerifierTests {
    @Test(arguments: ["pt/model_tied.pt", "pt/adagrad_groups.pt", "pt/dtypes.pt", "pt/archive_deflated.pt", "safetensors/all_dtypes.safetensors"])
    func torchFilesPass(_ name: String) throws {
        let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: fixtures.appendingPathComponent(name).path))
        #expect(report.passed, "\(report.checks.filter { $0.status == .failed })")
    }

    @Test func ckptArchivesRunEveryCheck() throws {
        let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: try ckptCopy()))
        #expect(report.format == .ckpt)
        #expect(report.checks.map(\.name) == [
            "zip-directory", "zip-consistency", "crc32", "pickle", "manifest", "manifest-vs-pickle", "alignment",
        ])
        #expect(report.checks.allSatisfy { $0.status == .passed })
    }

    @Test func plainTorchArchiveSkipsManifestChecks() throws {
        let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: fixtures.appendingPathComponent("pt/model_tied.pt").path))
        #expect(report.format == .pt)
        #expect(report.checks.first { $0.name == "manifest" }?.status == .skipped)
        #expect(report.checks.first { $0.name == "manifest-vs-pickle" }?.status == .skipped)
        #expect(report.checks.first { $0.name == "alignment" }?.status == .passed)
    }

    /// Python's zipfile rewrote this torch archive without alignment padding: torch.load still reads it.
    @Test func misalignedTorchArchiveIsAWarning() throws {
        let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: fixtures.appendingPathComponent("pt/archive_renamed.pt").path))
        #expect(report.passed)
        let alignment = try #require(report.checks.first { $0.name == "alignment" })
        #expect(alignment.status == .warning)
        #expect(alignment.failures.map(\.path) == (0..<4).map { "some_other_top/data/\($0)" })
    }

    @Test func flippedBlobByteFailsTheCRCCheckNamingTheEntry() throws {
        let path = try ckptCopy()
        let entry = try ZipReader(path: path).requireEntry(named: "archive/data/2")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[entry.dataOffset + 5] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: path))
        #expect(!report.passed)
        let crc = try #require(report.checks.first { $0.name == "crc32" })
        #expect(crc.status == .failed)
        #expect(crc.failures.map(\.path) == ["archive/data/2"])
        #expect(crc.failures.first?.code == .checksumMismatch)
        #expect(report.checks.filter { $0.status == .failed }.map(\.name) == ["crc32"])
    }

    @Test func manifestScalarThatDisagreesWithThePickleFails() throws {
        let path = try ckptCopy()
        try patchEntry(path, "archive/manifest.json") {
            replace("\"epoch\",{\"type\":\"int\",\"value\":5}", with: "\"epoch\",{\"type\":\"int\",\"value\":6}", in: &$0)
        }
        let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: path))
        #expect(report.checks.filter { $0.status == .failed }.map(\.name) == ["manifest-vs-pickle"])
        let failure = try #require(report.checks.first { $0.name == "manifest-vs-pickle" }?.failures.first)
        #expect(failure.path == "epoch")
        #expect(failure.found == "int 6 (manifest)")
        #expect(failure.expected == "int 5 (pickle)")
    }

    @Test func manifestPointingATensorAtAnotherStorageFails() throws {
        let path = try ckptCopy()
        // model/0.weight and optimizer/state/0/sum are both float32 [16, 8]: swapping storages keeps every size valid.
        try patchEntry(path, "archive/manifest.json") {
            replace("\"storage_offset\":0,\"storage\":0,", with: "\"storage_offset\":0,\"storage\":5,", in: &$0)
        }
        let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: path))
        #expect(report.checks.filter { $0.status == .failed }.map(\.name) == ["manifest-vs-pickle"])
        let failure = try #require(report.checks.first { $0.name == "manifest-vs-pickle" }?.failures.first)
        #expect(failure.path == "model/0.weight")
        #expect(failure.expected == "archive/data/0 (pickle)")
        #expect(failure.found == "archive/data/5 (manifest)")
    }

    @Test func damagedDirectoryFailsAndSkipsTheRest() throws {
        let path = scratchFile("cut.pt")
        let bytes = try Data(contentsOf: fixtures.appendingPathComponent("pt/model_tied.pt"))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: path))
        let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: path))
        #expect(report.checks.first?.status == .failed)
        #expect(report.checks.dropFirst().allSatisfy { $0.status == .skipped })
    }

    /// Seeded random damage (byte flips, truncation, zeroed runs) gives a report or a CheckpointError, never a
    /// crash; damage inside any entry's data (which a CRC-32 covers) never passes. Damage elsewhere may be
    /// harmless (timestamps, padding in extra fields) and may pass.
    @Test func randomDamageIsReportedNotFatal() throws {
        let clean = try ckptCopy()
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: clean)))
        let dataRanges = try ZipReader(path: clean).entries.map { $0.dataOffset..<$0.dataOffset + $0.compressedSize }
        let path = scratchFile("fuzz.ckpt")
        var generator = SplitMix64(seed: 0x5EED)
        var failedReports = 0
        for round in 0..<300 {
            var bytes = original
            var touchesData = false
            switch round % 3 {
            case 0:
                for _ in 0..<(1 + Int(generator.next() % 4)) {
                    let position = Int(generator.next() % UInt64(bytes.count))
                    bytes[position] ^= UInt8(1 + generator.next() % 255)
                    touchesData = touchesData || dataRanges.contains { $0.contains(position) }
                }
            case 1:
                bytes.removeLast(1 + Int(generator.next() % UInt64(bytes.count - 1)))
            default:
                let start = Int(generator.next() % UInt64(bytes.count))
                let end = min(bytes.count, start + 1 + Int(generator.next() % 64))
                bytes.replaceSubrange(start..<end, with: repeatElement(0, count: end - start))
                touchesData = (start..<end).contains { position in
                    original[position] != 0 && dataRanges.contains { $0.contains(position) }
                }
            }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: path))
                if !report.passed { failedReports += 1 }
                #expect(!(report.passed && touchesData), "round \(round): damaged entry data passed verification")
            } catch is CheckpointError {
                continue
            }
        }
        #expect(failedReports > 100)
    }

    @Test func unreadableFilesThrow() throws {
        #expect(throws: CheckpointError.self) { try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: "/nonexistent/x.ckpt")) }
        #expect(throws: CheckpointError.self) {
            try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: fixtures.appendingPathComponent("pt/legacy_format.pt").path))
        }
    }
}
