#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a zip archive sequentially to a file descriptor: every entry stored (method 0), data
/// aligned, zip64 when needed, deterministic bytes (fixed timestamps).
///
/// Each entry's CRC-32 is computed before its header is written, so the local header carries
/// the real CRC and sizes and no data descriptor is needed (torch.load does not require one).
/// Large payloads go from the caller's memory to the file with no intermediate copy; headers
/// and small payloads are gathered in a buffer to keep the number of system calls low.
final class ZipWriter {
    private let fileDescriptor: Int32
    private let path: String
    /// Testing knob: write zip64 records and extras even where 32-bit fields would do.
    let forceZip64: Bool

    /// Logical end of the archive so far, buffered bytes included (a file offset).
    private var offset: Int
    /// The file offset the archive's own offsets count from: 0, or where it starts when it is
    /// stored inside a larger file (an item of a DCP `.distcp` file).
    private let origin: Int
    private var buffer: [UInt8] = []
    private var centralDirectory: [UInt8] = []
    private var entryCount = 0
    private var names: Set<String> = []
    private var state = State.open

    /// Starts writeback of the file while it is being written, for a file that will be fsynced
    /// (``DurableFile/startWriteback(_:offset:length:)``): the disk then works while later entries
    /// are still being copied, and the final fsync finds little left to do. Off by default.
    var startsWriteback = false
    /// Counts the payload bytes of the entries added while it is set (the tensor data).
    var payloadProgress: WriteProgress?
    /// End of what has been handed to write(2): `offset` less the buffered bytes.
    private var writtenEnd: Int
    /// Where the next writeback request starts; always a page boundary.
    private var writebackStart: Int

    private enum State { case open, finished, failed }

    /// Payloads up to this size are copied into the header buffer rather than written alone.
    private static let smallPayload = 64 << 10
    private static let bufferFlushSize = 1 << 20
    /// With `startsWriteback`, how much is written between two writeback requests, and the
    /// largest single write: a payload of any size then overlaps with the disk after its first
    /// piece, instead of a 1 GiB tensor being copied whole before the disk hears of it.
    static let writebackBatch = 16 << 20
    /// Unix regular file, rw-r--r--, so `unzip` extracts with ordinary permissions.
    private static let externalAttributes: UInt32 = 0o100644 << 16
    private static let versionMadeBy: UInt16 = 3 << 8 | 45
    private static let versionNeeded: UInt16 = 20
    private static let versionNeededZip64: UInt16 = 45

    /// Creates a writer that appends to `fileDescriptor` from its current position.
    ///
    /// - Parameters:
    ///   - fileDescriptor: An open, writable descriptor; the caller keeps ownership.
    ///   - path: The file's name, for error messages.
    convenience init(fileDescriptor: Int32, path: String) {
        self.init(fileDescriptor: fileDescriptor, path: path, forceZip64: false)
    }

    /// Creates a writer that appends to `fileDescriptor` from its current position.
    ///
    /// - Parameters:
    ///   - fileDescriptor: An open, writable descriptor; the caller keeps ownership.
    ///   - path: The file's name, for error messages.
    ///   - forceZip64: Write zip64 records and extras even where 32-bit fields would do.
    ///   - embedded: Count the archive's offsets from its first byte rather than from the file's,
    ///     for an archive that is read as a byte range of a larger file; data stays aligned in
    ///     the file.
    init(fileDescriptor: Int32, path: String, forceZip64: Bool, embedded: Bool = false) {
        self.fileDescriptor = fileDescriptor
        self.path = path
        self.forceZip64 = forceZip64
        // Zip offsets are absolute; a descriptor that cannot seek (a pipe) starts at 0.
        offset = max(0, Int(lseek(fileDescriptor, 0, SEEK_CUR)))
        origin = embedded ? offset : 0
        writtenEnd = offset
        writebackStart = offset & ~(DurableFile.pageSize - 1)
    }

