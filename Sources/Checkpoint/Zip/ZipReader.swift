// OWNER: zip helper. Interface agreed with the archive layer; bodies to be implemented.

/// One validated entry of a zip archive's central directory.
public struct ZipEntry: Sendable, Equatable {
    public var name: String
    /// 0 stored, 8 deflated.
    public var method: UInt16
    public var crc32: UInt32
    public var compressedSize: Int
    public var uncompressedSize: Int
    public var localHeaderOffset: Int
    /// File offset of the entry's first data byte (after the local header and its extra field).
    public var dataOffset: Int
}

/// Reads a zip archive from a memory mapping: the central directory is parsed and validated at
/// open; entry data is touched only when asked for.
public final class ZipReader: Sendable {
    public let file: MappedFile
    public let entries: [ZipEntry]

    public convenience init(path: String) throws {
        try self.init(mapping: MappedFile(path: path))
    }

    public init(mapping: MappedFile) throws {
        file = mapping
        entries = []
        throw CheckpointError(.unsupported, "zip reader not implemented yet", file: mapping.path)
    }

    public func entry(named name: String) -> ZipEntry? {
        entries.first { $0.name == name }
    }

    /// The entry's bytes as a storage: a zero-copy window for stored entries, inflated into
    /// owned memory for deflated ones. With `verifyCRC`, the CRC-32 check runs on first access.
    public func storage(for entry: ZipEntry, verifyCRC: Bool) throws -> Storage {
        throw CheckpointError(.unsupported, "zip reader not implemented yet", file: file.path, path: entry.name)
    }

    /// A small entry's bytes (pickle, manifest), CRC-32 always verified.
    public func contents(of entry: ZipEntry) throws -> [UInt8] {
        throw CheckpointError(.unsupported, "zip reader not implemented yet", file: file.path, path: entry.name)
    }
}
