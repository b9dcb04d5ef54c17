import Checkpoint
import Foundation
import TestSupport
import Testing

/// The optional `metadata` member of a ckpt manifest (docs/FORMAT.md).
@Suite struct ManifestMetadataTests {
    static let metadata: StateValue = [
        "catalog": ["run": "main", "step": 100, "metrics": ["loss": 0.25, "nan": .float(.nan)]],
        "note": "hello",
    ]

    static func tree() throws -> StateValue {
        ["model": ["w": .tensor(try Tensor([Float(1), 2, 3, 4], shape: [2, 2]))], "step": 100]
    }

    @Test func roundTripsWithoutTouchingTensors() throws {
        let directory = try TemporaryDirectory()
        let url = URL(fileURLWithPath: directory.path("a.ckpt"))
        try Self.tree().write(to: url, options: SaveOptions(metadata: Self.metadata))
        let read = try #require(try StateValue.metadata(contentsOf: url))
        // NaN != NaN, so compare the bits of the NaN and the rest by value.
        guard case .dict(let top) = read, case .dict(let catalog)? = top["catalog"], case .dict(let metrics)? = catalog["metrics"],
            case .float(let nan)? = metrics["nan"]
        else { Issue.record("unexpected shape \(read)"); return }
        #expect(nan.bitPattern == Double.nan.bitPattern)
        #expect(metrics["loss"] == .float(0.25))
        #expect(catalog["step"] == .int(100))
        #expect(top["note"] == .string("hello"))
        // The tree loads as before and the whole file verifies.
        #expect(try StateValue(contentsOf: url) == (try Self.tree()))
        try StateValue(contentsOf: url).verifyChecksums()
    }

    @Test func absentMetadataIsNil() throws {
        let directory = try TemporaryDirectory()
        let ckpt = URL(fileURLWithPath: directory.path("a.ckpt"))
        let pt = URL(fileURLWithPath: directory.path("a.pt"))
        let safetensors = URL(fileURLWithPath: directory.path("a.safetensors"))
        try Self.tree().write(to: ckpt)
        try Self.tree().write(to: pt)
        try StateValue.dict(["w": .tensor(try Tensor([Float(1)]))]).write(to: safetensors)
        #expect(try StateValue.metadata(contentsOf: ckpt) == nil)
        #expect(try StateValue.metadata(contentsOf: pt) == nil)
        #expect(try StateValue.metadata(contentsOf: safetensors) == nil)
    }

    @Test func metadataOnlyInCkptAndWithoutTensors() throws {
        let directory = try TemporaryDirectory()
        let error = #expect(throws: CheckpointError.self) {
            try Self.tree().write(to: URL(fileURLWithPath: directory.path("a.pt")), options: SaveOptions(metadata: ["a": 1]))
        }
        #expect(error?.code == .invalidArgument)
        let tensor = #expect(throws: CheckpointError.self) {
            try Self.tree().write(to: URL(fileURLWithPath: directory.path("b.ckpt")),
                options: SaveOptions(metadata: ["t": .tensor(try Tensor([Float(1)]))]))
        }
        #expect(tensor?.code == .invalidArgument)
        #expect(tensor?.path == "metadata:t")
        #expect(!FileManager.default.fileExists(atPath: directory.path("b.ckpt")))
    }

    @Test func notACheckpointIsAnError() throws {
        let directory = try TemporaryDirectory()
        let url = URL(fileURLWithPath: directory.path("x.ckpt"))
        try Data("not a checkpoint at all".utf8).write(to: url)
        #expect(throws: CheckpointError.self) { try StateValue.metadata(contentsOf: url) }
    }

    /// A reader that knows nothing of `metadata` (Python's standard library, as docs/FORMAT.md
    /// shows) reads the file, and torch.load opens it when the torch venv is there.
    @Test func otherReadersIgnoreMetadata() throws {
        let directory = try TemporaryDirectory()
        let url = URL(fileURLWithPath: directory.path("a.ckpt"))
        try Self.tree().write(to: url, options: SaveOptions(metadata: Self.metadata))
        let script = """
            import json, sys, zipfile
            z = zipfile.ZipFile(sys.argv[1])
            m = json.loads(z.read("archive/manifest.json"))
            blobs = [z.read(s["record"]) for s in m["storages"]]
            assert m["format_version"] == 1 and len(blobs) == 1 and len(blobs[0]) == 16
            try:
                import torch
            except ImportError:
                print("ok (no torch)"); sys.exit(0)
            t = torch.load(sys.argv[1], weights_only=True)
            assert t["model"]["w"].tolist() == [[1.0, 2.0], [3.0, 4.0]] and t["step"] == 100
            print("ok (torch)")
            """
        for python in [TorchVenv.python?.path, "/usr/bin/python3"].compactMap({ $0 }) where FileManager.default.isExecutableFile(atPath: python) {
            let result = try ProcessOutput(running: URL(fileURLWithPath: python), ["-c", script, url.path])
            #expect(result.status == 0, "\(python): \(result.output)")
        }
    }
}
