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
            "zip-directory", "zip-consistency", "crc32", "pickle", "weights-only", "devices", "manifest",
            "manifest-vs-pickle", "alignment",
        ])
        #expect(report.checks.allSatisfy { $0.status == .passed })
        #expect(report.torchLoad?.loadsWeightsOnly == true)
    }

    /// The weights-only check agrees with what torch.load(weights_only=True) did with each torch
    /// fixture (its sidecar): a warning exactly where torch refused (protocol 4 and 5).
    @Test(arguments: [
        "adagrad_groups", "adagrad_named", "model_tied", "dtypes", "shapes", "nested", "protocol2", "protocol4",
        "protocol5", "archive_deflated", "archive_renamed", "archive_minimal",
    ])
    func weightsOnlyMatchesTorch(name: String) throws {
        let sidecar = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("pt/\(name).expected.json")))
                as? [String: Any])
        let loadable = try #require(sidecar["weights_only_loadable"] as? Bool)
        let report = try CheckpointVerifier.verify(contentsOf: fixtures.appendingPathComponent("pt/\(name).pt"))
        #expect(report.passed)
        #expect(report.checks.first { $0.name == "weights-only" }?.status == (loadable ? .passed : .warning))
        #expect(report.torchLoad?.loadsWeightsOnly == loadable)
        if !loadable { #expect(report.torchLoad?.call?.hasPrefix("torch.load(f, weights_only=False)") == true) }
    }

    /// Objects torch refuses make a warning, not a failure, naming every global torch's own
    /// get_unsafe_globals_in_checkpoint names, with the key paths where they occur.
    @Test(arguments: ["namespace", "with_numpy", "whole_model", "python_objects"])
    func objectsNeedTrustButAreNotDamage(name: String) throws {
        let url = fixtures.appendingPathComponent("objects/\(name).pt")
        let sidecar = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("objects/\(name).expected.json")))
                as? [String: Any])
        let report = try CheckpointVerifier.verify(contentsOf: url)
        #expect(report.passed)
        #expect(report.hasWarnings && !report.passed(strict: true))
        let check = try #require(report.checks.first { $0.name == "weights-only" })
        #expect(check.status == .warning)
        let advice = try #require(report.torchLoad)
        let torchNames = try #require(sidecar["unsafe_globals"] as? [String])
        #expect(Set(advice.globals.map(\.name)) == Set(torchNames))
        #expect(check.failures.count == torchNames.count)
        #expect(check.failures.allSatisfy { $0.code == .forbiddenGlobal })
        #expect(advice.globals.allSatisfy { !$0.paths.isEmpty })
    }

    @Test func theTorchLoadCallFitsTheObjects() throws {
        func advice(_ name: String) throws -> TorchLoadAdvice {
            try #require(try CheckpointVerifier.verify(contentsOf: fixtures.appendingPathComponent("objects/\(name).pt")).torchLoad)
        }
        let numpy = try advice("with_numpy")
        #expect(numpy.globals.map(\.name) == [
            "numpy._core.multiarray.scalar", "numpy.dtype", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
        ])
        #expect(numpy.globals[1].paths.map(\.pathString) == ["np_scalar/args/0", "np_array/state/2", "best/args/0"])
        #expect(numpy.call == """
            import numpy._core.multiarray
            with torch.serialization.safe_globals([numpy._core.multiarray.scalar, numpy.dtype, \
            numpy._core.multiarray._reconstruct, numpy.ndarray, type(numpy.dtype('f8')), type(numpy.dtype('i8'))]):
                torch.load(f, weights_only=True)
            """)
        let namespace = try advice("namespace")
        #expect(namespace.globals.map(\.name) == ["argparse.Namespace"])
        #expect(namespace.globals[0].paths == [["args"]])
        #expect(namespace.call?.hasPrefix("import argparse\nwith torch.serialization.safe_globals([argparse.Namespace]):") == true)
        let objects = try advice("python_objects")
        #expect(objects.globals.first { $0.name == "collections.defaultdict" }?.blocker?.contains("items") == true)
        #expect(objects.call?.hasPrefix("torch.load(f, weights_only=False)  # only for a file you trust: ") == true)
    }

    /// A storage on another device adds `map_location="cpu"` to whatever call the globals need;
    /// `cpu` alone needs nothing.
    @Test func devicesAddMapLocationToTheCall() throws {
        let tree = try StateValue(contentsOf: fixtures.appendingPathComponent("objects/namespace.pt"))
        let plain = TorchLoadAdvice(tree: .dict(["w": .tensor(try Tensor([1] as [Float]))]), devices: ["cpu", "mps", "mps"])
        #expect(plain.devices == ["mps"])
        #expect(plain.loadsWeightsOnly)
        #expect(plain.call == #"torch.load(f, map_location="cpu")"#)
        #expect(TorchLoadAdvice(tree: .dict([:]), devices: ["cpu"]).call == nil)
        let globals = TorchLoadAdvice(tree: tree, devices: ["cuda:0"])
        #expect(globals.call?.hasSuffix(#"    torch.load(f, weights_only=True, map_location="cpu")"#) == true)
        let untrusted = TorchLoadAdvice(tree: tree, pickleProtocol: 4, devices: ["cuda:0"])
        #expect(untrusted.call?.hasPrefix(#"torch.load(f, weights_only=False, map_location="cpu")  # only for a file you trust"#) == true)
    }

    @Test func codeThatRunsOnLoadIsNeverSuggestedForSafeGlobals() throws {
        let path = scratchFile("exploit.pt")
        let tree: StateValue = [
            "w": .tensor(try Tensor([1] as [Float])),
            "x": .object(PickledObject(module: "posix", name: "system", construction: .reduce, args: ["echo pwned"])),
            "y": .object(PickledObject(module: "builtins", name: "eval", construction: .reduce, args: ["1"])),
        ]
        try tree.write(to: URL(fileURLWithPath: path), options: SaveOptions(durable: false, keepObjects: true))
        let report = try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: path))
        #expect(report.passed, "a file that would run code is not damaged; it needs trust")
        let advice = try #require(report.torchLoad)
        #expect(advice.globals.map(\.blocker) == ["runs code (module posix)", "runs code"])
        #expect(advice.call?.contains("weights_only=False") == true)
        #expect(advice.call?.contains("safe_globals") == false)
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
            try CheckpointVerifier.verify(contentsOf: URL(fileURLWithPath: fixtures.appendingPathComponent("pt/legacy_format.expected.json").path))
        }
    }

    /// torch's pre-1.6 format is read whole; damage is a failed check naming the storage.
    @Test func legacyFilesAreVerified() throws {
        let good = try CheckpointVerifier.verify(contentsOf: fixtures.appendingPathComponent("pt/legacy_training.pt"))
        #expect(good.format == .legacy)
        #expect(good.checks.map(\.name) == ["legacy", "weights-only"])
        #expect(good.passed(strict: true), "\(good.checks)")
        #expect(good.torchLoad?.loadsWeightsOnly == true)

        let bad = try CheckpointVerifier.verify(contentsOf: fixtures.appendingPathComponent("pt/legacy_bad_count_mismatch.pt"))
        #expect(!bad.passed)
        let failure = try #require(bad.checks.first?.failures.first)
        #expect(failure.code == .corrupt)
        #expect(failure.path?.hasPrefix("storage '0'") == true, "\(failure)")
        #expect(bad.checks.last?.status == .skipped)

        let protocol4 = try CheckpointVerifier.verify(contentsOf: fixtures.appendingPathComponent("pt/legacy_protocol4.pt"))
        #expect(protocol4.checks.last?.status == .warning, "torch's weights-only loader reads protocol 2 only")
        #expect(protocol4.passed && !protocol4.passed(strict: true))
    }
}
