import CDeflate
import Foundation

extension ZipReader {
    /// The entry's bytes as a storage: a zero-copy window for stored entries, inflated into
    /// owned memory for deflated ones.
    ///
    /// A stored entry's CRC-32 is checked lazily, the first time the storage's bytes are read, so
    /// opening a large checkpoint stays cheap. A deflated entry is inflated now, into exactly its
    /// declared size, and its CRC checked at once while the bytes are fresh.
    ///
    /// - Parameters:
    ///   - entry: An entry of this archive.
    ///   - verifyCRC: Check the bytes against the entry's CRC-32.
    /// - Returns: The storage.
    /// - Throws: ``CheckpointError``: `.invalidArgument` for an entry not from this archive,
    ///   `.corrupt` for a bad deflate stream or a size mismatch, `.outOfBounds` for a deflated
    ///   entry larger than physical memory, `.checksumMismatch` (deflated entries here; stored
    ///   entries on first read), `.truncated` if the file shrank while it was read.
    package func storage(for entry: ZipEntry, verifyCRC: Bool) throws -> Storage {
        try checkOwnership(of: entry)
        if entry.method == ZipFormat.methodStored {
            let path = file.path
            let checksum = verifyCRC
                ? Storage.ExpectedChecksum(crc32: entry.crc32) { found in ZipReader.checksumMismatch(entry, found: found, file: path) }
                : nil
            return try Storage(mapping: file, offset: entry.dataOffset, byteCount: entry.uncompressedSize, checksum: checksum)
        }
        // Storage traps when an allocation fails; a declared size beyond physical memory (still
        // possible within deflate's ratio for a large file) is refused here instead.
        let memory = ProcessInfo.processInfo.physicalMemory
        guard UInt64(entry.uncompressedSize) <= memory else {
            throw CheckpointError(
                .outOfBounds, "deflated entry is larger than physical memory", file: file.path, path: entry.name,
                expected: "at most \(memory) bytes", found: "\(entry.uncompressedSize) bytes")
        }
        let storage = Storage(byteCount: entry.uncompressedSize)
        try storage.withUnsafeMutableBytes { output in
            try file.reading { try inflate(entry, into: output) }
            if verifyCRC { try ZipReader.verifyChecksum(UnsafeRawBufferPointer(output), of: entry, file: file.path) }
        }
        return storage
    }

