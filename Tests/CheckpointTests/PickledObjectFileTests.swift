import Checkpoint
import Foundation
import Testing
import TestSupport

// Placeholders through the file API: torch.save files holding Python objects (made by
// scripts/make_pickle_fixtures.py into Tests/Fixtures/objects), and writing placeholders back.
struct PickledObjectFileTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/objects", isDirectory: true)

    static let names = ["namespace", "with_numpy", "whole_model", "python_objects"]

    static func sidecar(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("\(name).expected.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Every tensor torch saved is read at the key path the sidecar gives, with torch's bytes.
    @Test(arguments: names)
    func tensorsBesideAndInsideObjectsAreRead(name: String) throws {
        let tree = try StateValue(contentsOf: Self.fixtures.appendingPathComponent("\(name).pt"))
        let expected = try #require(try Self.sidecar(name)["tensors"] as? [String: [String: Any]])
        var seen: [String] = []
        try tree.forEachTensor { path, tensor in
            seen.append(path.pathString)
            let spec = try #require(expected[path.pathString], "\(path.pathString) is not in the sidecar")
            #expect(tensor.dtype.rawValue == spec["dtype"] as? String)
            #expect(tensor.shape == spec["shape"] as? [Int])
            let hex = try tensor.contiguousBytes().map { String(format: "%02x", $0) }.joined()
            #expect(hex == spec["hex"] as? String, "\(path.pathString)")
        }
        #expect(Set(seen) == Set(expected.keys))
    }

    /// The globals torch's own get_unsafe_globals_in_checkpoint lists are the placeholders' globals
    /// that are not on its allow-list.
    @Test(arguments: names)
    func placeholdersNameTheGlobalsTorchRefuses(name: String) throws {
        let tree = try StateValue(contentsOf: Self.fixtures.appendingPathComponent("\(name).pt"))
        let torchList = try #require(try Self.sidecar(name)["unsafe_globals"] as? [String])
        var names = Set<String>()
        tree.forEachObject { _, object in
            let module = object.module == "__builtin__" ? "builtins" : object.module
            if !["collections.OrderedDict"].contains(object.qualifiedName) { names.insert("\(module).\(object.name)") }
        }
        #expect(names == Set(torchList))
    }

    @Test func writingObjectsNeedsKeepObjectsAndThenRoundTrips() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-objects")
        let tree = try StateValue(contentsOf: Self.fixtures.appendingPathComponent("with_numpy.pt"))
        for format in [CheckpointFormat.pt, .ckpt] {
            let url = directory.url.appendingPathComponent("out.\(format.rawValue)")
            let error = try #require(throws: CheckpointError.self) {
                try tree.write(to: url, options: SaveOptions(durable: false))
            }
            #expect(error.code == .forbiddenGlobal)
            #expect(error.path == "np_scalar", "the first object in tree order")
            #expect(error.found == "numpy._core.multiarray.scalar")
            #expect(error.file == url.path)
            #expect(!FileManager.default.fileExists(atPath: url.path), "nothing written")
            try tree.write(to: url, options: SaveOptions(durable: false, keepObjects: true))
            #expect(try StateValue(contentsOf: url) == tree, "\(format)")
        }
    }

    /// A `collections.Counter` (MultiStepLR's milestones) is on torch's weights-only allow-list, so
    /// it is written without keepObjects (SchedulerStateTests has torch read one back); an object
    /// off the list inside it is still refused, at its own key path.
    @Test func objectsOnTorchsAllowListNeedNoKeepObjects() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-objects")
        let counter = PickledObject(module: "collections", name: "Counter", construction: .reduce, args: [[30: 1, 80: 2]])
        let tree: StateValue = ["milestones": .object(counter), "gamma": 0.1]
        let namespace = PickledObject(module: "argparse", name: "Namespace", construction: .newObject, state: ["lr": 0.1])
        let wrapped: StateValue = ["milestones": .object(PickledObject(
            module: "collections", name: "Counter", construction: .reduce, args: [.object(namespace)]))]
        for format in [CheckpointFormat.pt, .ckpt] {
            let url = directory.url.appendingPathComponent("counter.\(format.rawValue)")
            try tree.write(to: url, options: SaveOptions(durable: false))
            #expect(try StateValue(contentsOf: url) == tree, "\(format)")
            let error = try #require(throws: CheckpointError.self) {
                try wrapped.write(to: directory.url.appendingPathComponent("wrapped.\(format.rawValue)"), options: SaveOptions(durable: false))
            }
            #expect(error.code == .forbiddenGlobal && error.path == "milestones/args/0" && error.found == "argparse.Namespace")
        }
    }

    /// Every part (arguments, keywords, items, state), through the pickle and through the manifest.
    @Test(arguments: names)
    func everyPartRoundTripsThroughPtAndCkpt(name: String) throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-objects")
        let tree: StateValue = [
            "file": try StateValue(contentsOf: Self.fixtures.appendingPathComponent("\(name).pt")),
            "extra": .object(PickledObject(
                module: "mylib", name: "Bag", construction: .newObject, args: [1], kwargs: ["k": [2]],
                state: .tuple([.none, ["slot": 3]]), listItems: ["x"], dictItems: [4: "y"])),
        ]
        for format in [CheckpointFormat.pt, .ckpt] {
            let url = directory.url.appendingPathComponent("out.\(format.rawValue)")
            try tree.write(to: url, options: SaveOptions(durable: false, keepObjects: true))
            #expect(try StateValue(contentsOf: url) == tree, "\(name).\(format)")
        }
    }

    /// A .ckpt's manifest describes objects as object nodes, so reading it (manifest first) gives them back.
    @Test func theManifestDescribesObjects() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-objects")
        let url = directory.url.appendingPathComponent("model.ckpt")
        let tree = try StateValue(contentsOf: Self.fixtures.appendingPathComponent("whole_model.pt"))
        try tree.write(to: url, options: SaveOptions(durable: false, keepObjects: true))
        let reader = try ZipReader(path: url.path)
        let entry = try #require(reader.entries.first { $0.name.hasSuffix("manifest.json") })
        let manifest = String(decoding: try reader.contents(of: entry), as: UTF8.self)
        #expect(manifest.contains(#""type":"object","module":"torch.nn.modules.container","name":"Sequential","construction":"newobj""#))
        #expect(try StateValue(contentsOf: url) == tree)
    }

    @Test func safetensorsAndManifestMetadataRefuseObjects() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-objects")
        let tree: StateValue = [
            "w": .tensor(try Tensor([1] as [Float])), "args": .object(PickledObject(module: "argparse", name: "Namespace")),
        ]
        for options in [SaveOptions(durable: false), SaveOptions(durable: false, keepObjects: true)] {
            let error = try #require(throws: CheckpointError.self) {
                try tree.write(to: directory.url.appendingPathComponent("a.safetensors"), options: options)
            }
            #expect(error.code == .unsupported)
            #expect(error.path == "args")
            #expect(error.found == "argparse.Namespace")
        }
        let metadata: StateValue = ["args": .object(PickledObject(module: "argparse", name: "Namespace"))]
        let error = try #require(throws: CheckpointError.self) {
            try StateValue.dict(["w": .tensor(try Tensor([1] as [Float]))]).write(
                to: directory.url.appendingPathComponent("m.ckpt"),
                options: SaveOptions(durable: false, metadata: metadata, keepObjects: true))
        }
        #expect(error.code == .unsupported)
    }
}