    /// Appends a stored entry whose data starts at a multiple of `alignment` in the file.
    ///
    /// The padding is PyTorch's: a local-header extra field `FB`, its 2-byte length, and that
    /// many `Z` bytes, so torch.load's mmap path finds every storage aligned as torch.save would.
    ///
    /// - Parameters:
    ///   - name: The entry name; must be safe (relative, no `..`, no backslash) and unique.
    ///   - bytes: The contents, written straight from this memory.
    ///   - alignment: A power of two up to 32768.
    ///   - precomputedCRC32: The bytes' CRC-32 if the caller already has it (computed on another
    ///     core while earlier entries were written); nil computes it here.
    /// - Returns: The CRC-32 of the bytes and the file offset of the data.
    /// - Throws: ``CheckpointError``: `.unsafeName`, `.invalidArgument` (duplicate or too long
    ///   name, bad alignment, writer already finished or failed), `.io` if a write fails.
    @discardableResult
    func addEntry(
        name: String, bytes: UnsafeRawBufferPointer, alignment: Int = 64, precomputedCRC32: UInt32? = nil
    ) throws -> (crc32: UInt32, dataOffset: Int) {
        try checkOpen(entry: name)
        if let reason = ZipEntryName.unsafeReason(name) {
            throw CheckpointError(.unsafeName, "unsafe entry name: \(reason)", file: path, path: name)
        }
        let nameBytes = Array(name.utf8)
        guard nameBytes.count <= Int(UInt16.max) else {
            throw CheckpointError(
                .invalidArgument, "entry name too long", file: path, path: name,
                expected: "at most \(UInt16.max) bytes", found: "\(nameBytes.count) bytes")
        }
        guard alignment >= 1, alignment <= 1 << 15, alignment & (alignment - 1) == 0 else {
            throw CheckpointError(
                .invalidArgument, "bad alignment", file: path, path: name,
                expected: "a power of two from 1 to 32768", found: "\(alignment)")
        }
        guard names.insert(name).inserted else {
            throw CheckpointError(.invalidArgument, "duplicate entry name", file: path, path: name)
        }

        let crc = precomputedCRC32 ?? CRC32.checksum(bytes)
        let size = UInt64(bytes.count)
        let headerOffset = offset - origin
        let wideSizes = forceZip64 || size >= UInt64(ZipFormat.sentinel32)
        let wideOffset = forceZip64 || UInt64(headerOffset) >= UInt64(ZipFormat.sentinel32)
        let flags: UInt16 = nameBytes.allSatisfy { $0 < 0x80 } ? 0 : ZipFormat.flagUTF8Name
        let size32 = wideSizes ? ZipFormat.sentinel32 : UInt32(size)
        let needed = wideSizes || wideOffset ? Self.versionNeededZip64 : Self.versionNeeded

        var localExtra: [UInt8] = []
        if wideSizes {
            localExtra.appendLittleEndian(ZipFormat.zip64ExtraID)
            localExtra.appendLittleEndian(UInt16(16))
            localExtra.appendLittleEndian(size)
            localExtra.appendLittleEndian(size)
        }
        let paddingStart = offset + ZipFormat.localHeaderSize + nameBytes.count + localExtra.count + 4
        let padding = (alignment - paddingStart % alignment) % alignment
        localExtra.appendLittleEndian(ZipFormat.paddingExtraID)
        localExtra.appendLittleEndian(UInt16(padding))
        localExtra.append(contentsOf: repeatElement(UInt8(ascii: "Z"), count: padding))

        let bufferedBefore = buffer.count
        buffer.appendLittleEndian(ZipFormat.localHeaderSignature)
        buffer.appendLittleEndian(needed)
        buffer.appendLittleEndian(flags)
        buffer.appendLittleEndian(ZipFormat.methodStored)
        buffer.appendLittleEndian(ZipFormat.fixedDOSTime)
        buffer.appendLittleEndian(ZipFormat.fixedDOSDate)
        buffer.appendLittleEndian(crc)
        buffer.appendLittleEndian(size32)
        buffer.appendLittleEndian(size32)
        buffer.appendLittleEndian(UInt16(nameBytes.count))
        buffer.appendLittleEndian(UInt16(localExtra.count))
        buffer.append(contentsOf: nameBytes)
        buffer.append(contentsOf: localExtra)
        let dataOffset = offset + (buffer.count - bufferedBefore)

        if bytes.count <= Self.smallPayload {
            buffer.append(contentsOf: bytes)
            if buffer.count >= Self.bufferFlushSize { try flush(entry: name) }
            payloadProgress?.add(bytes.count)
        } else {
            try flush(entry: name)
            try writeFully(bytes, entry: name, isPayload: true)
        }
        offset = dataOffset + bytes.count

        var centralExtra: [UInt8] = []
        if wideSizes || wideOffset {
            centralExtra.appendLittleEndian(ZipFormat.zip64ExtraID)
            centralExtra.appendLittleEndian(UInt16((wideSizes ? 16 : 0) + (wideOffset ? 8 : 0)))
            if wideSizes {
                centralExtra.appendLittleEndian(size)
                centralExtra.appendLittleEndian(size)
            }
            if wideOffset { centralExtra.appendLittleEndian(UInt64(headerOffset)) }
        }
        centralDirectory.appendLittleEndian(ZipFormat.centralHeaderSignature)
        centralDirectory.appendLittleEndian(Self.versionMadeBy)
        centralDirectory.appendLittleEndian(needed)
        centralDirectory.appendLittleEndian(flags)
        centralDirectory.appendLittleEndian(ZipFormat.methodStored)
        centralDirectory.appendLittleEndian(ZipFormat.fixedDOSTime)
        centralDirectory.appendLittleEndian(ZipFormat.fixedDOSDate)
        centralDirectory.appendLittleEndian(crc)
        centralDirectory.appendLittleEndian(size32)
        centralDirectory.appendLittleEndian(size32)
        centralDirectory.appendLittleEndian(UInt16(nameBytes.count))
        centralDirectory.appendLittleEndian(UInt16(centralExtra.count))
        centralDirectory.appendLittleEndian(UInt16(0))  // comment length
        centralDirectory.appendLittleEndian(UInt16(0))  // disk number start
        centralDirectory.appendLittleEndian(UInt16(0))  // internal attributes
        centralDirectory.appendLittleEndian(Self.externalAttributes)
        centralDirectory.appendLittleEndian(wideOffset ? ZipFormat.sentinel32 : UInt32(headerOffset))
        centralDirectory.append(contentsOf: nameBytes)
        centralDirectory.append(contentsOf: centralExtra)
        entryCount += 1
        return (crc, dataOffset)
    }