    /// A small entry's bytes (pickle, manifest), CRC-32 always verified.
    ///
    /// - Parameters:
    ///   - entry: An entry of this archive.
    ///   - limit: The cap of ``limits`` the entry is held to (``ResourceLimits/maximumPickleBytes``
    ///     for pickles and text, ``ResourceLimits/maximumJSONBytes`` for a manifest), so that a
    ///     hostile size cannot force a huge allocation.
    /// - Returns: A copy of the (inflated) bytes.
    /// - Throws: ``CheckpointError``: `.limitExceeded` above the cap, `.corrupt` for a bad deflate
    ///   stream, `.checksumMismatch`, `.invalidArgument` for an entry not from this archive,
    ///   `.truncated` if the file shrank while it was read.
    package func contents(of entry: ZipEntry, limit: ResourceLimits.Name = .maximumPickleBytes) throws -> [UInt8] {
        try checkOwnership(of: entry)
        try limits.check(limit, entry.uncompressedSize, what: "entry bytes", file: file.path, path: entry.name)
        let bytes: [UInt8] = try file.reading {
            if entry.method == ZipFormat.methodStored {
                // Copied a window at a time, each released from the mapping once copied: a 200 MB
                // pickle would otherwise be resident twice, mapped and copied.
                let source = try file.slice(offset: entry.dataOffset, length: entry.uncompressedSize)
                return [UInt8](unsafeUninitializedCapacity: source.count) { buffer, initialized in
                    let window = 8 << 20
                    for start in stride(from: 0, to: source.count, by: window) {
                        let part = UnsafeRawBufferPointer(rebasing: source[start..<min(start + window, source.count)])
                        UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[start...]).copyMemory(from: part)
                        file.releasePages(part)
                    }
                    initialized = source.count
                }
            }
            return try [UInt8](unsafeUninitializedCapacity: entry.uncompressedSize) { buffer, initialized in
                try inflate(entry, into: UnsafeMutableRawBufferPointer(buffer))
                initialized = entry.uncompressedSize
            }
        }
        try bytes.withUnsafeBytes { try ZipReader.verifyChecksum($0, of: entry, file: file.path) }
        return bytes
    }

    /// Callers pass entries back in; one built by hand could point anywhere, so only this
    /// archive's validated entries are accepted.
    private func checkOwnership(of entry: ZipEntry) throws {
        guard self.entry(named: entry.name) == entry else {
            throw CheckpointError(
                .invalidArgument, "entry does not belong to this archive", file: file.path, path: entry.name)
        }
    }

    static func verifyChecksum(_ bytes: UnsafeRawBufferPointer, of entry: ZipEntry, file: String) throws {
        let found = CRC32.checksum(bytes)
        guard found == entry.crc32 else { throw checksumMismatch(entry, found: found, file: file) }
    }

    private static func checksumMismatch(_ entry: ZipEntry, found: UInt32, file: String) -> CheckpointError {
        CheckpointError(
            .checksumMismatch, "bytes do not match the entry's CRC-32", file: file, path: entry.name,
            expected: CRC32.hex(entry.crc32), found: CRC32.hex(found))
    }

    /// Inflates a deflated entry straight from the mapping into `output`, which holds exactly
    /// the declared size: a stream that would write more is stopped at the buffer's end and
    /// reported, so a deflate bomb never allocates beyond what the directory declared.
    private func inflate(_ entry: ZipEntry, into output: UnsafeMutableRawBufferPointer) throws {
        precondition(output.count == entry.uncompressedSize)
        let input = try file.slice(offset: entry.dataOffset, length: entry.compressedSize)
        if input.isEmpty && output.isEmpty { return }
        // The inflated copy is what the reader keeps; the compressed pages need not stay resident
        // too (RSS above the file's size is what ResourceLimits.maximumBytesBeyondFileSize bounds).
        defer { file.releasePages(input) }
        guard let decompressor = libdeflate_alloc_decompressor() else {
            throw CheckpointError(.io, "cannot allocate a deflate decompressor", file: file.path, path: entry.name)
        }
        defer { libdeflate_free_decompressor(decompressor) }
        // libdeflate wants non-null pointers even for empty buffers.
        var placeholder: UInt8 = 0
        let produced = try withUnsafeMutablePointer(to: &placeholder) { placeholderPointer in
            let inputBase = input.baseAddress ?? UnsafeRawPointer(placeholderPointer)
            let outputBase = output.baseAddress ?? UnsafeMutableRawPointer(placeholderPointer)
            var consumed = 0
            var produced = 0
            let result = libdeflate_deflate_decompress_ex(
                decompressor, inputBase, input.count, outputBase, output.count, &consumed, &produced)
            switch result {
            case LIBDEFLATE_SUCCESS:
                return produced
            case LIBDEFLATE_INSUFFICIENT_SPACE:
                throw CheckpointError(
                    .corrupt, "entry inflates to more than its declared size", file: file.path, path: entry.name,
                    expected: "\(entry.uncompressedSize) bytes", found: "more")
            default:
                throw CheckpointError(
                    .corrupt, "invalid deflate stream", file: file.path, path: entry.name,
                    expected: "a deflate stream of \(entry.compressedSize) bytes", found: "libdeflate result \(result.rawValue)")
            }
        }
        guard produced == entry.uncompressedSize else {
            throw CheckpointError(
                .corrupt, "entry inflates to a different size than declared", file: file.path, path: entry.name,
                expected: "\(entry.uncompressedSize) bytes", found: "\(produced) bytes")
        }
    }
}
