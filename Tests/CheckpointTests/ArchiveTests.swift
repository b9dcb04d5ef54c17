import Foundation
import OrderedCollections
import Testing
import TestSupport
@testable import Checkpoint

/// Round trips and hostile input for the ckpt/pt archive layer (TorchArchive, Manifest).
@Suite struct ArchiveTests {
    let directory: URL

    init() throws {
        directory = TemporaryDirectory.scoped(prefix: "ckpt-archive")
    }

    /// A tree exercising every value kind, shared storage, views and every dtype.
    static func sampleTree() throws -> StateValue {
        let weight = try Tensor((0..<12).map { Float($0) * 0.5 } as [Float], shape: [3, 4])
        let transposed = try Tensor(storage: weight.storage, dtype: .float32, shape: [4, 3], strides: [1, 4])
        let slice = try Tensor(storage: weight.storage, dtype: .float32, shape: [2], strides: [1], storageOffset: 5)
        var parameter = try Tensor([1.5, -2.25] as [Double])
        parameter.isParameter = true
        parameter.requiresGrad = true
        var model = StateDict(isOrderedDict: true)
        model["fc.weight"] = .tensor(weight)
        model["head.weight"] = .tensor(weight)
        model["fc.weight_t"] = .tensor(transposed)
        model["slice"] = .tensor(slice)
        model["param"] = .tensor(parameter)
        model.attributes["_metadata"] = .dict(StateDict(
            ["": .dict(["version": .int(1)]), "fc": .dict(["version": .int(2)])], isOrderedDict: true))
        var dtypes = StateDict()
        for dtype in DType.allCases {
            dtypes[.string(dtype.rawValue)] = .tensor(try Tensor(zeros: dtype, shape: [2, 3]))
        }
        let state: StateValue = .dict(StateDict([
            .int(0): .dict(["step": .tensor(try Tensor([Float(3)], shape: [])), "sum": .tensor(try Tensor(zeros: .float32, shape: [0, 3]))]),
        ]))
        return .dict([
            "model": .dict(model),
            "dtypes": .dict(dtypes),
            "optimizer": .dict(["state": state, "param_groups": .list([.dict([
                "lr": .float(0.01), "eps": .float(1e-10), "foreach": .none, "maximize": .bool(false),
                "params": .list([.int(0)]), "param_names": .list([.string("fc.weight")]),
            ])])]),
            "scalars": .tuple([.int(-7), .int(Int64.max), .float(-0.0), .float(.nan), .float(.infinity), .string("héllo\n\"q\""),
                               .bytes([0, 255, 10]), .bytearray([1, 2]), .none, .bool(true)]),
            "torch": .list([.size([2, 3]), .device("cpu"), .dtype(.bfloat16), .set([.int(1), .int(2)]),
                            .complex(real: 1.5, imaginary: -2)]),
        ])
    }

    @Test(arguments: ["ckpt", "pt"])
    func roundTripKeepsEverything(ext: String) throws {
        let tree = try Self.sampleTree()
        let url = directory.appendingPathComponent("tree.\(ext)")
        try tree.write(to: url)
        let loaded = try StateValue(contentsOf: url)
        #expect(loaded == tree)
        // Shared storage survives: fc.weight, head.weight, the transposed view and the slice share one blob.
        let model = try #require(loaded.value(atPath: "model"))
        var storages = Set<ObjectIdentifier>()
        for key in ["fc.weight", "head.weight", "fc.weight_t", "slice"] {
            guard case .tensor(let t)? = model[.string(key)] else { Issue.record("missing \(key)"); return }
            storages.insert(ObjectIdentifier(t.storage))
        }
        #expect(storages.count == 1)
        guard case .tensor(let t)? = model[.string("fc.weight_t")] else { return }
        #expect(t.strides == [1, 4])
    }

    @Test func ckptArchiveIsDeterministicAndAligned() throws {
        let tree = try Self.sampleTree()
        let a = directory.appendingPathComponent("a.ckpt")
        let b = directory.appendingPathComponent("other-name.ckpt")
        try tree.write(to: a)
        try StateValue(contentsOf: a).write(to: b)
        #expect(try Data(contentsOf: a) == Data(contentsOf: b))
        let reader = try ZipReader(path: a.path)
        #expect(reader.entries.map(\.name).prefix(4) == ["archive/data.pkl", "archive/.format_version", "archive/.storage_alignment", "archive/byteorder"])
        #expect(reader.entries.last?.name == "archive/version")
        #expect(reader.entry(named: "archive/manifest.json") != nil)
        for entry in reader.entries {
            #expect(entry.method == 0)
            #expect(entry.dataOffset % 64 == 0, "\(entry.name) at \(entry.dataOffset)")
        }
    }