    /// Writes the central directory and end records. No entry may be added afterwards.
    ///
    /// The caller still owns the descriptor: syncing and closing it is theirs.
    ///
    /// - Throws: ``CheckpointError``: `.io` if a write fails, `.invalidArgument` if the writer
    ///   already finished or failed.
    func finish() throws {
        try checkOpen(entry: nil)
        let directoryOffset = UInt64(offset - origin)
        let directorySize = UInt64(centralDirectory.count)
        let count = UInt64(entryCount)
        let needsZip64 =
            forceZip64 || count >= UInt64(ZipFormat.sentinel16) || directorySize >= UInt64(ZipFormat.sentinel32)
            || directoryOffset >= UInt64(ZipFormat.sentinel32)

        var tail: [UInt8] = []
        if needsZip64 {
            let recordOffset = directoryOffset + directorySize
            tail.appendLittleEndian(ZipFormat.zip64EndOfCentralDirectorySignature)
            tail.appendLittleEndian(UInt64(ZipFormat.zip64EndOfCentralDirectorySize - 12))
            tail.appendLittleEndian(Self.versionMadeBy)
            tail.appendLittleEndian(Self.versionNeededZip64)
            tail.appendLittleEndian(UInt32(0))  // this disk
            tail.appendLittleEndian(UInt32(0))  // disk with the central directory
            tail.appendLittleEndian(count)
            tail.appendLittleEndian(count)
            tail.appendLittleEndian(directorySize)
            tail.appendLittleEndian(directoryOffset)
            tail.appendLittleEndian(ZipFormat.zip64LocatorSignature)
            tail.appendLittleEndian(UInt32(0))  // disk with the zip64 end record
            tail.appendLittleEndian(recordOffset)
            tail.appendLittleEndian(UInt32(1))  // total disks
        }
        func narrow16(_ value: UInt64) -> UInt16 {
            forceZip64 || value >= UInt64(ZipFormat.sentinel16) ? ZipFormat.sentinel16 : UInt16(value)
        }
        func narrow32(_ value: UInt64) -> UInt32 {
            forceZip64 || value >= UInt64(ZipFormat.sentinel32) ? ZipFormat.sentinel32 : UInt32(value)
        }
        tail.appendLittleEndian(ZipFormat.endOfCentralDirectorySignature)
        tail.appendLittleEndian(UInt16(0))  // this disk
        tail.appendLittleEndian(UInt16(0))  // disk with the central directory
        tail.appendLittleEndian(narrow16(count))
        tail.appendLittleEndian(narrow16(count))
        tail.appendLittleEndian(narrow32(directorySize))
        tail.appendLittleEndian(narrow32(directoryOffset))
        tail.appendLittleEndian(UInt16(0))  // comment length

        try flush(entry: nil)
        try centralDirectory.withUnsafeBytes { try writeFully($0, entry: nil) }
        try tail.withUnsafeBytes { try writeFully($0, entry: nil) }
        offset += centralDirectory.count + tail.count
        centralDirectory = []
        state = .finished
    }

