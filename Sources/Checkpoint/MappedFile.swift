#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory; pages are read from disk only when touched.
///
/// Storages that view a checkpoint keep the mapping alive, so tensors stay valid after the
/// reader that produced them is gone.
public final class MappedFile: Sendable {
    /// The path the file was opened from (for error messages).
    public let path: String
    /// The file's size in bytes.
    public let count: Int
    nonisolated(unsafe) private let base: UnsafeRawPointer?

    /// Maps a file read-only.
    ///
    /// - Parameter path: The file to map.
    /// - Throws: ``CheckpointError`` with code `.io` if the file cannot be opened or mapped.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CheckpointError(.io, "cannot open: \(String(cString: strerror(errno)))", file: path)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw CheckpointError(.io, "cannot stat: \(String(cString: strerror(errno)))", file: path)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw CheckpointError(.io, "not a regular file", file: path)
        }
        count = Int(info.st_size)
        if count == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw CheckpointError(.io, "cannot mmap: \(String(cString: strerror(errno)))", file: path)
        }
        base = UnsafeRawPointer(mapped)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// The whole file's bytes. Valid as long as this object lives.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// A bounds-checked slice of the file.
    ///
    /// - Parameters:
    ///   - offset: First byte.
    ///   - length: Number of bytes.
    /// - Returns: The bytes, valid as long as this object lives.
    /// - Throws: ``CheckpointError`` `.outOfBounds` if the range does not lie inside the file.
    public func slice(offset: Int, length: Int) throws -> UnsafeRawBufferPointer {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else {
            throw CheckpointError(
                .outOfBounds, "byte range past the end of the file", file: path,
                expected: "range within \(count) bytes", found: "offset \(offset), length \(length)")
        }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length])
    }
}