    @Test func ptArchiveHasNoManifest() throws {
        let url = directory.appendingPathComponent("plain.pt")
        try Self.sampleTree().write(to: url)
        #expect(try ZipReader(path: url.path).entry(named: "archive/manifest.json") == nil)
    }

    /// Rewrites one entry of a saved .ckpt (same length) and returns the file's URL.
    func tamper(_ name: String, _ edit: (inout [UInt8]) -> Void) throws -> URL {
        let url = directory.appendingPathComponent("tampered-\(UUID().uuidString).ckpt")
        try Self.sampleTree().write(to: url)
        let reader = try ZipReader(path: url.path)
        let entry = try #require(reader.entry(named: name))
        var file = [UInt8](try Data(contentsOf: url))
        var bytes = Array(file[entry.dataOffset..<entry.dataOffset + entry.uncompressedSize])
        edit(&bytes)
        file.replaceSubrange(entry.dataOffset..<entry.dataOffset + entry.uncompressedSize, with: bytes)
        try Data(file).write(to: url)
        return url
    }

    @Test func corruptedBlobFailsOnFirstReadNamingTheEntry() throws {
        let url = try tamper("archive/data/0") { $0[0] ^= 0xFF }
        let loaded = try StateValue(contentsOf: url)
        guard case .tensor(let t)? = loaded.value(atPath: "model/fc.weight") else { Issue.record("no tensor"); return }
        let error = try #require(throws: CheckpointError.self) { _ = try t.contiguousBytes() }
        #expect(error.code == .checksumMismatch)
        #expect(error.path == "archive/data/0")
        #expect(error.description.contains(url.lastPathComponent))
        // Skipping verification is an explicit choice.
        let unchecked = try StateValue(contentsOf: url, options: LoadOptions(verifyChecksums: false))
        guard case .tensor(let u)? = unchecked.value(atPath: "model/fc.weight") else { return }
        #expect(try u.contiguousBytes().count == 48)
    }

