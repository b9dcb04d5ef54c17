import CSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory; pages are read from disk only when touched.
///
/// Storages that view a checkpoint keep the mapping alive, so tensors stay valid after the
/// reader that produced them is gone.
///
/// If the file shrinks while it is mapped (truncated, or rewritten in place as `torch.save` does),
/// touching a page past its new end would end the process with SIGBUS. The mapping is registered
/// with a handler that maps zeros there instead and marks it (Sources/CSystem/mapping_guard.c);
/// every read of the mapped bytes runs inside ``reading(_:)``, which turns the mark into a
/// `.truncated` error.
package final class MappedFile: Sendable {
    /// The path the file was opened from (for error messages).
    package let path: String
    /// The file's size in bytes.
    package let count: Int
    nonisolated(unsafe) private let base: UnsafeRawPointer?
    /// Kept open for ``read(offset:count:)``.
    private let descriptor: Int32
    /// The SIGBUS handler's record of this mapping; nil for an empty file (or no room to record it).
    nonisolated(unsafe) private let guardHandle: OpaquePointer?

    /// Maps a file read-only.
    ///
    /// - Parameter path: The file to map.
    /// - Throws: ``CheckpointError`` with code `.io` if the file cannot be opened or mapped; its
    ///   ``CheckpointError/cause`` is the failed call's ``SystemCallError``.
    package init(path: String) throws {
        self.path = path
        let fd: Int32
        do {
            fd = try FileIO.open(path, O_RDONLY | O_CLOEXEC)
        } catch {
            throw CheckpointError(.io, "cannot open", file: path, systemCall: error)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            // Read before close, which may overwrite errno.
            let failure = SystemCallError(systemCall: "fstat", errno: errno)
            close(fd)
            throw CheckpointError(.io, "cannot stat", file: path, systemCall: failure)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw CheckpointError(.io, "not a regular file", file: path)
        }
        descriptor = fd
        count = Int(info.st_size)
        if count == 0 {
            base = nil
            guardHandle = nil
            return
        }
        let mapped = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            // Read before close, which may overwrite errno.
            let failure = SystemCallError(systemCall: "mmap", errno: errno)
            close(fd)
            throw CheckpointError(.io, "cannot mmap", file: path, systemCall: failure)
        }
        base = UnsafeRawPointer(mapped)
        ckpt_mapping_guard_install()
        guardHandle = ckpt_mapping_register(mapped, count)
    }

    deinit {
        ckpt_mapping_unregister(guardHandle)
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
        close(descriptor)
    }

    /// Runs `body`, which reads the mapped bytes, and reports the file as truncated if a read of
    /// the mapping faulted before or during it: whatever `body` returned was computed from zeros
    /// put in place of the missing pages, whatever it threw is a consequence.
    ///
    /// A write from the mapping to another file fails with EFAULT instead of faulting (the kernel
    /// reads the pages); an error from `body` while the file is shorter than mapped is reported as
    /// the truncation too.
    ///
    /// - Parameter body: Reads the bytes.
    /// - Returns: What `body` returns.
    /// - Throws: ``CheckpointError`` `.truncated` naming the file, its mapped size and its size now;
    ///   otherwise what `body` throws.
    package func reading<R>(_ body: () throws -> R) throws -> R {
        try checkIntact()
        let result = Result { try body() }
        try checkIntact()
        if case .failure = result, currentSize().map({ $0 < count }) ?? false { try shrank() }
        return try result.get()
    }

    /// Throws `.truncated` if a read of the mapping has faulted.
    package func checkIntact() throws {
        if ckpt_mapping_faulted(guardHandle) != 0 { try shrank() }
    }

    private func shrank() throws -> Never {
        throw CheckpointError(
            .truncated, "the file shrank while it was being read (truncated, or rewritten in place)", file: path,
            expected: "\(count) bytes, as when it was opened", found: currentSize().map { "\($0) bytes" } ?? "unknown size")
    }

    /// The file's size now, through the descriptor (the name may point elsewhere by now).
    private func currentSize() -> Int? {
        var info = stat()
        return fstat(descriptor, &info) == 0 ? Int(info.st_size) : nil
    }

    /// Copies a few bytes with `pread` instead of touching the mapping.
    ///
    /// For small reads scattered over a large file (a zip's local headers) a page fault maps a
    /// whole fault-around window of pages, which must later be unmapped too; measured here on a
    /// 4 GiB archive of 4608 entries, that was a third of the time to open it.
    ///
    /// - Parameters:
    ///   - offset: First byte.
    ///   - count: Bytes wanted.
    /// - Returns: The bytes; fewer than `count` only at the end of the file.
    /// - Throws: ``CheckpointError`` `.io` if the read fails.
    func read(offset: Int, count: Int) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= self.count else { return [] }
        let wanted = min(count, self.count - offset)
        var buffer = [UInt8](repeating: 0, count: wanted)
        let done: Int
        do {
            done = try buffer.withUnsafeMutableBytes { (bytes) throws(SystemCallError) -> Int in
                try FileIO.readAll(descriptor, into: bytes, at: offset)
            }
        } catch {
            throw CheckpointError(.io, "cannot read", file: path, cause: error)
        }
        guard done == wanted else {
            throw CheckpointError(.truncated, "the file ended while being read", file: path,
                                  expected: "\(wanted) bytes at offset \(offset)", found: "\(done)")
        }
        return buffer
    }

    /// The whole file's bytes. Valid as long as this object lives; read them inside
    /// ``reading(_:)``.
    package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Drops the pages under `range` from this process's mapping; they stay in the page cache, and
    /// touching them again maps them again. A reader streaming through a large file calls this
    /// behind itself, so its resident size stays what it holds at once, not what it has read.
    ///
    /// The range is widened to whole 2 MiB windows of address space. One page fault maps more than
    /// its page: the aligned 64 KiB around it (fault-around), or on recent kernels a whole large
    /// folio of the page cache, up to 2 MiB (seen on Linux 6.18 with ext4). So a reader maps pages
    /// beyond its range on both sides, which a release of its range alone would leave mapped: on a
    /// 4 GiB diff in 1 MiB chunks, 240 MB and growing. The mapping is read-only and never written,
    /// so dropping a page another thread is reading costs that thread a page fault, never data.
    ///
    /// - Parameter range: Bytes of ``bytes`` (a pointer range inside the mapping).
    func releasePages(_ range: UnsafeRawBufferPointer) {
        guard let base, let start = range.baseAddress, range.count > 0 else { return }
        let window = MappedFile.releaseWindow
        let page = MappedFile.pageSize
        let mappingStart = Int(bitPattern: base)
        let mappingEnd = mappingStart + (count + page - 1) / page * page
        let first = max(Int(bitPattern: start) / window * window, mappingStart)
        let last = min((Int(bitPattern: start) + range.count + window - 1) / window * window, mappingEnd)
        guard last > first, let address = UnsafeMutableRawPointer(bitPattern: first) else { return }
        _ = madvise(address, last - first, MADV_DONTNEED)
    }

    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    /// A PMD's span with 4 KiB pages, the largest unit a fault maps at once there.
    private static let releaseWindow = max(pageSize, 2 << 20)

    /// A bounds-checked slice of the file.
    ///
    /// - Parameters:
    ///   - offset: First byte.
    ///   - length: Number of bytes.
    /// - Returns: The bytes, valid as long as this object lives.
    /// - Throws: ``CheckpointError`` `.outOfBounds` if the range does not lie inside the file.
    func slice(offset: Int, length: Int) throws -> UnsafeRawBufferPointer {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else {
            throw CheckpointError(
                .outOfBounds, "byte range past the end of the file", file: path,
                expected: "range within \(count) bytes", found: "offset \(offset), length \(length)")
        }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length])
    }
}
