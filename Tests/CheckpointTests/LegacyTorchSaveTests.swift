import Checkpoint
import Foundation
import Testing
import TestSupport

// torch.save's pre-1.6 format, beyond what the sidecar fixtures (scripts/make_legacy_fixtures.py,
// checked by FixtureTests) show: how storages are placed, detection, refusing to write, and damaged
// files never crashing.
struct LegacyTorchSaveTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures", isDirectory: true)

    static func fixture(_ path: String) -> URL { fixtures.appendingPathComponent(path) }

    static let files = ["pt/legacy_format.pt", "pt/legacy_dtypes.pt", "pt/legacy_training.pt", "pt/legacy_views_shared.pt"]

    /// Every storage handed out starts at a multiple of its element size (up to 8), whether it is
    /// a window into the file or a copy; and the fixtures exercise both.
    @Test func storagesAreMappedWhenAlignedAndCopiedOtherwise() throws {
        var mapped = 0
        var copied = 0
        for name in Self.files {
            let tree = try StateValue(contentsOf: Self.fixture(name))
            var seen = Set<ObjectIdentifier>()
            try tree.forEachTensor { path, tensor in
                guard seen.insert(ObjectIdentifier(tensor.storage)).inserted, tensor.storage.byteCount > 0 else { return }
                if tensor.storage.isMapped { mapped += 1 } else { copied += 1 }
                let address = try tensor.storage.withUnsafeBytes { Int(bitPattern: $0.baseAddress) }
                #expect(address % min(tensor.dtype.itemSize, 8) == 0, "\(name): \(path.pathString)")
            }
        }
        #expect(mapped > 0 && copied > 0, "mapped \(mapped), copied \(copied)")
    }

    @Test(arguments: ["pt/legacy_format.pt", "pt/legacy_protocol4.pt", "pt/legacy_storage_views.pt"])
    func detectedFromTheBytes(name: String) throws {
        #expect(try CheckpointFormat(contentsOf: Self.fixture(name)) == .legacy)
    }

    @Test func writingTheLegacyFormatIsRefused() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-legacy")
        let tree = try StateValue(contentsOf: Self.fixture("pt/legacy_format.pt"))
        let url = directory.url.appendingPathComponent("out.pt")
        let error = try #require(throws: CheckpointError.self) { try tree.write(to: url, format: .legacy) }
        #expect(error.code == .unsupported)
        #expect(!FileManager.default.fileExists(atPath: url.path))
    }

    /// torch before 0.4 wrote a tar archive; it is named, not mistaken for something else.
    @Test func theTarFormatIsNamed() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-legacy")
        var bytes = [UInt8](repeating: 0, count: 1024)
        bytes.replaceSubrange(0..<8, with: Array("storages".utf8))
        bytes.replaceSubrange(257..<263, with: Array("ustar\0".utf8))
        let url = directory.url.appendingPathComponent("old.pt")
        try Data(bytes).write(to: url)
        let error = try #require(throws: CheckpointError.self) { try StateValue(contentsOf: url) }
        #expect(error.code == .unsupported)
        #expect(error.message.contains("tar"))
    }

    /// A whole nn.Module saved in the legacy format: its class comes through a `('module', ...)`
    /// persistent id; the module is a placeholder whose tensors are torch's state_dict.
    @Test func aPickledModuleKeepsItsTensors() throws {
        let tree = try StateValue(contentsOf: Self.fixture("legacy/whole_model.pt"))
        let data = try Data(contentsOf: Self.fixture("legacy/whole_model.expected.json"))
        let sidecar = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        guard case .object(let module) = tree else {
            Issue.record("root is \(tree.pythonTypeName)")
            return
        }
        #expect(module.qualifiedName == sidecar["class"] as? String)
        let expected = try #require(sidecar["state_dict"] as? [[String: Any]])
        var found: [String] = []
        try tree.forEachTensor { _, tensor in
            found.append(try tensor.contiguousBytes().map { String(format: "%02x", $0) }.joined())
        }
        #expect(found == expected.map { $0["hex"] as? String ?? "" })
    }

    /// Cut at every length, a legacy file is an error (never a crash or a partial tree).
    @Test func truncatedAtEveryByteIsAnError() throws {
        let bytes = try [UInt8](Data(contentsOf: Self.fixture("pt/legacy_format.pt")))
        let directory = try TemporaryDirectory(prefix: "ckpt-legacy")
        let url = directory.url.appendingPathComponent("cut.pt")
        for length in 1..<bytes.count {
            try Data(bytes.prefix(length)).write(to: url)
            #expect(throws: CheckpointError.self, "cut to \(length) bytes") { try StateValue(contentsOf: url) }
        }
    }

    /// Random byte changes give an error or a tree, never a crash; a tree must stay readable.
    @Test func randomCorruptionsNeverCrash() throws {
        let original = try [UInt8](Data(contentsOf: Self.fixture("pt/legacy_training.pt")))
        let directory = try TemporaryDirectory(prefix: "ckpt-legacy")
        let url = directory.url.appendingPathComponent("bad.pt")
        var generator = SplitMix64(seed: 0x1e9a_c7)
        for _ in 0..<400 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            try Data(bytes).write(to: url)
            guard let tree = try? StateValue(contentsOf: url) else { continue }
            try tree.forEachTensor { _, tensor in _ = try tensor.contiguousBytes() }
        }
    }
}
