import Foundation
import Testing
@testable import Checkpoint
import TestSupport

// Each cap of ResourceLimits: a hostile input built here that exceeds it fails with
// `.limitExceeded` naming the cap as a user sets it, and (where loading is meaningful) the same
// input loads once the cap is raised.

/// A raw deflate stream (fixed Huffman) that inflates to `count` zero bytes: a literal 0, then
/// length-258 distance-1 matches, 13 bits each, so about 160 times smaller than its output.
/// Written bit by bit here rather than by zlib, so the bomb does not depend on a compressor.
func zeroDeflateStream(_ count: Int) -> [UInt8] {
    precondition(count >= 1)
    var output: [UInt8] = []
    var buffer: UInt32 = 0
    var used: UInt32 = 0
    func bits(_ value: UInt32, _ width: UInt32) {
        buffer |= value << used
        used += width
        while used >= 8 {
            output.append(UInt8(buffer & 0xFF))
            buffer >>= 8
            used -= 8
        }
    }
    // Huffman codes go most significant bit first.
    func code(_ value: UInt32, _ width: UInt32) {
        var reversed: UInt32 = 0
        for bit in 0..<width { reversed |= ((value >> bit) & 1) << (width - 1 - bit) }
        bits(reversed, width)
    }
    func literal(_ byte: UInt32) { code(0x30 + byte, 8) }
    bits(1, 1)  // BFINAL
    bits(1, 2)  // fixed Huffman
    literal(0)
    var left = count - 1
    while left >= 258 {
        code(0xC5, 8)  // length code 285: 258 bytes
        code(0, 5)  // distance code 0: 1 byte back
        left -= 258
    }
    for _ in 0..<left { literal(0) }
    code(0, 7)  // end of block
    if used > 0 { output.append(UInt8(buffer & 0xFF)) }
    return output
}

private func expectLimit(
    _ name: ResourceLimits.Name, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    let error = #expect(throws: CheckpointError.self, sourceLocation: sourceLocation) { try body() }
    #expect(error?.code == .limitExceeded, "\(String(describing: error))", sourceLocation: sourceLocation)
    #expect(error?.message.contains("LoadOptions.limits.\(name.rawValue)") == true, "\(String(describing: error))", sourceLocation: sourceLocation)
}

/// The defaults with one cap set, not grown with the file: the counting tests check exact edges.
private func limits(_ name: ResourceLimits.Name, _ value: Int) -> ResourceLimits {
    var limits = ResourceLimits.default
    limits[name] = value
    limits.scalesWithFileSize = false
    return limits
}

private func options(_ name: ResourceLimits.Name, _ value: Int) -> LoadOptions {
    LoadOptions(limits: limits(name, value))
}

