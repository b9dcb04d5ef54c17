import CSystem
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Atomic, durable file replacement: temp file in the target's directory, fsync, rename, fsync
/// of the directory. On any error the temp file is removed and the old file is untouched.
///
/// The temp file lives in the target's directory because `rename` is atomic only within one
/// file system; it is synced before the rename because otherwise a crash can leave the final
/// name pointing at an empty or partly flushed file; and the directory is synced after, because
/// the rename itself is not durable until it is.
package enum DurableFile {
    /// Writes a file through `body` and moves it into place atomically.
    ///
    /// - Parameters:
    ///   - path: The final path.
    ///   - sync: False skips both fsyncs (still atomic, not durable); for benchmarks and tests.
    ///   - body: Writes the contents to the given file descriptor. It must not close it.
    /// - Throws: What `body` throws, or ``CheckpointError`` `.io` if creating, syncing, closing
    ///   or renaming fails, its cause the failed call's ``SystemCallError`` (`.invalidArgument`
    ///   for a path without a file name). The temp file is
    ///   removed in every failing case before the rename; if only the final directory sync fails,
    ///   the new file is already in place but may not survive a crash.
    package static func write(to path: String, sync: Bool = true, _ body: (Int32) throws -> Void) throws {
        let (directory, name) = try split(path)
        var template = Array(temporaryPathTemplate(directory: directory, name: name).utf8CString)
        let fileDescriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fileDescriptor >= 0 else {
            throw ioError("cannot create a temporary file in \(directory)", path, "mkstemp")
        }
        let temporaryPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var open = true
        var replaced: Int32?
        do {
            _ = fcntl(fileDescriptor, F_SETFD, FD_CLOEXEC)
            try body(fileDescriptor)
            if sync {
                guard fsync(fileDescriptor) == 0 else { throw ioError("cannot fsync \(temporaryPath)", path, "fsync") }
            }
            // mkstemp creates the file 0600; give it the mode a plain create would have.
            guard fchmod(fileDescriptor, 0o666 & ~currentUmask()) == 0 else {
                throw ioError("cannot set the mode of \(temporaryPath)", path, "fchmod")
            }
            open = false
            guard close(fileDescriptor) == 0 else { throw ioError("cannot close \(temporaryPath)", path, "close") }
            replaced = try replace(path, with: temporaryPath)
        } catch {
            if open { close(fileDescriptor) }
            unlink(temporaryPath)
            throw error
        }
        // Not before the directory sync: on a journaling file system that sync commits the running
        // transaction, and freeing the old file's blocks in it (trimming them too, on a file system
        // mounted with `discard`) would make the sync wait for that as well. Closed afterwards, the
        // freeing goes into a later commit that nobody waits for.
        defer { if let replaced { release(replaced) } }
        if sync { try syncDirectory(directory, finalPath: path) }
    }

    /// Replaced files whose last close (which frees their blocks) is still running.
    private static let pendingReleases = NSCondition()
    nonisolated(unsafe) private static var pendingReleaseCount = 0

    /// Closes a replaced or deleted, already unlinked file on another thread: freeing a large
    /// file's blocks takes as long as writing them on some file systems (ext4 mounted with
    /// `discard`: 0.3 s per GiB here), and the caller need not wait for it.
    /// ``waitForReleasedFiles()`` waits for every file released this way.
    package static func release(_ descriptor: Int32) {
        pendingReleases.lock()
        pendingReleaseCount += 1
        pendingReleases.unlock()
        Thread.detachNewThread {
            close(descriptor)
            pendingReleases.lock()
            pendingReleaseCount -= 1
            pendingReleases.broadcast()
            pendingReleases.unlock()
        }
    }

    /// Waits until the files replaced by earlier writes (or given to ``release(_:)``) are closed
    /// and their blocks freed. A benchmark that deletes its baseline's old file before timing it
    /// calls this before timing a save, so that neither run pays for freeing the previous one's
    /// file.
    package static func waitForReleasedFiles() {
        pendingReleases.lock()
        while pendingReleaseCount > 0 { pendingReleases.wait() }
        pendingReleases.unlock()
    }

    /// Moves the finished temp file to `path` atomically.
    ///
    /// Replacing an existing file with a plain `rename` does two costly things inside the call on
    /// ext4: it frees the old file's blocks, and (its `auto_da_alloc` heuristic) starts writeback of
    /// the new file — together ~0.45 s per GiB measured here, as long as writing the file. Where
    /// Linux can exchange two names atomically (`renameat2` with `RENAME_EXCHANGE`), the old file is
    /// swapped to the temp name, unlinked while we still hold it open, and its last close — which
    /// frees its blocks — is left to the caller, who does it on another thread. The final name
    /// always refers to a complete file, old or new, exactly as with `rename`.
    ///
    /// - Returns: The replaced file's descriptor (already unlinked) for the caller to close, or
    ///   nil when there was none to keep.
    static func replace(_ path: String, with temporaryPath: String) throws -> Int32? {
        let old = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        var info = stat()
        if old >= 0, fstat(old, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, ckpt_rename_exchange(temporaryPath, path) == 0 {
            unlink(temporaryPath)
            return old
        }
        if old >= 0 { close(old) }
        guard rename(temporaryPath, path) == 0 else {
            throw ioError("cannot rename \(temporaryPath) to the final name", path, "rename")
        }
        return nil
    }

    /// Starts writeback of a range without waiting for it (Linux `sync_file_range` with
    /// `SYNC_FILE_RANGE_WRITE`), so the final fsync finds most data already on its way to disk and
    /// the disk works while later blobs are still being written. Best effort: a no-op elsewhere.
    static func startWriteback(_ fd: Int32, offset: Int, length: Int) {
        guard length > 0 else { return }
        _ = ckpt_start_writeback(fd, Int64(offset), Int64(length))
    }

    /// The unit of writeback (4 KiB on x86; 16 or 64 KiB on some ARM kernels).
    static let pageSize: Int = {
        let size = Int(sysconf(Int32(_SC_PAGESIZE)))
        return size > 0 && size & (size - 1) == 0 ? size : 1 << 12
    }()

    /// The directory and file name of `path` (`.` for a bare name).
    static func split(_ path: String) throws -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else {
            guard !path.isEmpty else {
                throw CheckpointError(.invalidArgument, "empty path", file: path, expected: "a file path")
            }
            return (".", path)
        }
        let name = String(path[path.index(after: slash)...])
        guard !name.isEmpty, name != ".", name != ".." else {
            throw CheckpointError(.invalidArgument, "path does not name a file", file: path, expected: "a file path")
        }
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        return (directory, name)
    }

    /// A hidden name next to the target, so a crash leaves only an obvious dot-file behind and
    /// directory listings of checkpoints stay clean.
    static func temporaryPathTemplate(directory: String, name: String) -> String {
        // Keep the whole name within NAME_MAX (255 bytes) after the prefix and suffix.
        var stem = name
        while stem.utf8.count > 200 { stem.removeLast() }
        let separator = directory.hasSuffix("/") ? "" : "/"
        return directory + separator + "." + stem + ".tmp-XXXXXX"
    }

    /// The process's umask, read without changing it where the system allows: `umask()` can only
    /// be read by setting it, which races with other threads creating files.
    static func currentUmask() -> mode_t {
        #if os(Linux)
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
            let value = mode_t(line.dropFirst("Umask:".count).trimmingCharacters(in: .whitespaces), radix: 8)
        {
            return value
        }
        #endif
        let previous = umask(0o022)
        umask(previous)
        return previous
    }

    private static func syncDirectory(_ directory: String, finalPath: String) throws {
        let fileDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fileDescriptor >= 0 else { throw ioError("cannot open directory \(directory) to sync it", finalPath, "open") }
        defer { close(fileDescriptor) }
        guard fsync(fileDescriptor) == 0 else { throw ioError("cannot fsync directory \(directory)", finalPath, "fsync") }
    }

    /// The error of the call that just failed; read before anything else can change errno.
    private static func ioError(_ action: String, _ path: String, _ systemCall: String) -> CheckpointError {
        CheckpointError(.io, action, file: path, systemCall: SystemCallError(systemCall: systemCall, errno: errno))
    }
}
