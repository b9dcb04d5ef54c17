import Checkpoint
import Foundation
import Testing
import TestSupport

// The file API through the public library only: one URL-based spelling for every format.
struct StateValueFilesTests {
    @Test(arguments: [("a.ckpt", CheckpointFormat.pt), ("a.pt", .pt), ("a.safetensors", .safetensors)])
    func formatIsDetectedFromTheBytesNotTheName(name: String, detected: CheckpointFormat) throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-files")
        let url = directory.url.appendingPathComponent(name)
        let tree: StateValue = ["w": .tensor(try Tensor([Float(1), 2], shape: [2]))]
        try tree.write(to: url, options: SaveOptions(durable: false))
        #expect(try CheckpointFormat(contentsOf: url) == detected)
        let renamed = directory.url.appendingPathComponent("renamed.bin")
        try FileManager.default.moveItem(at: url, to: renamed)
        #expect(try StateValue(contentsOf: renamed) == tree)
    }

    @Test func aFileThatIsNoCheckpointIsNamedInTheError() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-files")
        let url = directory.url.appendingPathComponent("notes.txt")
        try Data("hello, world".utf8).write(to: url)
        let error = try #require(throws: CheckpointError.self) { try CheckpointFormat(contentsOf: url) }
        #expect(error.code == .notRecognized)
        #expect(error.file == url.path)
    }

    @Test func safetensorsMetadataKeepsItsOrder() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-files")
        let url = directory.url.appendingPathComponent("m.safetensors")
        let tree: StateValue = ["w": .tensor(try Tensor([Float(1)], shape: [1]))]
        try Safetensors.write(tree, to: url, metadata: ["z": "1", "a": "2"], options: SaveOptions(durable: false))
        #expect(try Safetensors.metadata(contentsOf: url) == ["z": "1", "a": "2"])
        #expect(try Safetensors.metadata(contentsOf: url).keys == ["z", "a"])
        #expect(try Safetensors.metadata(contentsOf: url) != ["a": "2", "z": "1"], "order counts")
        #expect(try Safetensors.read(contentsOf: url) == tree)
    }

    @available(*, deprecated)
    @Test func theDeprecatedSpellingsStillWork() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-files")
        let url = directory.url.appendingPathComponent("old.ckpt")
        let tree: StateValue = ["epoch": 1]
        try Checkpoint.save(tree, to: url, options: SaveOptions(durable: false))
        #expect(try Checkpoint.load(contentsOf: url) == tree)
        try Safetensors.write(tree, to: directory.path("old.safetensors"), sync: false, metadata: ["k": "v"])
        #expect(try Safetensors.read(path: directory.path("old.safetensors")) == tree)
        #expect(try Safetensors.metadata(path: directory.path("old.safetensors"))["k"] == "v")
    }
}