@Suite struct ResourceLimitsTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory(prefix: "ckpt-limits") }

    func save(_ bytes: [UInt8], as name: String) throws -> URL {
        let url = directory.url.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    func sample(_ name: String) throws -> (URL, StateValue) {
        let tree: StateValue = ["w": .tensor(try Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])), "step": 3, "lr": 0.5]
        let url = directory.url.appendingPathComponent(name)
        try tree.write(to: url, options: SaveOptions(durable: false))
        return (url, tree)
    }

    // MARK: Zip

    @Test func theZeroStreamInflatesToZeros() throws {
        var entry = RawEntry("a/x", zeroDeflateStream(100_000))
        entry.method = 8
        entry.crc = referenceCRC32([UInt8](repeating: 0, count: 100_000))
        entry.uncompressedSize = 100_000
        let reader = try ZipReader(path: try save(rawZip([entry]), as: "zeros.zip").path)
        #expect(try reader.contents(of: reader.requireEntry(named: "a/x")) == [UInt8](repeating: 0, count: 100_000))
    }

    /// One deflated entry inflating 40 MiB from about 250 KB: past the archive's size plus 32 MiB.
    @Test func aZipBombIsRefusedBeforeItInflates() throws {
        let size = 40 << 20
        var entry = RawEntry("archive/data/0", zeroDeflateStream(size))
        entry.method = 8
        entry.crc = referenceCRC32([UInt8](repeating: 0, count: 1))  // never checked: refused first
        entry.uncompressedSize = UInt32(size)
        let url = try save(rawZip([entry]), as: "bomb.zip")
        expectLimit(.maximumBytesBeyondFileSize) { _ = try ZipReader(path: url.path) }
        let raised = try ZipReader(path: url.path, limits: limits(.maximumBytesBeyondFileSize, 64 << 20))
        #expect(raised.entries[0].uncompressedSize == size)
    }

    /// Many central-directory entries over the same deflated bytes (Fifield's overlapping bomb):
    /// their declared total is refused before any local header is read; raised, the overlap is.
    @Test func anOverlappingEntryBombIsRefused() throws {
        let stream = zeroDeflateStream(1 << 20)
        var entries: [RawEntry] = []
        for number in 0..<64 {
            var entry = RawEntry("a/\(number)", number == 0 ? stream : [])
            entry.method = 8
            entry.uncompressedSize = 1 << 20
            entry.compressedSize = UInt32(stream.count)
            entry.localHeaderOffset = 0
            entries.append(entry)
        }
        let url = try save(rawZip(entries), as: "overlap.zip")
        expectLimit(.maximumBytesBeyondFileSize) { _ = try ZipReader(path: url.path) }
        let error = #expect(throws: CheckpointError.self) {
            _ = try ZipReader(path: url.path, limits: limits(.maximumBytesBeyondFileSize, 1 << 30))
        }
        #expect(error?.code == .corrupt)
    }

    @Test func zipEntries() throws {
        let (url, tree) = try sample("entries.pt")
        let count = try ZipReader(path: url.path).entries.count
        expectLimit(.maximumZipEntries) { _ = try StateValue(contentsOf: url, options: options(.maximumZipEntries, count - 1)) }
        #expect(try StateValue(contentsOf: url, options: options(.maximumZipEntries, count)) == tree)
    }

    @Test func pickleAndManifestBytes() throws {
        let (pt, tree) = try sample("small.pt")
        let pickle = try ZipReader(path: pt.path).requireEntry(named: "archive/data.pkl").uncompressedSize
        expectLimit(.maximumPickleBytes) { _ = try StateValue(contentsOf: pt, options: options(.maximumPickleBytes, pickle - 1)) }
        #expect(try StateValue(contentsOf: pt, options: options(.maximumPickleBytes, pickle)) == tree)

        let (ckpt, _) = try sample("small.ckpt")
        let manifest = try ZipReader(path: ckpt.path).requireEntry(named: "archive/manifest.json").uncompressedSize
        expectLimit(.maximumJSONBytes) { _ = try StateValue(contentsOf: ckpt, options: options(.maximumJSONBytes, manifest - 1)) }
        #expect(try StateValue(contentsOf: ckpt, options: options(.maximumJSONBytes, manifest)) == tree)
    }

    @Test func safetensorsHeaderBytes() throws {
        let (url, tree) = try sample("small.safetensors")
        let header = try Data(contentsOf: url).prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        expectLimit(.maximumJSONBytes) { _ = try StateValue(contentsOf: url, options: options(.maximumJSONBytes, header - 1)) }
        #expect(try StateValue(contentsOf: url, options: options(.maximumJSONBytes, header)) == tree)
    }

    /// A header declaring a tensor of 2^40 bytes in a file of a few hundred: refused by the
    /// offsets check (tensor data must lie in the file), never allocated.
    @Test func aSafetensorsHeaderDeclaringHugeTensorsIsRefused() throws {
        let json = #"{"w":{"dtype":"F32","shape":[262144,1048576],"data_offsets":[0,1099511627776]}}"#
        var bytes: [UInt8] = []
        bytes.put64(UInt64(json.utf8.count))
        bytes += Array(json.utf8) + [0, 0, 0, 0]
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: try save(bytes, as: "huge.safetensors")) }
        #expect(error?.code == .truncated)
    }

    /// Values of a JSON text as an independent parser counts them (keys are not values).
    static func jsonValueCount(_ bytes: some Sequence<UInt8>) throws -> Int {
        func count(_ value: Any) -> Int {
            if let object = value as? [String: Any] { return 1 + object.values.reduce(0) { $0 + count($1) } }
            if let array = value as? [Any] { return 1 + array.reduce(0) { $0 + count($1) } }
            return 1
        }
        return count(try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]))
    }

    @Test func jsonValuesOfAHeaderAManifestAndAnIndex() throws {
        // Tensors only: other values would add a `ckpt.tree` record, parsed (and capped) on its own.
        let tree: StateValue = ["w": .tensor(try Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])), "b": .tensor(try Tensor([5] as [Float], shape: [1]))]
        let st = directory.url.appendingPathComponent("values.safetensors")
        try tree.write(to: st, options: SaveOptions(durable: false))
        let data = try Data(contentsOf: st)
        let headerLength = data.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        let header = try Self.jsonValueCount(data.dropFirst(8).prefix(headerLength))
        expectLimit(.maximumJSONValues) { _ = try StateValue(contentsOf: st, options: options(.maximumJSONValues, header - 1)) }
        #expect(try StateValue(contentsOf: st, options: options(.maximumJSONValues, header)) == tree)

        let ckpt = directory.url.appendingPathComponent("values.ckpt")
        try tree.write(to: ckpt, options: SaveOptions(durable: false))
        let reader = try ZipReader(path: ckpt.path)
        let manifest = try Self.jsonValueCount(try reader.contents(of: try reader.requireEntry(named: "archive/manifest.json"), limit: .maximumJSONBytes))
        expectLimit(.maximumJSONValues) { _ = try StateValue(contentsOf: ckpt, options: options(.maximumJSONValues, manifest - 1)) }
        #expect(try StateValue(contentsOf: ckpt, options: options(.maximumJSONValues, manifest)) == tree)

        // 5 values: 3 objects and 2 strings.
        let index = #"{"metadata": {}, "weight_map": {"w": "values.safetensors", "b": "values.safetensors"}}"#
        let url = try save(Array(index.utf8), as: "values.safetensors.index.json")
        expectLimit(.maximumJSONValues) { _ = try ShardedCheckpoint(contentsOf: url, limits: limits(.maximumJSONValues, 4)) }
        _ = try ShardedCheckpoint(contentsOf: url, limits: limits(.maximumJSONValues, 5))
    }

    @Test func shardedIndexBytes() throws {
        _ = try sample("model-00001-of-00001.safetensors")
        let index = #"{"metadata": {}, "weight_map": {"w": "model-00001-of-00001.safetensors", "step": "model-00001-of-00001.safetensors", "lr": "model-00001-of-00001.safetensors"}}"#
        let url = try save(Array(index.utf8), as: "model.safetensors.index.json")
        expectLimit(.maximumJSONBytes) { _ = try ShardedCheckpoint(contentsOf: url, limits: limits(.maximumJSONBytes, index.utf8.count - 1)) }
        _ = try ShardedCheckpoint(contentsOf: url, limits: limits(.maximumJSONBytes, index.utf8.count))
    }

    // MARK: Pickle

    /// `proto 4, None, MEMOIZE × count, STOP`: one byte per memo entry.
    static func memoBomb(_ count: Int) -> [UInt8] {
        [0x80, 4, 0x4E] + [UInt8](repeating: 0x94, count: count) + [0x2E]
    }

    @Test func aMemoOfMillionsOfEntries() throws {
        let bytes = Self.memoBomb(2_000_000)
        expectLimit(.maximumMemoEntries) {
            _ = try Unpickler.load(bytes, limits: limits(.maximumMemoEntries, 1_000_000)) { _ in Storage(byteCount: 0) }
        }
        #expect(try Unpickler.load(bytes, limits: limits(.maximumMemoEntries, 2_000_000)) { _ in Storage(byteCount: 0) } == .none)
    }

    /// Sparse memo indices (LONG_BINPUT far apart) count too.
    @Test func sparseMemoIndicesCount() throws {
        var bytes: [UInt8] = [0x80, 2, 0x4E]
        for index in 0..<10 { bytes += [0x72] + withUnsafeBytes(of: UInt32(index * 1000 + 7).littleEndian, Array.init) }
        bytes.append(0x2E)
        expectLimit(.maximumMemoEntries) { _ = try Unpickler.load(bytes, limits: limits(.maximumMemoEntries, 9)) { _ in Storage(byteCount: 0) } }
        #expect(try Unpickler.load(bytes, limits: limits(.maximumMemoEntries, 10)) { _ in Storage(byteCount: 0) } == .none)
    }

    @Test func nestingDepth() throws {
        // ] × 50, then APPEND × 49: lists 50 deep.
        let bytes: [UInt8] = [0x80, 2] + [UInt8](repeating: 0x5D, count: 50) + [UInt8](repeating: 0x61, count: 49) + [0x2E]
        expectLimit(.maximumNestingDepth) {
            _ = try Unpickler.load(bytes, limits: limits(.maximumNestingDepth, 49)) { _ in Storage(byteCount: 0) }
        }
        _ = try Unpickler.load(bytes, limits: limits(.maximumNestingDepth, 50)) { _ in Storage(byteCount: 0) }
    }

    @Test func theNestingCeilingCannotBeRaised() throws {
        let (url, _) = try sample("depth.pt")
        let error = #expect(throws: CheckpointError.self) {
            _ = try StateValue(contentsOf: url, options: options(.maximumNestingDepth, ResourceLimits.nestingDepthCeiling + 1))
        }
        #expect(error?.code == .invalidArgument)
        #expect(ResourceLimits.unlimited.maximumNestingDepth == ResourceLimits.nestingDepthCeiling)
        #expect(try StateValue(contentsOf: url, options: LoadOptions(limits: .unlimited)) == (try StateValue(contentsOf: url)))
    }

    @Test func valuesPushedByThePickle() throws {
        // A list of 1,000 Nones: EMPTY_LIST MARK None × 1000 APPENDS; the list counts as 6 values.
        let bytes: [UInt8] = [0x80, 2, 0x5D, 0x28] + [UInt8](repeating: 0x4E, count: 1000) + [0x65, 0x2E]
        expectLimit(.maximumValues) { _ = try Unpickler.load(bytes, limits: limits(.maximumValues, 1005)) { _ in Storage(byteCount: 0) } }
        let loaded = try Unpickler.load(bytes, limits: limits(.maximumValues, 1006)) { _ in Storage(byteCount: 0) }
        #expect(loaded == .list([StateValue](repeating: .none, count: 1000)))
    }

    /// `levels` tuples, each of the one below twice: 2^(levels + 1) - 1 places from 5 bytes a level.
    static func sharedTuples(_ levels: Int) -> [UInt8] {
        var bytes: [UInt8] = [0x80, 2, 0x4E]
        for _ in 0..<levels { bytes += [0x71, 0, 0x68, 0, 0x86] }  // BINPUT 0, BINGET 0, TUPLE2
        return bytes + [0x2E]
    }

    /// Shared containers multiply in the tree without more input: 12 levels of `(x, x)` is 8,191
    /// places from 60 bytes, though the pickle pushes only 85 values (None, then a BINGET and a
    /// tuple counting 6 a level).
    @Test func valuesInTheTreeCountSharedContainersPerPlace() throws {
        let bytes = Self.sharedTuples(12)
        expectLimit(.maximumTreeValues) {
            _ = try Unpickler.load(bytes, limits: limits(.maximumTreeValues, (1 << 13) - 2)) { _ in Storage(byteCount: 0) }
        }
        _ = try Unpickler.load(bytes, limits: limits(.maximumTreeValues, (1 << 13) - 1)) { _ in Storage(byteCount: 0) }
        _ = try Unpickler.load(bytes, limits: limits(.maximumValues, 85)) { _ in Storage(byteCount: 0) }
    }

    /// A tensor takes a place for itself and one per dimension: `{"w": 30-dim tensor}` is 32.
    @Test func aTensorsDimensionsCountAsPlaces() throws {
        let tree: StateValue = ["w": .tensor(try Tensor([2] as [Float], shape: [Int](repeating: 1, count: 30)))]
        let url = directory.url.appendingPathComponent("dims.pt")
        try tree.write(to: url, options: SaveOptions(durable: false))
        expectLimit(.maximumTreeValues) { _ = try StateValue(contentsOf: url, options: options(.maximumTreeValues, 31)) }
        #expect(try StateValue(contentsOf: url, options: options(.maximumTreeValues, 32)) == tree)
    }

    /// The defaults refuse 22 levels (4 million places) and load 19 (a million), as make hostile measures.
    @Test func theDefaultTreeCapSitsBetweenNineteenAndTwentyTwoLevels() throws {
        expectLimit(.maximumTreeValues) { _ = try Unpickler.load(Self.sharedTuples(22)) { _ in Storage(byteCount: 0) } }
        _ = try Unpickler.load(Self.sharedTuples(19)) { _ in Storage(byteCount: 0) }
    }

    // MARK: DCP

    func dcp(_ name: String, ranks: Int) throws -> URL {
        let tree: StateValue = ["w": .tensor(try Tensor((0..<8).map(Float.init), shape: [4, 2])), "b": .tensor(try Tensor([1, 2] as [Float], shape: [2]))]
        let url = directory.url.appendingPathComponent(name)
        try DistributedCheckpoint.write(tree, to: url, ranks: ranks, options: SaveOptions(durable: false))
        return url
    }

    /// 64 ranks each holding a chunk of 129 tensors (8,256 chunks) load with the defaults: the fast
    /// `.metadata` decoder spends ~30 of its values a chunk, within its budget. The general pickle
    /// machine (~130 weighted values a chunk) would need `maximumValues` raised.
    @Test func aSixtyFourRankCheckpointOfOneHundredTwentyNineTensorsLoadsWithTheDefaults() throws {
        var items: [(StateKey, StateValue)] = []
        for index in 0..<129 { items.append((.string("layer\(index).weight"), .tensor(try Tensor([Float](repeating: Float(index), count: 64), shape: [64])))) }
        let tree = StateValue.dict(StateDict(items))
        let url = directory.url.appendingPathComponent("wide")
        try DistributedCheckpoint.write(tree, to: url, ranks: 64, options: SaveOptions(durable: false))
        let checkpoint = try DistributedCheckpoint(contentsOf: url)
        #expect(checkpoint.metadata.items.values.reduce(0) { count, item in
            if case .tensor(let tensor) = item { return count + tensor.chunks.count }
            return count
        } == 64 * 129)
        #expect(try StateValue(contentsOf: url) == tree)
        let metadata = try Data(contentsOf: url.appendingPathComponent(DistributedCheckpoint.metadataName))
        expectLimit(.maximumValues) {
            _ = try metadata.withUnsafeBytes { try DistributedCheckpoint.Metadata(generalPickle: $0, file: url.path) }
        }
    }

    @Test func dcpChunks() throws {
        let url = try dcp("chunks", ranks: 2)
        let expected = try StateValue(contentsOf: url)
        expectLimit(.maximumDCPChunksPerTensor) { _ = try StateValue(contentsOf: url, options: options(.maximumDCPChunksPerTensor, 1)) }
        expectLimit(.maximumDCPChunks) { _ = try StateValue(contentsOf: url, options: options(.maximumDCPChunks, 3)) }
        #expect(try StateValue(contentsOf: url, options: options(.maximumDCPChunks, 4)) == expected)
    }

    /// A `.metadata` whose tensor lists a million chunks (one chunk object, fetched from the memo a
    /// million times: 5 bytes each) is refused under the default caps, by the pushes before the
    /// chunks are decoded.
    @Test func aMetadataOfAMillionChunks() throws {
        let url = try dcp("million", ranks: 1)
        let metadataURL = url.appendingPathComponent(DistributedCheckpoint.metadataName)
        let original = try [UInt8](Data(contentsOf: metadataURL))
        try Data(Self.repeatingFirstChunk(original, times: 1_000_000)).write(to: metadataURL)
        expectLimit(.maximumValues) { _ = try DistributedCheckpoint(contentsOf: url) }
        // Raised, the chunks are read, and their overlap is what is wrong (fewer, to stay fast).
        try Data(Self.repeatingFirstChunk(original, times: 50_000)).write(to: metadataURL)
        expectLimit(.maximumDCPChunksPerTensor) { _ = try DistributedCheckpoint(contentsOf: url) }
        let error = #expect(throws: CheckpointError.self) {
            _ = try DistributedCheckpoint(contentsOf: url, limits: limits(.maximumDCPChunksPerTensor, 50_000))
        }
        #expect(error?.code == .corrupt)
    }

    /// The pickle with the first `ChunkStorageMetadata` object memoized and fetched `times - 1`
    /// more times into its list.
    static func repeatingFirstChunk(_ pickle: [UInt8], times: Int) -> [UInt8] {
        let global = Array("c\(DistributedCheckpoint.Metadata.module)\nChunkStorageMetadata\n".utf8)
        let start = (0...(pickle.count - global.count)).first { pickle[$0..<($0 + global.count)].elementsEqual(global) }!
        // The chunk ends with SETITEMS BUILD; APPENDS closes the list.
        let end = (start..<(pickle.count - 2)).first { pickle[$0] == 0x75 && pickle[$0 + 1] == 0x62 && pickle[$0 + 2] == 0x65 }! + 2
        let memoIndex = withUnsafeBytes(of: UInt32(0x7FFF_0000).littleEndian, Array.init)
        var repeated: [UInt8] = [0x72] + memoIndex  // LONG_BINPUT
        repeated.reserveCapacity(5 * times)
        for _ in 1..<times { repeated += [0x6A] + memoIndex }  // LONG_BINGET
        return Array(pickle[..<end]) + repeated + Array(pickle[end...])
    }

    /// Tensors assembled from chunks are allocated: a `.metadata` declaring a tensor far larger
    /// than the data files is refused when opened.
    @Test func dcpDeclaredBytesBeyondTheDataFiles() throws {
        let url = try dcp("declared", ranks: 1)
        let metadataURL = url.appendingPathComponent(DistributedCheckpoint.metadataName)
        var metadata = try DistributedCheckpoint(contentsOf: url).metadata
        guard case .tensor(var tensor)? = metadata.items["b"] else { Issue.record("no tensor b"); return }
        let huge = 1 << 24  // 64 MiB of float32
        tensor.shape = [huge]
        tensor.chunks = [DistributedCheckpoint.Chunk(offsets: [0], sizes: [huge], location: tensor.chunks[0].location)]
        metadata.items["b"] = .tensor(tensor)
        try Data(try metadata.pickled()).write(to: metadataURL)
        expectLimit(.maximumBytesBeyondFileSize) { _ = try DistributedCheckpoint(contentsOf: url) }
        _ = try DistributedCheckpoint(contentsOf: url, limits: limits(.maximumBytesBeyondFileSize, 128 << 20))
    }

    // MARK: Legacy

    @Test func legacyPicklesAreHeldToTheCaps() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/legacy")
        guard let name = try FileManager.default.contentsOfDirectory(atPath: fixtures.path).sorted().first(where: { $0.hasSuffix(".pt") }) else {
            Issue.record("no legacy fixture")
            return
        }
        let url = fixtures.appendingPathComponent(name)
        expectLimit(.maximumValues) { _ = try StateValue(contentsOf: url, options: options(.maximumValues, 1)) }
        _ = try StateValue(contentsOf: url)
    }

    // MARK: Growing with the file

    /// 8,000 one-element tensors: ~45 weighted values each, past the base `maximumValues`.
    func manyTensors(_ name: String, padding: Int) throws -> (URL, StateValue) {
        var items: [(StateKey, StateValue)] = try (0..<8000).map { (.string("t\($0)"), .tensor(try Tensor([Float($0)], shape: [1]))) }
        if padding > 0 { items.append(("padding", .tensor(try Tensor([UInt8](repeating: 7, count: padding), shape: [padding])))) }
        let tree = StateValue.dict(StateDict(items))
        let url = directory.url.appendingPathComponent(name)
        try tree.write(to: url, options: SaveOptions(durable: false))
        return (url, tree)
    }

    /// A small file of that structure is refused at the base; the error says how the cap was made.
    @Test func aSmallFileOfManyTensorsIsRefusedAtTheBase() throws {
        let (url, _) = try manyTensors("small.pt", padding: 0)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: url) }
        #expect(error?.code == .limitExceeded)
        let cap = (1 << 18) + size / 256
        #expect(error?.expected == "at most \(cap)")
        #expect(error?.message.contains("LoadOptions.limits.maximumValues: 262,144 + 1 per 256 bytes of the file's ") == true, "\(String(describing: error))")
        #expect(error?.message.contains(" = \(cap.formatted(.number.grouping(.automatic).locale(Locale(identifier: "en_US")))); ") == true, "\(String(describing: error))")
    }

    /// The same tensors in a file that carries 48 MiB of data load with the defaults, and not when
    /// the caps are held to their bases.
    @Test func aLargeFileOfManyTensorsLoadsWithTheDefaults() throws {
        let (url, tree) = try manyTensors("large.pt", padding: 48 << 20)
        #expect(try StateValue(contentsOf: url) == tree)
        var bases = ResourceLimits.default
        bases.scalesWithFileSize = false
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: url, options: LoadOptions(limits: bases)) }
        #expect(error?.message.contains("LoadOptions.limits.maximumValues: 262,144;") == true, "\(String(describing: error))")
    }

    @Test func effectiveCapsGrowPerByteAndSaturate() {
        let grown = ResourceLimits.default.effective(fileBytes: 300 << 20)
        #expect(grown.maximumValues == 262_144 + 1_228_800)
        #expect(grown.maximumMemoEntries == 524_288 + 2_457_600)
        #expect(grown.maximumTreeValues == 1_048_576 + 78_643_200)
        #expect(grown.maximumJSONValues == 1_048_576 + 1_228_800)
        #expect(grown.maximumDCPChunks == 131_072 + 76_800)
        #expect(grown.maximumPickleBytes == ResourceLimits.default.maximumPickleBytes)
        #expect(grown.maximumDCPChunksPerTensor == ResourceLimits.default.maximumDCPChunksPerTensor)
        #expect(grown.describe(.maximumValues) == "262,144 + 1 per 256 bytes of the file's 300.0 MiB = 1,490,944")
        #expect(grown.effective(fileBytes: 1 << 40) == grown)
        // A 100 MiB header of a 300 MiB file: only the other 200 MiB grow the JSON value cap.
        let header = grown.forDocument(ofBytes: 100 << 20)
        #expect(header.maximumJSONValues == 1_048_576 + 819_200)
        #expect(header.describe(.maximumJSONValues) == "1,048,576 + 1 per 256 bytes of the file's 300.0 MiB beyond its 100.0 MiB document = 1,867,776")
        #expect(ResourceLimits.unlimited.effective(fileBytes: 1 << 40) == .unlimited)
        var nearMax = ResourceLimits.default
        nearMax.maximumValues = .max - 1
        #expect(nearMax.effective(fileBytes: .max).maximumValues == .max)
    }

    // MARK: Errors

    @Test func theErrorNamesTheCapItsValueAndWhatWasFound() throws {
        let (url, _) = try sample("named.pt")
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: url, options: options(.maximumZipEntries, 2)) }
        #expect(error?.file == url.path)
        #expect(error?.expected == "at most 2")
        #expect(error?.found == "\(try ZipReader(path: url.path).entries.count)")
        #expect(error?.description.contains("--limit maximumZipEntries=") == true)
    }

    @Test func negativeCapsAreRefused() throws {
        let (url, _) = try sample("negative.pt")
        let error = #expect(throws: CheckpointError.self) { _ = try StateValue(contentsOf: url, options: options(.maximumValues, -1)) }
        #expect(error?.code == .invalidArgument)
    }
}
