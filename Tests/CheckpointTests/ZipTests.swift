import Foundation
import Testing
@testable import Checkpoint
import TestSupport

// MARK: Independent helpers (no ckpt code): a bitwise CRC, a raw zip builder, byte patching.

/// Bit-at-a-time CRC-32 straight from the polynomial, to check libdeflate's folded version.
func referenceCRC32(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt32 {
    var crc = ~initial
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

extension Array where Element == UInt8 {
    mutating func put16(_ value: UInt16) { append(contentsOf: [UInt8(value & 0xFF), UInt8(value >> 8)]) }
    mutating func put32(_ value: UInt32) { for shift in [0, 8, 16, 24] { append(UInt8((value >> UInt32(shift)) & 0xFF)) } }
    mutating func put64(_ value: UInt64) { for shift in stride(from: 0, to: 64, by: 8) { append(UInt8((value >> UInt64(shift)) & 0xFF)) } }
    mutating func patch16(at offset: Int, _ value: UInt16) {
        self[offset] = UInt8(value & 0xFF)
        self[offset + 1] = UInt8(value >> 8)
    }
    mutating func patch32(at offset: Int, _ value: UInt32) {
        for index in 0..<4 { self[offset + index] = UInt8((value >> UInt32(8 * index)) & 0xFF) }
    }
    mutating func patch64(at offset: Int, _ value: UInt64) {
        for index in 0..<8 { self[offset + index] = UInt8((value >> UInt64(8 * index)) & 0xFF) }
    }
    func read16(at offset: Int) -> Int { Int(self[offset]) | Int(self[offset + 1]) << 8 }
    func read32(at offset: Int) -> Int { (0..<4).reduce(0) { $0 | Int(self[offset + $1]) << (8 * $1) } }
}

/// One entry for ``rawZip(_:comment:trailing:)``: every field a hostile archive might lie about.
struct RawEntry {
    var name: [UInt8]
    var data: [UInt8]
    var localName: [UInt8]? = nil
    var method: UInt16 = 0
    var flags: UInt16 = 0
    var crc: UInt32? = nil
    var uncompressedSize: UInt32? = nil
    var compressedSize: UInt32? = nil
    var localHeaderOffset: UInt32? = nil

    init(_ name: String, _ data: [UInt8]) {
        self.name = Array(name.utf8)
        self.data = data
    }
}

/// A minimal zip writer written independently of ckpt's, so hostile archives do not depend on
/// the code under test.
func rawZip(_ entries: [RawEntry], comment: [UInt8] = [], trailing: [UInt8] = [], totalEntries: UInt16? = nil, disk: UInt16 = 0) -> [UInt8] {
    var file: [UInt8] = []
    var central: [UInt8] = []
    for entry in entries {
        let offset = UInt32(file.count)
        let crc = entry.crc ?? referenceCRC32(entry.data)
        let compressed = entry.compressedSize ?? UInt32(entry.data.count)
        let uncompressed = entry.uncompressedSize ?? UInt32(entry.data.count)
        let localName = entry.localName ?? entry.name
        file.put32(0x0403_4b50); file.put16(20); file.put16(entry.flags); file.put16(entry.method)
        file.put16(0); file.put16(0x21); file.put32(crc); file.put32(compressed); file.put32(uncompressed)
        file.put16(UInt16(localName.count)); file.put16(0)
        file.append(contentsOf: localName)
        file.append(contentsOf: entry.data)
        central.put32(0x0201_4b50); central.put16(20); central.put16(20); central.put16(entry.flags); central.put16(entry.method)
        central.put16(0); central.put16(0x21); central.put32(crc); central.put32(compressed); central.put32(uncompressed)
        central.put16(UInt16(entry.name.count)); central.put16(0); central.put16(0); central.put16(0); central.put16(0)
        central.put32(0); central.put32(entry.localHeaderOffset ?? offset)
        central.append(contentsOf: entry.name)
    }
    let centralOffset = UInt32(file.count)
    file.append(contentsOf: central)
    file.put32(0x0605_4b50); file.put16(disk); file.put16(0)
    file.put16(totalEntries ?? UInt16(entries.count)); file.put16(totalEntries ?? UInt16(entries.count))
    file.put32(UInt32(central.count)); file.put32(centralOffset); file.put16(UInt16(comment.count))
    file.append(contentsOf: comment)
    file.append(contentsOf: trailing)
    return file
}

/// A single deflate "stored" block: a valid raw deflate stream built without a compressor.
func storedDeflateStream(_ data: [UInt8]) -> [UInt8] {
    precondition(data.count <= 0xFFFF)
    var stream: [UInt8] = [0x01]
    stream.put16(UInt16(data.count))
    stream.put16(~UInt16(data.count))
    return stream + data
}

/// Offsets of the central directory entries, read from the end record of an archive without a
/// comment (what ``rawZip`` and ``ZipWriter`` produce).
func centralEntryOffsets(_ bytes: [UInt8]) -> [Int] {
    let end = bytes.count - 22
    var cursor = bytes.read32(at: end + 16)
    let count = bytes.read16(at: end + 10)
    var offsets: [Int] = []
    for _ in 0..<count {
        offsets.append(cursor)
        cursor += 46 + bytes.read16(at: cursor + 28) + bytes.read16(at: cursor + 30) + bytes.read16(at: cursor + 32)
    }
    return offsets
}

/// Runs `python3 -c script args...`; python3 is on every supported machine, and a missing one
/// fails the test rather than skipping it.
func runPython(_ script: String, _ arguments: [String] = []) throws -> (status: Int32, output: String) {
    let result = try ProcessOutput(running: URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script] + arguments)
    return (result.status, result.output)
}

/// Deterministic bytes free of zip signatures, so truncated prefixes never contain a stray end record.
func patternBytes(_ count: Int, seed: Int = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 7 &+ seed) % 61 + 100) }
}

