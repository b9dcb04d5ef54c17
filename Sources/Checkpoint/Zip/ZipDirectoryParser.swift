/// Parses and validates a zip archive's end records, central directory and local headers.
///
/// Every offset, size and count read from the file is checked against the file before use, so a
/// hostile archive produces a ``CheckpointError`` and never an out-of-bounds read, a trap or an
/// allocation sized by the attacker.
struct ZipDirectoryParser {
    /// The end records and central directory are read through the mapping; local headers,
    /// scattered over the whole file, with `pread` (see ``MappedFile/read(offset:count:)``).
    let file: MappedFile
    /// The archive's bytes in the file: the whole file, or one archive stored inside a larger one
    /// (an item of a DCP `.distcp` file), whose offsets count from its own first byte.
    let window: Range<Int>
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: file.bytes[window]) }
    var path: String { file.path }
    let limits: ResourceLimits

    /// A parser of the whole file, or of the archive at `window` in it.
    init(file: MappedFile, window: Range<Int>? = nil, limits: ResourceLimits = .default) {
        self.file = file
        self.window = window ?? 0..<file.count
        self.limits = limits
    }

    /// Deflate codes a run of 258 bytes in at least two bits, so no stream inflates more than
    /// 1032 times its size; the slack covers block headers of tiny streams.
    static let maxDeflateRatio = 1032
    static let deflateRatioSlack = 1024

    struct Result {
        var entries: [ZipEntry]
        var indexByName: [String: Int]
    }

    /// Where the central directory is, as the end records state it.
    private struct Directory {
        var offset: Int
        var size: Int
        var entryCount: Int
        /// Entry data and the central directory must end before this offset (the first end record).
        var limit: Int
    }

    private func error(
        _ code: CheckpointError.Code, _ message: String, entry: String? = nil,
        expected: String? = nil, found: String? = nil
    ) -> CheckpointError {
        CheckpointError(code, message, file: path, path: entry, expected: expected, found: found)
    }

    func parse() throws -> Result {
        let directory = try readEndRecords()
        try limits.check(.maximumZipEntries, directory.entryCount, what: "zip entries", file: path)
        var entries = try readCentralDirectory(directory)
        try checkInflatedTotal(entries)
        var indexByName: [String: Int] = [:]
        indexByName.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() {
            if indexByName.updateValue(index, forKey: entry.name) != nil {
                throw error(.corrupt, "duplicate entry name", entry: entry.name, expected: "unique names", found: "2 entries")
            }
        }
        for index in entries.indices {
            entries[index].dataOffset = try readLocalHeader(of: entries[index], directory: directory)
        }
        try checkNoOverlap(entries)
        // Entries hand out file offsets: a storage maps the data wherever the window is.
        for index in entries.indices {
            entries[index].localHeaderOffset += window.lowerBound
            entries[index].dataOffset += window.lowerBound
        }
        return Result(entries: entries, indexByName: indexByName)
    }

    // MARK: End records

    private func readEndRecords() throws -> Directory {
        guard bytes.count > 0 else {
            throw error(.truncated, "empty file", expected: "a zip archive", found: "0 bytes")
        }
        guard let end = findEndOfCentralDirectory() else {
            let magic: [UInt8] = [0x50, 0x4B, 0x03, 0x04]
            let head = Array(bytes.prefix(magic.count))
            if head.elementsEqual(magic.prefix(head.count)) {
                throw error(
                    .truncated, "zip archive cut short: no end of central directory record",
                    expected: "an end record within the last \(ZipFormat.maxCommentLength + ZipFormat.endOfCentralDirectorySize) bytes",
                    found: "\(bytes.count) bytes without one")
            }
            throw error(
                .notRecognized, "not a zip archive", expected: "local header signature PK\\x03\\x04",
                found: head.map { hexByte($0) }.joined(separator: " "))
        }
        let disk = bytes.littleEndianU16(at: end + 4)
        let directoryDisk = bytes.littleEndianU16(at: end + 6)
        let entriesOnDisk = bytes.littleEndianU16(at: end + 8)
        let totalEntries = bytes.littleEndianU16(at: end + 10)
        let size32 = bytes.littleEndianU32(at: end + 12)
        let offset32 = bytes.littleEndianU32(at: end + 16)

        let locator = end - ZipFormat.zip64LocatorSize
        let hasZip64 = locator >= 0 && bytes.littleEndianU32(at: locator) == ZipFormat.zip64LocatorSignature
        var directory: Directory
        if hasZip64 {
            directory = try readZip64EndRecord(locator: locator)
            let fieldsAgree =
                (totalEntries == ZipFormat.sentinel16 || Int(totalEntries) == directory.entryCount)
                && (entriesOnDisk == ZipFormat.sentinel16 || entriesOnDisk == totalEntries)
                && (size32 == ZipFormat.sentinel32 || Int(size32) == directory.size)
                && (offset32 == ZipFormat.sentinel32 || Int(offset32) == directory.offset)
            guard fieldsAgree else {
                throw error(
                    .corrupt, "end record disagrees with the zip64 end record",
                    expected: "\(directory.entryCount) entries, directory of \(directory.size) bytes at \(directory.offset)",
                    found: "\(totalEntries) entries, directory of \(size32) bytes at \(offset32)")
            }
        } else {
            guard disk == 0, directoryDisk == 0, entriesOnDisk == totalEntries else {
                throw error(
                    .unsupported, "multi-disk (spanned) archives are not supported", expected: "disk 0 holding all entries",
                    found: "disk \(disk), directory on disk \(directoryDisk), \(entriesOnDisk) of \(totalEntries) entries here")
            }
            directory = Directory(offset: Int(offset32), size: Int(size32), entryCount: Int(totalEntries), limit: end)
        }
        guard directory.offset <= directory.limit, directory.size <= directory.limit - directory.offset else {
            throw error(
                .corrupt, "central directory lies outside the archive",
                expected: "within bytes 0..<\(directory.limit)",
                found: "offset \(directory.offset), size \(directory.size)")
        }
        guard directory.entryCount <= directory.size / ZipFormat.centralHeaderSize else {
            throw error(
                .corrupt, "wrong entry count: the central directory is too small to hold that many entries",
                expected: "at most \(directory.size / ZipFormat.centralHeaderSize) entries",
                found: "\(directory.entryCount) entries")
        }
        return directory
    }

    /// The offset of the end of central directory record: the last one whose comment ends
    /// exactly at the end of the file, else the last one whose comment fits (trailing bytes).
    private func findEndOfCentralDirectory() -> Int? {
        let last = bytes.count - ZipFormat.endOfCentralDirectorySize
        guard last >= 0 else { return nil }
        let first = max(0, last - ZipFormat.maxCommentLength)
        var fitting: Int?
        for candidate in stride(from: last, through: first, by: -1)
        where bytes[candidate] == 0x50 && bytes.littleEndianU32(at: candidate) == ZipFormat.endOfCentralDirectorySignature {
            let end = candidate + ZipFormat.endOfCentralDirectorySize + Int(bytes.littleEndianU16(at: candidate + 20))
            if end == bytes.count { return candidate }
            if end < bytes.count, fitting == nil { fitting = candidate }
        }
        return fitting
    }

    private func readZip64EndRecord(locator: Int) throws -> Directory {
        let recordDisk = bytes.littleEndianU32(at: locator + 4)
        let recordOffset = bytes.littleEndianU64(at: locator + 8)
        let totalDisks = bytes.littleEndianU32(at: locator + 16)
        guard recordDisk == 0, totalDisks <= 1 else {
            throw error(
                .unsupported, "multi-disk (spanned) archives are not supported", expected: "1 disk",
                found: "\(totalDisks) disks, zip64 end record on disk \(recordDisk)")
        }
        let latestStart = locator - ZipFormat.zip64EndOfCentralDirectorySize
        guard latestStart >= 0, recordOffset <= UInt64(latestStart) else {
            throw error(
                .corrupt, "zip64 end record offset out of range", expected: "at most \(max(latestStart, 0))",
                found: "\(recordOffset)")
        }
        let record = Int(recordOffset)
        guard bytes.littleEndianU32(at: record) == ZipFormat.zip64EndOfCentralDirectorySignature else {
            throw error(
                .corrupt, "no zip64 end record where the locator points", expected: "signature PK\\x06\\x06 at \(record)",
                found: hexWord(bytes.littleEndianU32(at: record)))
        }
        let recordSize = bytes.littleEndianU64(at: record + 4)
        let minimumSize = UInt64(ZipFormat.zip64EndOfCentralDirectorySize - 12)
        guard recordSize >= minimumSize, recordSize <= UInt64(locator - record - 12) else {
            throw error(
                .corrupt, "zip64 end record size out of range",
                expected: "\(minimumSize)...\(locator - record - 12)", found: "\(recordSize)")
        }
        let disk = bytes.littleEndianU32(at: record + 16)
        let directoryDisk = bytes.littleEndianU32(at: record + 20)
        let entriesOnDisk = bytes.littleEndianU64(at: record + 24)
        let totalEntries = bytes.littleEndianU64(at: record + 32)
        let size = bytes.littleEndianU64(at: record + 40)
        let offset = bytes.littleEndianU64(at: record + 48)
        guard disk == 0, directoryDisk == 0, entriesOnDisk == totalEntries else {
            throw error(
                .unsupported, "multi-disk (spanned) archives are not supported", expected: "disk 0 holding all entries",
                found: "disk \(disk), directory on disk \(directoryDisk), \(entriesOnDisk) of \(totalEntries) entries here")
        }
        let limit = UInt64(record)
        guard offset <= limit, size <= limit - offset else {
            throw error(
                .corrupt, "central directory lies outside the archive", expected: "within bytes 0..<\(record)",
                found: "offset \(offset), size \(size)")
        }
        // Bounded by the file size, so the conversions below cannot trap; the entry count is
        // checked against the directory size by the caller.
        guard totalEntries <= size else {
            throw error(
                .corrupt, "wrong entry count: the central directory is too small to hold that many entries",
                expected: "at most \(size / UInt64(ZipFormat.centralHeaderSize)) entries", found: "\(totalEntries) entries")
        }
        return Directory(offset: Int(offset), size: Int(size), entryCount: Int(totalEntries), limit: record)
    }

    // MARK: Central directory

    private func readCentralDirectory(_ directory: Directory) throws -> [ZipEntry] {
        var entries: [ZipEntry] = []
        entries.reserveCapacity(directory.entryCount)
        let end = directory.offset + directory.size
        var cursor = directory.offset
        for number in 0..<directory.entryCount {
            guard end - cursor >= ZipFormat.centralHeaderSize else {
                throw error(
                    .corrupt, "wrong entry count: the central directory ends after \(number) entries",
                    expected: "\(directory.entryCount) entries", found: "\(number) entries")
            }
            guard bytes.littleEndianU32(at: cursor) == ZipFormat.centralHeaderSignature else {
                throw error(
                    .corrupt, "central directory entry \(number) has a bad signature",
                    expected: "PK\\x01\\x02 at offset \(cursor)", found: hexWord(bytes.littleEndianU32(at: cursor)))
            }
            let entry = try readCentralEntry(at: cursor, end: end, number: number)
            entries.append(entry.entry)
            cursor = entry.next
        }
        guard cursor == end else {
            throw error(
                .corrupt, "wrong entry count: the central directory holds more than the stated entries",
                expected: "\(directory.entryCount) entries in \(directory.size) bytes",
                found: "\(end - cursor) bytes after the last one")
        }
        return entries
    }

    private func readCentralEntry(at start: Int, end: Int, number: Int) throws -> (entry: ZipEntry, next: Int) {
        let flags = bytes.littleEndianU16(at: start + 8)
        let method = bytes.littleEndianU16(at: start + 10)
        let crc = bytes.littleEndianU32(at: start + 16)
        let compressed32 = bytes.littleEndianU32(at: start + 20)
        let uncompressed32 = bytes.littleEndianU32(at: start + 24)
        let nameLength = Int(bytes.littleEndianU16(at: start + 28))
        let extraLength = Int(bytes.littleEndianU16(at: start + 30))
        let commentLength = Int(bytes.littleEndianU16(at: start + 32))
        let diskStart = bytes.littleEndianU16(at: start + 34)
        let headerOffset32 = bytes.littleEndianU32(at: start + 42)

        let nameStart = start + ZipFormat.centralHeaderSize
        let next = nameStart + nameLength + extraLength + commentLength
        guard next <= end else {
            throw error(
                .corrupt, "central directory entry \(number) runs past the central directory",
                expected: "end at or before \(end)", found: "end at \(next)")
        }
        let nameBytes = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<nameStart + nameLength])
        guard let name = String(validating: nameBytes, as: UTF8.self) else {
            throw error(
                .corrupt, "entry name is not valid UTF-8",
                found: nameBytes.prefix(64).map { hexByte($0) }.joined(separator: " "))
        }
        if let reason = ZipEntryName.unsafeReason(name) {
            throw error(.unsafeName, "unsafe entry name: \(reason)", entry: name, expected: "a relative path without '..'", found: name)
        }
        if flags & (ZipFormat.flagEncrypted | ZipFormat.flagStrongEncryption) != 0 {
            throw error(.unsupported, "encrypted entries are not supported", entry: name, expected: "no encryption", found: "flags \(hexWord(UInt32(flags)))")
        }
        guard method == ZipFormat.methodStored || method == ZipFormat.methodDeflated else {
            throw error(.unsupported, "unsupported compression method", entry: name, expected: "0 (stored) or 8 (deflated)", found: "\(method)")
        }

        let extra = UnsafeRawBufferPointer(rebasing: bytes[nameStart + nameLength..<nameStart + nameLength + extraLength])
        let wide = try readZip64Extra(
            extra, entry: name, needUncompressed: uncompressed32 == ZipFormat.sentinel32,
            needCompressed: compressed32 == ZipFormat.sentinel32, needOffset: headerOffset32 == ZipFormat.sentinel32,
            needDisk: diskStart == ZipFormat.sentinel16)
        let compressed = wide.compressed ?? UInt64(compressed32)
        let uncompressed = wide.uncompressed ?? UInt64(uncompressed32)
        let headerOffset = wide.offset ?? UInt64(headerOffset32)
        let disk = wide.disk ?? UInt32(diskStart)
        guard disk == 0 else {
            throw error(.unsupported, "multi-disk (spanned) archives are not supported", entry: name, expected: "disk 0", found: "disk \(disk)")
        }
        let fileSize = UInt64(bytes.count)
        guard compressed <= fileSize, headerOffset <= fileSize else {
            throw error(
                .outOfBounds, "entry lies past the end of the file", entry: name, expected: "within \(fileSize) bytes",
                found: "local header at \(headerOffset), \(compressed) bytes of data")
        }
        if method == ZipFormat.methodStored {
            guard compressed == uncompressed else {
                throw error(
                    .corrupt, "stored entry with different compressed and uncompressed sizes", entry: name,
                    expected: "\(compressed) bytes", found: "\(uncompressed) bytes")
            }
        } else {
            let (product, overflow) = compressed.multipliedReportingOverflow(by: UInt64(Self.maxDeflateRatio))
            let ceiling = overflow ? UInt64.max : product + UInt64(Self.deflateRatioSlack)
            guard uncompressed <= ceiling, uncompressed <= UInt64(Int.max) else {
                throw error(
                    .corrupt, "declared size is larger than deflate can expand to (a zip bomb?)", entry: name,
                    expected: "at most \(ceiling) bytes from \(compressed) compressed bytes", found: "\(uncompressed) bytes")
            }
        }
        let entry = ZipEntry(
            name: name, method: method, crc32: crc, compressedSize: Int(compressed),
            uncompressedSize: Int(uncompressed), localHeaderOffset: Int(headerOffset), dataOffset: 0)
        return (entry, next)
    }

    private struct Zip64Values {
        var uncompressed: UInt64?
        var compressed: UInt64?
        var offset: UInt64?
        var disk: UInt32?
    }

    /// The zip64 extra holds, in this order, only the fields whose 32-bit value is the sentinel.
    private func readZip64Extra(
        _ extra: UnsafeRawBufferPointer, entry: String, needUncompressed: Bool, needCompressed: Bool,
        needOffset: Bool, needDisk: Bool
    ) throws -> Zip64Values {
        var values = Zip64Values()
        guard needUncompressed || needCompressed || needOffset || needDisk else { return values }
        var cursor = 0
        // Trailing bytes too short for a field header are padding some writers leave; Python's
        // zipfile ignores them too.
        while extra.count - cursor >= 4 {
            let id = extra.littleEndianU16(at: cursor)
            let size = Int(extra.littleEndianU16(at: cursor + 2))
            let body = cursor + 4
            guard size <= extra.count - body else {
                throw error(
                    .corrupt, "extra field runs past the extra block", entry: entry,
                    expected: "at most \(extra.count - body) bytes", found: "\(size) bytes")
            }
            if id == ZipFormat.zip64ExtraID {
                var field = body
                func take64(_ what: String) throws -> UInt64 {
                    guard body + size - field >= 8 else {
                        throw error(.corrupt, "zip64 extra field lacks the \(what)", entry: entry)
                    }
                    defer { field += 8 }
                    return extra.littleEndianU64(at: field)
                }
                if needUncompressed { values.uncompressed = try take64("uncompressed size") }
                if needCompressed { values.compressed = try take64("compressed size") }
                if needOffset { values.offset = try take64("local header offset") }
                if needDisk {
                    guard body + size - field >= 4 else {
                        throw error(.corrupt, "zip64 extra field lacks the disk number", entry: entry)
                    }
                    values.disk = extra.littleEndianU32(at: field)
                }
                return values
            }
            cursor = body + size
        }
        throw error(
            .corrupt, "size or offset needs a zip64 extra field, and there is none", entry: entry,
            expected: "zip64 extra field (0x0001)", found: "none")
    }

    // MARK: Local headers and layout

    /// Checks the local header against its central entry and returns the entry's data offset.
    private func readLocalHeader(of entry: ZipEntry, directory: Directory) throws -> Int {
        let start = entry.localHeaderOffset
        guard start <= directory.offset, directory.offset - start >= ZipFormat.localHeaderSize else {
            throw error(
                .corrupt, "local header lies outside the entry area", entry: entry.name,
                expected: "a \(ZipFormat.localHeaderSize)-byte header before the central directory at \(directory.offset)",
                found: "header at \(start)")
        }
        // The header and the name the central directory expects, copied out in one read.
        let expectedName = entry.name.utf8.count
        let copy = try file.read(offset: window.lowerBound + start, count: min(ZipFormat.localHeaderSize + expectedName, directory.offset - start))
        return try copy.withUnsafeBytes { try checkLocalHeader(of: entry, in: $0, at: start, directory: directory) }
    }

    /// Validates a local header whose first byte is `header[0]`, at file offset `start`.
    private func checkLocalHeader(of entry: ZipEntry, in header: UnsafeRawBufferPointer, at start: Int, directory: Directory) throws -> Int {
        guard header.count >= ZipFormat.localHeaderSize, header.littleEndianU32(at: 0) == ZipFormat.localHeaderSignature else {
            throw error(
                .corrupt, "bad local header signature", entry: entry.name, expected: "PK\\x03\\x04 at offset \(start)",
                found: header.count >= 4 ? hexWord(header.littleEndianU32(at: 0)) : "\(header.count) bytes")
        }
        let method = header.littleEndianU16(at: 8)
        let nameLength = Int(header.littleEndianU16(at: 26))
        let extraLength = Int(header.littleEndianU16(at: 28))
        let nameStart = start + ZipFormat.localHeaderSize
        let dataOffset = nameStart + nameLength + extraLength
        guard dataOffset <= directory.offset else {
            throw error(
                .corrupt, "local header runs into the central directory", entry: entry.name,
                expected: "end at or before \(directory.offset)", found: "end at \(dataOffset)")
        }
        let nameEnd = ZipFormat.localHeaderSize + nameLength
        let localName = nameEnd <= header.count
            ? UnsafeRawBufferPointer(rebasing: header[ZipFormat.localHeaderSize..<nameEnd]) : UnsafeRawBufferPointer(start: nil, count: 0)
        guard nameLength == entry.name.utf8.count, localName.elementsEqual(entry.name.utf8) else {
            throw error(
                .corrupt, "local header name differs from the central directory", entry: entry.name,
                expected: entry.name, found: String(decoding: localName, as: UTF8.self))
        }
        guard method == entry.method else {
            throw error(
                .corrupt, "local header method differs from the central directory", entry: entry.name,
                expected: "\(entry.method)", found: "\(method)")
        }
        guard entry.compressedSize <= bytes.count - dataOffset else {
            throw error(
                .outOfBounds, "entry data runs past the end of the file", entry: entry.name,
                expected: "end at or before \(bytes.count)", found: "\(entry.compressedSize) bytes from \(dataOffset)")
        }
        guard entry.compressedSize <= directory.offset - dataOffset else {
            throw error(
                .corrupt, "entry data overlaps the central directory", entry: entry.name,
                expected: "end at or before \(directory.offset)", found: "\(entry.compressedSize) bytes from \(dataOffset)")
        }
        return dataOffset
    }

    /// Deflated entries are inflated into memory when they are read, each within deflate's ratio
    /// of its own bytes; together they may take the archive's size plus the allowance. Checked on
    /// the declared sizes, before any local header is read.
    private func checkInflatedTotal(_ entries: [ZipEntry]) throws {
        var total = 0
        for entry in entries where entry.method == ZipFormat.methodDeflated {
            total = total.addingReportingOverflow(entry.uncompressedSize).overflow ? .max : total + entry.uncompressedSize
        }
        let (allowed, overflow) = bytes.count.addingReportingOverflow(limits.maximumBytesBeyondFileSize)
        guard overflow || total <= allowed else {
            throw limits.exceeded(
                .maximumBytesBeyondFileSize, found: "\(total) bytes inflated from a \(bytes.count)-byte archive",
                what: "deflated entries' inflated bytes beyond the archive's size", file: path)
        }
    }

    /// Rejects entries that share bytes: overlapping entries are how quadratic zip bombs
    /// (Fifield) work, and libzip's consistency check does not look for them.
    private func checkNoOverlap(_ entries: [ZipEntry]) throws {
        // Writers lay entries out in directory order, so sorting is usually unnecessary.
        let inOrder = zip(entries, entries.dropFirst()).allSatisfy { $0.localHeaderOffset < $1.localHeaderOffset }
        let order = inOrder
            ? Array(entries.indices)
            : entries.indices.sorted { entries[$0].localHeaderOffset < entries[$1].localHeaderOffset }
        for (current, following) in zip(order, order.dropFirst()) {
            let end = entries[current].dataOffset + entries[current].compressedSize
            guard end <= entries[following].localHeaderOffset else {
                throw error(
                    .corrupt, "entries overlap", entry: entries[following].name,
                    expected: "local header at or after \(end), where \(entries[current].name) ends",
                    found: "local header at \(entries[following].localHeaderOffset)")
            }
        }
    }
}

private func hexByte(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16)
    return digits.count == 1 ? "0" + digits : digits
}

private func hexWord(_ word: UInt32) -> String {
    CRC32.hex(word)
}