    @Test func tamperedManifestIsRefusedByItsCRC() throws {
        let url = try tamper("archive/manifest.json") { bytes in
            let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\"float32\"", with: "\"float99\"")
            bytes = Array(text.utf8)
        }
        let error = try #require(throws: CheckpointError.self) { _ = try StateValue(contentsOf: url) }
        #expect(error.code == .checksumMismatch)
        #expect(error.path == "archive/manifest.json")
    }

    static let storageLine = #"{"key":"0","record":"archive/data/0","dtype":"float32","nbytes":16,"crc32":0,"offset":64}"#

    static func manifest(root: String, version: Int = 1, storages: String = storageLine) -> [UInt8] {
        Array(#"{"format":"ckpt","format_version":\#(version),"byteorder":"little","storages":[\#(storages)],"root":\#(root)}"#.utf8)
    }

    @Test(arguments: [
        (#"{"type":"Tensor","dtype":"float99","shape":[4],"strides":[1],"storage_offset":0,"storage":0,"requires_grad":false}"#, CheckpointError.Code.unknownDType, "root"),
        (#"{"type":"Tensor","dtype":"float32","shape":[4],"strides":[1],"storage_offset":0,"storage":3,"requires_grad":false}"#, .corrupt, "root"),
        (#"{"type":"Tensor","dtype":"float32","shape":[5],"strides":[1],"storage_offset":0,"storage":0,"requires_grad":false}"#, .outOfBounds, "root"),
        (#"{"type":"Tensor","dtype":"float32","shape":[4611686018427387904,4],"strides":[4,1],"storage_offset":0,"storage":0,"requires_grad":false}"#, .outOfBounds, "root"),
        (#"{"type":"dict","items":[["a",{"type":"int","value":1}],["b",{"type":"frobnicate"}]]}"#, .corrupt, "root"),
        (#"{"type":"dict","items":[["a",{"type":"int","value":1}],["a",{"type":"int","value":2}]]}"#, .corrupt, "root"),
        (#"{"type":"int","value":1.5}"#, .corrupt, "root"),
        (#"{"type":"int"#, .corrupt, ""),
    ])
    func badManifestsAreTypedErrors(root: String, code: CheckpointError.Code, pathPrefix: String) throws {
        let error = try #require(throws: CheckpointError.self) {
            _ = try Manifest.decode(Self.manifest(root: root), file: "f.ckpt", entry: "archive/manifest.json") { _ in
                Storage(byteCount: 16)
            }
        }
        #expect(error.code == code)
        #expect(error.file == "f.ckpt")
        #expect(error.path?.hasPrefix("archive/manifest.json") == true)
    }

    @Test func unknownManifestVersionIsUnsupported() throws {
        let error = try #require(throws: CheckpointError.self) {
            _ = try Manifest.decode(Self.manifest(root: #"{"type":"NoneType"}"#, version: 2), file: "f.ckpt", entry: "m") { _ in
                Storage(byteCount: 16)
            }
        }
        #expect(error.code == .unsupported)
    }

    @Test func manifestRoundTripsEveryNodeKind() throws {
        let tree = try Self.sampleTree()
        let storages = tree.storagesInOrder
        var index: [ObjectIdentifier: Int] = [:]
        var records: [Manifest.StorageRecord] = []
        for (i, storage) in storages.enumerated() {
            index[ObjectIdentifier(storage)] = i
            records.append(.init(key: "\(i)", record: "archive/data/\(i)", dtype: .uint8, byteCount: storage.byteCount, crc32: 0, dataOffset: 64 * i))
        }
        let text = try Manifest(storages: records, root: tree).encoded(storageIndex: index)
        let decoded = try Manifest.decode(Array(text.utf8), file: "f", entry: "m") { storages[Int($0.key)!] }
        #expect(decoded.manifest.root == tree)
        #expect(decoded.manifest.storages == records)
    }

    @Test func failedSaveLeavesThePreviousFileAndNoTempFile() throws {
        let url = directory.appendingPathComponent("keep.ckpt")
        try StateValue.dict(["a": .int(1)]).write(to: url)
        let before = try Data(contentsOf: url)
        // A storage whose lazy CRC check fails makes the save throw midway through the blobs.
        let bad = try tamper("archive/data/0") { $0[0] ^= 0xFF }
        let tree = try StateValue(contentsOf: bad)
        #expect(throws: CheckpointError.self) { try tree.write(to: url) }
        #expect(try Data(contentsOf: url) == before)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains("keep") }
        #expect(leftovers == ["keep.ckpt"])
    }

    @Test func unknownExtensionIsAnError() throws {
        let error = try #require(throws: CheckpointError.self) {
            try StateValue.none.write(to: directory.appendingPathComponent("x.weird"))
        }
        #expect(error.code == .invalidArgument)
    }

    @Test(arguments: [
        ([UInt8](), CheckpointError.Code.truncated),
        (Array("hello world, not a checkpoint".utf8), .notRecognized),
        // torch's pre-1.6 format, cut after its magic number.
        ([0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E], .truncated),
    ])
    func unrecognizedFilesAreTypedErrors(bytes: [UInt8], code: CheckpointError.Code) throws {
        let url = directory.appendingPathComponent("bad-\(UUID().uuidString).pt")
        try Data(bytes).write(to: url)
        let error = try #require(throws: CheckpointError.self) { _ = try StateValue(contentsOf: url) }
        #expect(error.code == code)
        #expect(error.file == url.path)
    }
}

extension ArchiveTests {
    @Test func verifyChecksumsChecksEveryStorageUpFront() throws {
        let url = try tamper("archive/data/3") { $0[$0.count - 1] ^= 1 }
        let loaded = try StateValue(contentsOf: url)
        let error = try #require(throws: CheckpointError.self) { try loaded.verifyChecksums() }
        #expect(error.code == .checksumMismatch)
        #expect(error.path == "archive/data/3")
        let good = directory.appendingPathComponent("good.ckpt")
        try Self.sampleTree().write(to: good)
        let fine = try StateValue(contentsOf: good)
        try fine.verifyChecksums()
        let unverified = fine.storagesInOrder.filter { !$0.isVerified }
        #expect(unverified.isEmpty)
    }
}

extension ArchiveTests {
    @Test func replacingAFileLeavesOnlyTheNewVersionAndKeepsOpenReadersWhole() throws {
        let url = directory.appendingPathComponent("replace.ckpt")
        try StateValue.dict(["version": .int(1)]).write(to: url)
        let reader = try FileHandle(forReadingFrom: url)
        let oldBytes = try Data(contentsOf: url)
        try StateValue.dict(["version": .int(2)]).write(to: url)
        #expect(try StateValue(contentsOf: url) == .dict(["version": .int(2)]))
        // A reader that opened the old version still sees it whole.
        #expect(try reader.readToEnd() == oldBytes)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains("replace") }
        #expect(names == ["replace.ckpt"])
    }
}
