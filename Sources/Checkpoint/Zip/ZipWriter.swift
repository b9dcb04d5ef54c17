// OWNER: zip helper. Interface agreed with the archive layer; bodies to be implemented.

/// Writes a zip archive sequentially to a file descriptor: every entry stored (method 0), data
/// aligned, zip64 when needed, deterministic bytes (fixed timestamps).
public final class ZipWriter {
    public init(fileDescriptor: Int32, path: String) {}

    /// Appends a stored entry whose data starts at a multiple of `alignment` in the file.
    ///
    /// - Returns: The CRC-32 of the bytes and the file offset of the data.
    @discardableResult
    public func addEntry(name: String, bytes: UnsafeRawBufferPointer, alignment: Int = 64) throws -> (crc32: UInt32, dataOffset: Int) {
        throw CheckpointError(.unsupported, "zip writer not implemented yet", path: name)
    }

    /// Writes the central directory and end records. No entry may be added afterwards.
    public func finish() throws {
        throw CheckpointError(.unsupported, "zip writer not implemented yet")
    }
}

/// CRC-32 (the zip polynomial), computed with libdeflate's PCLMUL implementation.
public enum CRC32 {
    public static func checksum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        fatalError("not implemented yet")
    }
}

/// Atomic, durable file replacement: temp file in the target's directory, fsync, rename, fsync
/// of the directory. On any error the temp file is removed and the old file is untouched.
public enum DurableFile {
    /// - Parameters:
    ///   - path: The final path.
    ///   - sync: False skips both fsyncs (still atomic, not durable); for benchmarks and tests.
    ///   - body: Writes the contents to the given file descriptor.
    public static func write(to path: String, sync: Bool = true, _ body: (Int32) throws -> Void) throws {
        throw CheckpointError(.unsupported, "durable write not implemented yet", file: path)
    }
}