// MARK: Tests

@Suite struct ZipTests {
    let directory: URL

    init() throws {
        directory = TemporaryDirectory.scoped(prefix: "ckpt-zip")
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func save(_ bytes: [UInt8], as name: String) throws -> String {
        let target = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: target))
        return target
    }

    func open(_ bytes: [UInt8], as name: String = "archive.zip") throws -> ZipReader {
        try ZipReader(path: save(bytes, as: name))
    }

    static let sampleEntries: [(String, [UInt8])] = [
        ("archive/data.pkl", patternBytes(100)),
        ("archive/.format_version", Array("1".utf8)),
        ("archive/empty", []),
        ("archive/data/0", patternBytes(64, seed: 1)),
        ("archive/data/1", patternBytes(65, seed: 2)),
        ("archive/data/2", patternBytes(100_000, seed: 3)),
        ("archive/naïve ☃", patternBytes(3, seed: 4)),
        ("archive/version", Array("3\n".utf8)),
    ]

    @discardableResult
    func writeArchive(
        _ entries: [(String, [UInt8])] = sampleEntries, forceZip64: Bool = false, alignment: Int = 64,
        startsWriteback: Bool = false, as name: String = "written.zip"
    ) throws -> (path: String, bytes: [UInt8], results: [(crc32: UInt32, dataOffset: Int)]) {
        let target = path(name)
        var results: [(crc32: UInt32, dataOffset: Int)] = []
        try DurableFile.write(to: target, sync: false) { fd in
            let writer = ZipWriter(fileDescriptor: fd, path: target, forceZip64: forceZip64)
            writer.startsWriteback = startsWriteback
            for (entryName, bytes) in entries {
                results.append(try bytes.withUnsafeBytes { try writer.addEntry(name: entryName, bytes: $0, alignment: alignment) })
            }
            try writer.finish()
        }
        return (target, Array(try Data(contentsOf: URL(fileURLWithPath: target))), results)
    }

    func expectCode(_ code: CheckpointError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
        let error = #expect(throws: CheckpointError.self, sourceLocation: sourceLocation) { try body() }
        #expect(error?.code == code, "\(String(describing: error))", sourceLocation: sourceLocation)
    }

    // MARK: CRC-32

    @Test func crcMatchesTheStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([]) == 0)
    }

    @Test(arguments: [1, 15, 16, 63, 64, 1000, 65_537])
    func crcMatchesBitwiseReference(count: Int) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(CRC32.checksum(bytes) == referenceCRC32(bytes))
        let split = count / 3
        let head = CRC32.checksum(Array(bytes[..<split]))
        let chained = bytes[split...].withUnsafeBytes { CRC32.checksum($0, initial: head) }
        #expect(chained == referenceCRC32(bytes))
        // Pieces checksummed apart and joined, as parallel readers do.
        let tail = bytes[split...].withUnsafeBytes { CRC32.checksum($0) }
        #expect(CRC32.combine(head, tail, secondCount: count - split) == referenceCRC32(bytes))
        #expect(CRC32.combine(CRC32.checksum(bytes), 0, secondCount: 0) == referenceCRC32(bytes))
        #expect(CRC32.combine(0, CRC32.checksum(bytes), secondCount: count) == referenceCRC32(bytes))
    }

    // MARK: Round trips

    @Test(arguments: [false, true])
    func roundTrip(forceZip64: Bool) throws {
        let (target, bytes, results) = try writeArchive(forceZip64: forceZip64)
        let reader = try ZipReader(path: target)
        #expect(reader.entries.map(\.name) == Self.sampleEntries.map(\.0))
        for ((name, data), result) in zip(Self.sampleEntries, results) {
            let entry = try #require(reader.entry(named: name))
            #expect(entry.method == 0)
            #expect(entry.uncompressedSize == data.count && entry.compressedSize == data.count)
            #expect(entry.crc32 == referenceCRC32(data))
            #expect(result.crc32 == entry.crc32 && result.dataOffset == entry.dataOffset)
            #expect(entry.dataOffset % 64 == 0, "\(name) at \(entry.dataOffset)")
            #expect(Array(bytes[entry.dataOffset..<entry.dataOffset + data.count]) == data)
            #expect(try reader.contents(of: entry) == data)
            let storage = try reader.storage(for: entry, verifyCRC: true)
            #expect(storage.isMapped)
            #expect(try storage.withUnsafeBytes { Array($0) } == data)
            #expect(storage.isVerified)
        }
        // The zip64 end record and locator are present exactly when asked for (this archive is small).
        let locator = bytes.count - 22 - 20
        #expect((bytes.read32(at: locator) == 0x0706_4b50) == forceZip64)
    }

    @Test(arguments: [false, true])
    func pythonZipfileReadsWhatWeWrite(forceZip64: Bool) throws {
        let (target, _, _) = try writeArchive(forceZip64: forceZip64)
        let script = """
            import sys, zipfile
            z = zipfile.ZipFile(sys.argv[1])
            assert z.testzip() is None
            for i in z.infolist():
                assert i.compress_type == 0 and i.date_time == (1980, 1, 1, 0, 0, 0), i
                print(i.filename, i.file_size, i.CRC, len(z.read(i)))
            """
        let (status, output) = try runPython(script, [target])
        #expect(status == 0, "\(output)")
        let expected = Self.sampleEntries.map { "\($0.0) \($0.1.count) \(referenceCRC32($0.1)) \($0.1.count)" }
        #expect(output.split(separator: "\n").map(String.init) == expected)
    }

    @Test func sameInputGivesSameBytes() throws {
        let first = try writeArchive(as: "first.zip").bytes
        let second = try writeArchive(as: "second.zip").bytes
        #expect(first == second)
    }

    /// Writeback while writing splits large payloads into pieces; the file must not notice.
    @Test func writebackWhileWritingGivesTheSameBytes() throws {
        let big = patternBytes(ZipWriter.writebackBatch + 12_345, seed: 5)
        let entries = Self.sampleEntries + [("archive/data/big", big), ("archive/data/after", patternBytes(70_000, seed: 6))]
        let plain = try writeArchive(entries, as: "plain.zip")
        let streamed = try writeArchive(entries, startsWriteback: true, as: "streamed.zip")
        #expect(plain.bytes == streamed.bytes)
        #expect(plain.results.map(\.dataOffset) == streamed.results.map(\.dataOffset))
    }

    @Test(arguments: [1, 8, 64, 4096])
    func everyDataOffsetIsAligned(alignment: Int) throws {
        let (target, _, results) = try writeArchive(alignment: alignment)
        let reader = try ZipReader(path: target)
        for (entry, result) in zip(reader.entries, results) {
            #expect(entry.dataOffset % alignment == 0)
            #expect(entry.dataOffset == result.dataOffset)
        }
    }

    @Test func emptyArchiveOpens() throws {
        let (target, bytes, _) = try writeArchive([])
        #expect(bytes.count == 22)
        #expect(try ZipReader(path: target).entries.isEmpty)
    }

    /// More than 65535 entries forces a zip64 end record without the testing knob.
    @Test func manyEntriesUseZip64EndRecord() throws {
        let count = 70_000
        let entries = (0..<count).map { ("archive/data/\($0)", [UInt8(truncatingIfNeeded: $0)]) }
        let (target, bytes, _) = try writeArchive(entries, alignment: 1)
        #expect(bytes.read32(at: bytes.count - 22 - 20) == 0x0706_4b50)
        let reader = try ZipReader(path: target)
        #expect(reader.entries.count == count)
        let last = try #require(reader.entry(named: "archive/data/69999"))
        #expect(try reader.contents(of: last) == [UInt8(truncatingIfNeeded: 69_999)])
        let (status, output) = try runPython("import sys, zipfile; print(len(zipfile.ZipFile(sys.argv[1]).infolist()))", [target])
        #expect(status == 0 && output == "\(count)\n", "\(output)")
    }

    @Test func archiveWithCommentAndTrailingBytesOpens() throws {
        let data = patternBytes(10)
        for (comment, trailing) in [(Array("note".utf8), [UInt8]()), ([], Array("junk".utf8))] {
            let reader = try open(rawZip([RawEntry("a/b", data)], comment: comment, trailing: trailing))
            #expect(try reader.contents(of: reader.requireEntry(named: "a/b")) == data)
        }
    }

    @Test func missingEntryIsNamed() throws {
        let reader = try ZipReader(path: writeArchive().path)
        #expect(reader.entry(named: "archive/nope") == nil)
        expectCode(.missingEntry) { _ = try reader.requireEntry(named: "archive/nope") }
    }

    // MARK: Deflated archives from other tools

    @Test func pythonDeflatedArchiveIsInflated() throws {
        let target = path("deflated.zip")
        let script = """
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("archive/data.pkl", bytes(range(256)) * 40)
                z.writestr("archive/empty", b"")
                z.writestr("archive/data/0", bytes(1_000_000))
                z.writestr("archive/text", "hello " * 1000)
                z.writestr(zipfile.ZipInfo("archive/stored"), b"plain", compress_type=zipfile.ZIP_STORED)
            """
        let (status, output) = try runPython(script, [target])
        try #require(status == 0, "\(output)")
        let reader = try ZipReader(path: target)
        let expected: [(String, [UInt8], UInt16)] = [
            ("archive/data.pkl", Array((0..<40).map { _ in (0...255).map(UInt8.init) }.joined()), 8),
            ("archive/empty", [], 8),
            ("archive/data/0", [UInt8](repeating: 0, count: 1_000_000), 8),
            ("archive/text", Array(String(repeating: "hello ", count: 1000).utf8), 8),
            ("archive/stored", Array("plain".utf8), 0),
        ]
        for (name, data, method) in expected {
            let entry = try reader.requireEntry(named: name)
            #expect(entry.method == method, "\(name)")
            #expect(try reader.contents(of: entry) == data)
            let storage = try reader.storage(for: entry, verifyCRC: true)
            #expect(storage.isMapped == (method == 0))
            #expect(try storage.withUnsafeBytes { Array($0) } == data)
        }
    }

    @Test func deflatedEntryWithBadCRCIsCaught() throws {
        let data = patternBytes(300)
        var entry = RawEntry("a/x", storedDeflateStream(data))
        entry.method = 8
        entry.crc = referenceCRC32(data) ^ 1
        entry.uncompressedSize = UInt32(data.count)
        let reader = try open(rawZip([entry]))
        let zipEntry = try reader.requireEntry(named: "a/x")
        expectCode(.checksumMismatch) { _ = try reader.storage(for: zipEntry, verifyCRC: true) }
        expectCode(.checksumMismatch) { _ = try reader.contents(of: zipEntry) }
        let unchecked = try reader.storage(for: zipEntry, verifyCRC: false)
        #expect(try unchecked.withUnsafeBytes { Array($0) } == data)
    }

    /// A stream that inflates to more (or less) than declared is stopped at the declared size.
    @Test(arguments: [10, 299, 301])
    func inflatedSizeMustMatchDeclaredSize(declared: Int) throws {
        let data = patternBytes(300)
        var entry = RawEntry("a/x", storedDeflateStream(data))
        entry.method = 8
        entry.crc = referenceCRC32(data)
        entry.uncompressedSize = UInt32(declared)
        let reader = try open(rawZip([entry]))
        let zipEntry = try reader.requireEntry(named: "a/x")
        expectCode(.corrupt) { _ = try reader.storage(for: zipEntry, verifyCRC: false) }
        expectCode(.corrupt) { _ = try reader.contents(of: zipEntry) }
    }

    /// A real high-ratio stream (10 MB of zeros) declared as 1000 bytes never gets a 10 MB buffer.
    @Test func deflateBombIsStoppedAtDeclaredSize() throws {
        let target = path("bomb.deflate")
        let (status, output) = try runPython(
            "import sys, zlib; c = zlib.compressobj(9, zlib.DEFLATED, -15); open(sys.argv[1], 'wb').write(c.compress(bytes(10_000_000)) + c.flush())",
            [target])
        try #require(status == 0, "\(output)")
        let stream = Array(try Data(contentsOf: URL(fileURLWithPath: target)))
        var entry = RawEntry("a/bomb", stream)
        entry.method = 8
        entry.crc = 0
        entry.uncompressedSize = 1000
        let reader = try open(rawZip([entry]))
        expectCode(.corrupt) { _ = try reader.storage(for: reader.requireEntry(named: "a/bomb"), verifyCRC: true) }
    }

    @Test func declaredSizeBeyondDeflateRatioIsRejectedAtOpen() throws {
        let stream = storedDeflateStream(patternBytes(100))
        var entry = RawEntry("a/x", stream)
        entry.method = 8
        entry.uncompressedSize = UInt32(stream.count * 1032 + 1025)
        expectCode(.corrupt) { _ = try open(rawZip([entry])) }
        entry.uncompressedSize = 0xFFFF_FFF0
        expectCode(.corrupt) { _ = try open(rawZip([entry])) }
    }

    @Test func contentsRespectsItsLimit() throws {
        let path = try writeArchive().path
        let small = try ZipReader(path: path, limits: ResourceLimits(maximumPickleBytes: 1000))
        expectCode(.limitExceeded) { _ = try small.contents(of: small.requireEntry(named: "archive/data/2")) }
        let large = try ZipReader(path: path, limits: ResourceLimits(maximumPickleBytes: 100_000))
        #expect(try large.contents(of: large.requireEntry(named: "archive/data/2")).count == 100_000)
    }

    @Test func entryFromAnotherArchiveIsRefused() throws {
        let reader = try ZipReader(path: writeArchive().path)
        var entry = try reader.requireEntry(named: "archive/data/0")
        entry.dataOffset += 1
        expectCode(.invalidArgument) { _ = try reader.storage(for: entry, verifyCRC: false) }
        expectCode(.invalidArgument) { _ = try reader.contents(of: entry) }
    }

    // MARK: CRC on read

    @Test func wrongCRCIsDetectedLazilyOnFirstRead() throws {
        var (_, bytes, results) = try writeArchive()
        let index = Self.sampleEntries.firstIndex { $0.0 == "archive/data/2" }!
        bytes[results[index].dataOffset + 500] ^= 0x01
        let target = try save(bytes, as: "flipped.zip")
        let reader = try ZipReader(path: target)
        let entry = try reader.requireEntry(named: "archive/data/2")
        let storage = try reader.storage(for: entry, verifyCRC: true)
        #expect(!storage.isVerified)
        let error = #expect(throws: CheckpointError.self) { try storage.withUnsafeBytes { _ in } }
        #expect(error?.code == .checksumMismatch)
        #expect(error?.file == target && error?.path == "archive/data/2")
        #expect(error?.expected == CRC32.hex(referenceCRC32(Self.sampleEntries[index].1)))
        #expect(error?.found == CRC32.hex(referenceCRC32(Array(bytes[results[index].dataOffset..<results[index].dataOffset + 100_000]))))
        expectCode(.checksumMismatch) { _ = try reader.contents(of: entry) }
        let unchecked = try reader.storage(for: entry, verifyCRC: false)
        #expect(try unchecked.withUnsafeBytes { $0.count } == 100_000)
        // The other entries are unaffected.
        #expect(try reader.contents(of: reader.requireEntry(named: "archive/data/1")) == patternBytes(65, seed: 2))
    }

    // MARK: Hostile archives

    @Test func emptyFileIsTruncated() throws {
        expectCode(.truncated) { _ = try open([]) }
    }

    @Test(arguments: ["hello, world", "PK\u{05}\u{06}", String(repeating: "x", count: 100)])
    func notAZip(text: String) throws {
        expectCode(.notRecognized) { _ = try open(Array(text.utf8)) }
    }

    @Test(arguments: [false, true])
    func everyTruncationIsAnError(forceZip64: Bool) throws {
        let entries: [(String, [UInt8])] = [("archive/data.pkl", patternBytes(40)), ("archive/e", []), ("archive/data/0", patternBytes(70, seed: 5))]
        let bytes = try writeArchive(entries, forceZip64: forceZip64).bytes
        let target = path("prefix.zip")
        for length in 0..<bytes.count {
            try Data(bytes[..<length]).write(to: URL(fileURLWithPath: target))
            let error = #expect(throws: CheckpointError.self, "prefix of \(length) bytes") { _ = try ZipReader(path: target) }
            #expect(error?.code == .truncated, "prefix of \(length) bytes: \(String(describing: error))")
        }
    }

    @Test func multiDiskIsUnsupported() throws {
        expectCode(.unsupported) { _ = try open(rawZip([RawEntry("a/b", [1])], disk: 1)) }
    }

    @Test func centralDirectoryOutOfBoundsIsCorrupt() throws {
        var bytes = rawZip([RawEntry("a/b", [1, 2, 3])])
        bytes.patch32(at: bytes.count - 22 + 16, 10_000)
        expectCode(.corrupt) { _ = try open(bytes) }
        bytes = rawZip([RawEntry("a/b", [1, 2, 3])])
        bytes.patch32(at: bytes.count - 22 + 12, 10_000)
        expectCode(.corrupt) { _ = try open(bytes) }
    }

    @Test(arguments: [1, 3, 1000] as [UInt16])
    func wrongEntryCountIsCorrupt(count: UInt16) throws {
        expectCode(.corrupt) { _ = try open(rawZip([RawEntry("a/b", [1]), RawEntry("a/c", [2])], totalEntries: count)) }
    }

    @Test func badLocalHeaderSignatureIsCorrupt() throws {
        var bytes = rawZip([RawEntry("a/b", [1]), RawEntry("a/c", [2])])
        let second = bytes.read32(at: centralEntryOffsets(bytes)[1] + 42)
        bytes[second] = UInt8(ascii: "Q")
        expectCode(.corrupt) { _ = try open(bytes) }
    }

    @Test func localNameDifferentFromCentralNameIsCorrupt() throws {
        var entry = RawEntry("a/b", [1])
        entry.localName = Array("a/c".utf8)
        expectCode(.corrupt) { _ = try open(rawZip([entry])) }
    }

    @Test func localMethodDifferentFromCentralIsCorrupt() throws {
        var bytes = rawZip([RawEntry("a/b", [1])])
        bytes.patch16(at: 8, 8)
        expectCode(.corrupt) { _ = try open(bytes) }
    }

    @Test func dataPastTheFileIsOutOfBounds() throws {
        var entry = RawEntry("a/b", [1, 2, 3])
        entry.compressedSize = 1_000_000
        entry.uncompressedSize = 1_000_000
        expectCode(.outOfBounds) { _ = try open(rawZip([entry])) }
    }

    @Test func dataOverlappingTheCentralDirectoryIsCorrupt() throws {
        var entry = RawEntry("a/b", [1, 2, 3])
        entry.compressedSize = 10
        entry.uncompressedSize = 10
        expectCode(.corrupt) { _ = try open(rawZip([entry])) }
    }

    @Test func entryReachingIntoTheNextHeaderIsCorrupt() throws {
        var bytes = rawZip([RawEntry("a/b", [1, 2, 3]), RawEntry("a/c", [4, 5, 6])])
        let offsets = centralEntryOffsets(bytes)
        // The first entry's data now reaches into the second's local header.
        bytes.patch32(at: offsets[0] + 20, 10)
        bytes.patch32(at: offsets[0] + 24, 10)
        let error = #expect(throws: CheckpointError.self) { _ = try open(bytes) }
        #expect(error?.code == .corrupt && error?.message == "entries overlap", "\(String(describing: error))")
    }

    /// Fifield's construction, stored variant: a second entry whose valid local header lies
    /// inside the first entry's data, so the same bytes are extracted twice.
    @Test func entryNestedInsideAnotherIsCorrupt() throws {
        let inner = Array(rawZip([RawEntry("a/c", [9])]).prefix(30 + 3 + 1))
        var outer = RawEntry("a/c", [9])
        outer.localHeaderOffset = 30 + 3
        let bytes = rawZip([RawEntry("a/b", inner), outer])
        let error = #expect(throws: CheckpointError.self) { _ = try open(bytes) }
        #expect(error?.code == .corrupt && error?.message == "entries overlap", "\(String(describing: error))")
    }

    @Test func duplicateNamesAreCorrupt() throws {
        let error = #expect(throws: CheckpointError.self) { _ = try open(rawZip([RawEntry("a/b", [1]), RawEntry("a/b", [2])])) }
        #expect(error?.code == .corrupt && error?.path == "a/b")
    }

    @Test(arguments: ["../evil", "a/../../etc/passwd", "a/..", "/etc/passwd", "a\\b", "a\u{0}b", "", "C:/x", "c:x"])
    func unsafeNamesAreRejected(name: String) throws {
        expectCode(.unsafeName) { _ = try open(rawZip([RawEntry(name, [1])])) }
        let target = path("unsafe.zip")
        try DurableFile.write(to: target, sync: false) { fd in
            let writer = ZipWriter(fileDescriptor: fd, path: target)
            expectCode(.unsafeName) { try [UInt8(1)].withUnsafeBytes { _ = try writer.addEntry(name: name, bytes: $0) } }
        }
    }

    @Test(arguments: ["a..b", "a/..b/c", "..a", "archive/.data/serialization_id", "dir/"])
    func namesThatOnlyLookUnsafeAreAccepted(name: String) throws {
        let reader = try open(rawZip([RawEntry(name, [1])]))
        #expect(reader.entry(named: name) != nil)
    }

    @Test func invalidUTF8NameIsCorrupt() throws {
        var entry = RawEntry("ab", [1])
        entry.name = [0x61, 0xFF]
        entry.localName = [0x61, 0xFF]
        expectCode(.corrupt) { _ = try open(rawZip([entry])) }
    }

    @Test(arguments: [1, 64, 65] as [UInt16])
    func encryptedEntriesAreUnsupported(flags: UInt16) throws {
        var entry = RawEntry("a/b", [1])
        entry.flags = flags
        expectCode(.unsupported) { _ = try open(rawZip([entry])) }
    }

    @Test(arguments: [1, 9, 12, 14, 93, 99] as [UInt16])
    func compressionMethodsOtherThanStoredAndDeflatedAreUnsupported(method: UInt16) throws {
        var entry = RawEntry("a/b", [1])
        entry.method = method
        expectCode(.unsupported) { _ = try open(rawZip([entry])) }
    }

    @Test func storedEntryWithUnequalSizesIsCorrupt() throws {
        var entry = RawEntry("a/b", [1, 2, 3])
        entry.uncompressedSize = 2
        expectCode(.corrupt) { _ = try open(rawZip([entry])) }
    }

    @Test func zip64EndRecordDisagreeingWithEndRecordIsCorrupt() throws {
        var bytes = try writeArchive(forceZip64: true).bytes
        // The end record's entry count says 3 while the zip64 record says 8.
        bytes.patch16(at: bytes.count - 22 + 8, 3)
        bytes.patch16(at: bytes.count - 22 + 10, 3)
        expectCode(.corrupt) { _ = try open(bytes) }
    }

    @Test func zip64LocatorPointingNowhereIsCorrupt() throws {
        var bytes = try writeArchive(forceZip64: true).bytes
        let locator = bytes.count - 22 - 20
        bytes.patch64(at: locator + 8, UInt64(bytes.count))
        expectCode(.corrupt) { _ = try open(bytes) }
        bytes.patch64(at: locator + 8, 0)
        expectCode(.corrupt) { _ = try open(bytes) }
    }

    @Test func zip64SentinelWithoutExtraFieldIsCorrupt() throws {
        var entry = RawEntry("a/b", [1])
        entry.localHeaderOffset = 0xFFFF_FFFF
        expectCode(.corrupt) { _ = try open(rawZip([entry])) }
    }

    /// Random corruption of the structural bytes (headers, directory, end records) of a stored
    /// and a deflated archive: every outcome is a clean open or a ``CheckpointError``, never a
    /// crash, and whatever opens reads back without trapping.
    @Test(arguments: [false, true])
    func randomCorruptionNeverCrashes(deflated: Bool) throws {
        var original: [UInt8]
        if deflated {
            var entry = RawEntry("a/deflated", storedDeflateStream(patternBytes(200)))
            entry.method = 8
            entry.crc = referenceCRC32(patternBytes(200))
            entry.uncompressedSize = 200
            original = rawZip([entry, RawEntry("a/stored", patternBytes(30))])
        } else {
            original = try writeArchive(Array(Self.sampleEntries.prefix(5)), forceZip64: true).bytes
        }
        // Positions worth corrupting: everything except bulk payload bytes.
        let reader = try open(original)
        var payload = Set<Int>()
        for entry in reader.entries { payload.formUnion(entry.dataOffset..<entry.dataOffset + entry.compressedSize) }
        let targets = original.indices.filter { !payload.contains($0) }
        var random = SplitMix64(seed: deflated ? 7 : 11)
        func next() -> UInt64 { random.next() }
        let target = path("fuzz.zip")
        var opened = 0
        for _ in 0..<800 {
            var bytes = original
            for _ in 0..<(1 + Int(next() % 3)) {
                let position = targets[Int(next() % UInt64(targets.count))]
                bytes[position] = next() % 4 == 0 ? 0xFF : UInt8(truncatingIfNeeded: next())
            }
            try Data(bytes).write(to: URL(fileURLWithPath: target))
            do {
                let mutated = try ZipReader(path: target)
                opened += 1
                for entry in mutated.entries {
                    _ = try? mutated.contents(of: entry)
                    _ = try? mutated.storage(for: entry, verifyCRC: true).withUnsafeBytes { $0.count }
                }
            } catch {
                #expect(error is CheckpointError, "\(error)")
            }
        }
        // Some mutations (a timestamp, a CRC) leave a valid archive; all-failures would mean the
        // corruption never reached the parser's happy path.
        #expect(opened > 0)
    }

    // MARK: Writer misuse

    @Test func writerRejectsMisuse() throws {
        let target = path("misuse.zip")
        try DurableFile.write(to: target, sync: false) { fd in
            let writer = ZipWriter(fileDescriptor: fd, path: target)
            try [UInt8(1)].withUnsafeBytes { bytes in
                try writer.addEntry(name: "a/b", bytes: bytes)
                expectCode(.invalidArgument) { try writer.addEntry(name: "a/b", bytes: bytes) }
                for alignment in [0, 3, 1 << 16] {
                    expectCode(.invalidArgument) { try writer.addEntry(name: "a/c\(alignment)", bytes: bytes, alignment: alignment) }
                }
                try writer.finish()
                expectCode(.invalidArgument) { try writer.addEntry(name: "a/d", bytes: bytes) }
                expectCode(.invalidArgument) { try writer.finish() }
            }
        }
        #expect(try ZipReader(path: target).entries.map(\.name) == ["a/b"])
    }

    @Test func writeFailureIsAnIOError() throws {
        let target = path("readonly.zip")
        try #require(FileManager.default.createFile(atPath: target, contents: nil))
        let fd = Foundation.open(target, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        let writer = ZipWriter(fileDescriptor: fd, path: target)
        let big = [UInt8](repeating: 7, count: 100_000)
        expectCode(.io) { try big.withUnsafeBytes { _ = try writer.addEntry(name: "a/b", bytes: $0) } }
        expectCode(.invalidArgument) { try writer.finish() }
    }
}
