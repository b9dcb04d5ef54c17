/// One validated entry of a zip archive's central directory.
package struct ZipEntry: Sendable, Equatable {
    /// The full name (`archive/data/0`), valid UTF-8 and checked to be a safe relative path.
    package var name: String
    /// 0 stored, 8 deflated.
    package var method: UInt16
    /// The CRC-32 of the uncompressed bytes, as the central directory records it.
    package var crc32: UInt32
    /// Bytes of entry data in the file.
    package var compressedSize: Int
    /// Bytes after inflating (equal to `compressedSize` for stored entries).
    package var uncompressedSize: Int
    /// File offset of the entry's local header.
    var localHeaderOffset: Int
    /// File offset of the entry's first data byte (after the local header and its extra field).
    package var dataOffset: Int
}

/// Reads a zip archive from a memory mapping: the central directory is parsed and validated at
/// open; entry data is touched only when asked for.
///
/// The archive is parsed by hand rather than through libzip because zero-copy loading needs the
/// file offset of each entry's data, and no libzip call reports it. libzip stays as a second
/// opinion for `verify` (CheckpointTools' `checkConsistency()`).
package final class ZipReader: Sendable {
    /// The mapping; storages handed out keep it alive after the reader is gone.
    package let file: MappedFile
    /// The entries in central-directory order.
    package let entries: [ZipEntry]
    /// Entry index by name: archives can hold 100k entries, and readers look each one up.
    private let indexByName: [String: Int]
    /// The caps the archive was opened with; ``contents(of:limit:)`` holds entries to them.
    package let limits: ResourceLimits

    /// Maps and opens an archive.
    ///
    /// - Parameters:
    ///   - path: The archive.
    ///   - limits: The resource caps.
    /// - Throws: ``CheckpointError`` if the file cannot be mapped or is not a valid archive.
    package convenience init(path: String, limits: ResourceLimits = .default) throws {
        try self.init(mapping: MappedFile(path: path), limits: limits)
    }

    /// Parses and validates the central directory and every local header of a mapped archive.
    ///
    /// Only the end records, the central directory and the local headers are read; no entry data
    /// page is touched.
    ///
    /// - Parameters:
    ///   - mapping: The mapped archive.
    ///   - limits: The resource caps.
    /// - Throws: ``CheckpointError``: `.notRecognized` (not a zip), `.truncated` (empty or cut
    ///   short), `.corrupt` (inconsistent offsets, counts, overlaps, duplicate names),
    ///   `.outOfBounds` (data past the end of the file), `.unsafeName`, or `.unsupported`
    ///   (multi-disk, encrypted, a method other than stored or deflated); `.truncated` also if
    ///   the file shrank while it was read; `.limitExceeded` for more entries than
    ///   ``ResourceLimits/maximumZipEntries`` or deflated entries that inflate past
    ///   ``ResourceLimits/maximumBytesBeyondFileSize``.
    package convenience init(mapping: MappedFile, limits: ResourceLimits = .default) throws {
        try self.init(mapping: mapping, window: nil, limits: limits)
    }

    /// Opens an archive stored inside a larger file, as DCP stores one torch.save archive per item
    /// in a `.distcp` file: its offsets count from `window.lowerBound`, and its entries' offsets
    /// (so the storages it hands out) are file offsets.
    ///
    /// - Parameters:
    ///   - mapping: The mapped file.
    ///   - window: The archive's bytes; nil for the whole file.
    ///   - limits: The resource caps.
    /// - Throws: As ``init(mapping:limits:)``, for the archive in the window; `.outOfBounds` for a
    ///   window past the end of the file.
    package init(mapping: MappedFile, window: Range<Int>?, limits: ResourceLimits = .default) throws {
        if let window, window.lowerBound < 0 || window.upperBound > mapping.count {
            throw CheckpointError(
                .outOfBounds, "archive lies past the end of the file", file: mapping.path,
                expected: "bytes within 0..<\(mapping.count)", found: "bytes \(window.lowerBound)..<\(window.upperBound)")
        }
        file = mapping
        // The archive's own bytes, tensor data included: what its structure may grow with.
        let limits = limits.effective(fileBytes: window?.count ?? mapping.count)
        let parsed = try mapping.reading { try ZipDirectoryParser(file: mapping, window: window, limits: limits).parse() }
        self.limits = limits
        entries = parsed.entries
        indexByName = parsed.indexByName
    }

    /// The entry with this exact name, or nil.
    ///
    /// - Parameter name: The full entry name (`archive/data.pkl`).
    /// - Returns: The entry, found in constant time.
    package func entry(named name: String) -> ZipEntry? {
        indexByName[name].map { entries[$0] }
    }

    /// The entry with this exact name.
    ///
    /// - Parameter name: The full entry name.
    /// - Returns: The entry.
    /// - Throws: ``CheckpointError`` `.missingEntry` if the archive has no such entry.
    package func requireEntry(named name: String) throws -> ZipEntry {
        guard let entry = entry(named: name) else {
            throw CheckpointError(.missingEntry, "no such entry in the archive", file: file.path, path: name)
        }
        return entry
    }
}