    private func checkOpen(entry: String?) throws {
        switch state {
        case .open: return
        case .finished:
            throw CheckpointError(.invalidArgument, "the zip writer has already finished", file: path, path: entry)
        case .failed:
            throw CheckpointError(.invalidArgument, "the zip writer failed earlier and cannot continue", file: path, path: entry)
        }
    }

    private func flush(entry: String?) throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeFully($0, entry: entry) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes every byte (``FileIO/writeAll(_:_:)``); any failure poisons the writer, since the file
    /// no longer matches what it has recorded. With `startsWriteback`, in pieces of
    /// `writebackBatch`, starting writeback after each.
    private func writeFully(_ bytes: UnsafeRawBufferPointer, entry: String?, isPayload: Bool = false) throws {
        let progress = isPayload ? payloadProgress : nil
        var done = 0
        while done < bytes.count {
            var piece = startsWriteback ? min(bytes.count - done, Self.writebackBatch) : bytes.count - done
            if progress != nil { piece = min(piece, WriteProgress.piece) }
            do {
                try FileIO.writeAll(fileDescriptor, UnsafeRawBufferPointer(rebasing: bytes[done..<(done + piece)]))
            } catch {
                state = .failed
                throw CheckpointError(.io, "cannot write the archive", file: path, path: entry, cause: error)
            }
            done += piece
            progress?.add(piece)
            writtenEnd += piece
            if startsWriteback, writtenEnd - writebackStart >= Self.writebackBatch { startWriteback() }
        }
    }

    /// Requests writeback of the whole pages written since the last request. The page that
    /// holds `writtenEnd` stays out: the next header goes into it, and writing to a page under
    /// writeback either writes it twice or, on devices that need stable pages (integrity
    /// metadata, data checksums: Ceph RBD, iSCSI with data digests), blocks until that page is
    /// on the disk — and as it was queued last, that is when the whole queue has drained, so the
    /// disk then idles while the next entry is copied, once per entry.
    private func startWriteback() {
        let end = writtenEnd & ~(DurableFile.pageSize - 1)
        guard end > writebackStart else { return }
        DurableFile.startWriteback(fileDescriptor, offset: writebackStart, length: end - writebackStart)
        writebackStart = end
    }
}
