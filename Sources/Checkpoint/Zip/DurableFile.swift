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
///
/// What sits at the output path decides how it is written:
/// - nothing, or a regular file: replaced atomically as above.
/// - a symlink (or a chain of them): followed to its final target, each relative link relative to
///   the link's own directory, and that target is replaced atomically in *its* directory, so the
///   links survive. A dangling chain creates the file it points to.
/// - a character or block device or a FIFO (`/dev/null`, a tty, a named pipe): opened for writing
///   and streamed to; no temp file, no rename, and an fsync the device does not support is not an
///   error. Every writer here writes sequentially, so a descriptor that cannot seek is enough.
/// - `/dev/stdin`, `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` or `/proc/self/fd/N`: written through
///   this process's descriptor N as it is (a pipe, a socket, a tty, or the file the shell opened,
///   at its offset and in its mode), never replaced.
/// - a directory, a socket, anything else: refused with `.invalidArgument` naming what was found.
///
/// Streamed writes are not atomic: a failure leaves what was written so far.
///
/// A temp file is registered before it is created and unregistered once renamed or removed; the
/// first atomic write installs handlers (``installSignalCleanup()``) that remove registered temp
/// files when SIGHUP, SIGINT or SIGTERM ends the process, or when it calls `exit`.
package enum DurableFile {
    /// Writes a file through `body` and moves it into place atomically (or streams it to a device,
    /// FIFO or descriptor; see the type's documentation).
    ///
    /// - Parameters:
    ///   - path: The final path.
    ///   - sync: False skips both fsyncs (still atomic, not durable); for benchmarks and tests.
    ///   - body: Writes the contents to the given file descriptor, sequentially from its current
    ///     position (no seeking, no `pwrite`: the descriptor may be a pipe). It must not close it.
    /// - Throws: What `body` throws, or ``CheckpointError`` `.io` if examining the path, creating,
    ///   syncing, closing or renaming fails, its cause the failed call's ``SystemCallError``;
    ///   `.invalidArgument` for a path without a file name or one that names a directory, a
    ///   socket or another file that cannot be written. The temp file is removed in every failing
    ///   case before the rename; if only the final directory sync fails, the new file is already in
    ///   place but may not survive a crash.
    package static func write(to path: String, sync: Bool = true, _ body: (Int32) throws -> Void) throws {
        switch try destination(of: path) {
        case .file(let target):
            try replace(target, requestedPath: path, sync: sync, body)
        case .descriptor(let descriptor):
            try stream(to: descriptor, path: path, sync: sync, body)
        case .special:
            let descriptor: Int32
            do {
                descriptor = try FileIO.open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY)
            } catch {
                throw CheckpointError(.io, "cannot open for writing", file: path, systemCall: error)
            }
            defer { close(descriptor) }
            var info = stat()
            guard fstat(descriptor, &info) == 0 else { throw ioError("cannot examine", path, "fstat") }
            guard [S_IFCHR, S_IFBLK, S_IFIFO].contains(info.st_mode & S_IFMT) else {
                // Swapped since it was examined: writing a file in place would not be atomic.
                throw CheckpointError(
                    .invalidArgument, "the output path changed while it was opened", file: path,
                    expected: "a device or FIFO", found: refusedKind(info.st_mode) ?? "a regular file")
            }
            try stream(to: descriptor, path: path, sync: sync, body)
        }
    }

    /// How a path is written.
    enum Destination: Equatable {
        /// Replaced atomically: the final name after following symlinks.
        case file(String)
        /// A device or FIFO, opened by the path and streamed to.
        case special
        /// One of this process's descriptors, named by `/dev/stdout`, `/dev/fd/N` and the like.
        case descriptor(Int32)
    }

    /// What to do with `path`; see the type's documentation.
    static func destination(of path: String) throws -> Destination {
        if let descriptor = ownDescriptor(path) {
            guard fcntl(descriptor, F_GETFD) != -1 else {
                throw ioError("cannot write to descriptor \(descriptor)", path, "fcntl")
            }
            return .descriptor(descriptor)
        }
        _ = try split(path)
        var info = stat()
        guard stat(path, &info) == 0 else {
            // Nothing there, or a dangling symlink: create what it names.
            guard errno == ENOENT else { throw ioError("cannot examine the output path", path, "stat") }
            return .file(try followLinks(path))
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            let target = try followLinks(path)
            // A link in /proc (/proc/self/fd/N, /proc/PID/root) reads as a name that is not the file.
            var targetInfo = stat()
            guard lstat(target, &targetInfo) == 0, targetInfo.st_dev == info.st_dev, targetInfo.st_ino == info.st_ino else {
                throw CheckpointError(
                    .invalidArgument, "the symlinks at the output path do not lead to a file name that can be replaced",
                    file: path, found: target)
            }
            return .file(target)
        case S_IFCHR, S_IFBLK, S_IFIFO:
            return .special
        default:
            throw CheckpointError(
                .invalidArgument, "cannot write over \(refusedKind(info.st_mode) ?? "this file")", file: path,
                expected: "a regular file, a symlink to one, a device or a FIFO")
        }
    }

    /// What a file that cannot be written over is, or nil if it can be.
    private static func refusedKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO: nil
        case S_IFDIR: "a directory"
        case S_IFSOCK: "a socket"
        default: "a special file"
        }
    }

    /// The descriptor `/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N` and the like name, if `path` is
    /// such a name.
    static func ownDescriptor(_ path: String) -> Int32? {
        switch path {
        case "/dev/stdin": return 0
        case "/dev/stdout": return 1
        case "/dev/stderr": return 2
        default:
            for prefix in ["/dev/fd/", "/proc/self/fd/"] where path.hasPrefix(prefix) {
                let number = path.dropFirst(prefix.count)
                guard !number.isEmpty, number.allSatisfy(\.isASCII), number.allSatisfy(\.isNumber), number.count < 10 else { return nil }
                return Int32(number)
            }
            return nil
        }
    }

    /// The name a chain of symlinks at `path` ends at: the first name that is not a symlink, or
    /// that does not exist. Relative links are relative to the directory of the link.
    static func followLinks(_ path: String) throws -> String {
        var current = path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0 else {
                guard errno == ENOENT else { throw ioError("cannot examine \(current)", path, "lstat") }
                return current
            }
            guard info.st_mode & S_IFMT == S_IFLNK else { return current }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlink(current, &buffer, buffer.count - 1)
            guard length > 0 else { throw ioError("cannot read the symlink \(current)", path, "readlink") }
            let target = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("/") {
                current = target
            } else {
                let directory = try split(current).directory
                current = (directory.hasSuffix("/") ? directory : directory + "/") + target
            }
        }
        throw CheckpointError(.io, "cannot follow the symlinks", file: path, systemCall: SystemCallError(systemCall: "readlink", errno: ELOOP))
    }

    /// Writes through a descriptor that is not replaced: a device, a FIFO, a descriptor the process
    /// already has.
    private static func stream(to descriptor: Int32, path: String, sync: Bool, _ body: (Int32) throws -> Void) throws {
        try body(descriptor)
        guard sync else { return }
        do {
            try FileIO.sync(descriptor)
        } catch {
            // Pipes, ttys and sockets cannot be synced (EINVAL, EROFS, ENOTSUP): nothing to make durable.
            guard [EINVAL, EROFS, ENOTSUP, EOPNOTSUPP].contains(error.errno) else {
                throw CheckpointError(.io, "cannot fsync", file: path, systemCall: error)
            }
        }
    }

    /// The atomic write: a temp file next to `target`, renamed over it.
    private static func replace(_ target: String, requestedPath path: String, sync: Bool, _ body: (Int32) throws -> Void) throws {
        installSignalCleanup()
        let (directory, name) = try split(target)
        let (fileDescriptor, temporaryPath, slot) = try createTemporaryFile(directory: directory, name: name, for: path)
        var open = true
        var replaced: Int32?
        do {
            try body(fileDescriptor)
            if sync {
                do {
                    try FileIO.sync(fileDescriptor)
                } catch {
                    throw CheckpointError(.io, "cannot fsync \(temporaryPath)", file: path, systemCall: error)
                }
            }
            // The temp file is created 0600; give it the mode a plain create would have.
            guard fchmod(fileDescriptor, 0o666 & ~currentUmask()) == 0 else {
                throw ioError("cannot set the mode of \(temporaryPath)", path, "fchmod")
            }
            open = false
            do {
                try FileIO.close(fileDescriptor)
            } catch {
                throw CheckpointError(.io, "cannot close \(temporaryPath)", file: path, systemCall: error)
            }
            replaced = try replace(target, with: temporaryPath)
            ckpt_cleanup_unregister(slot)
        } catch {
            if open { close(fileDescriptor) }
            unlink(temporaryPath)
            ckpt_cleanup_unregister(slot)
            throw error
        }
        // Not before the directory sync: on a journaling file system that sync commits the running
        // transaction, and freeing the old file's blocks in it (trimming them too, on a file system
        // mounted with `discard`) would make the sync wait for that as well. Closed afterwards, the
        // freeing goes into a later commit that nobody waits for.
        defer { if let replaced { release(replaced) } }
        if sync { try syncDirectory(directory, finalPath: path) }
    }

    /// Installs, once per process, the handlers that remove in-flight temp files when SIGHUP,
    /// SIGINT or SIGTERM ends the process or it calls `exit`.
    ///
    /// A library must be polite with signals: a signal the process ignores stays ignored; a handler
    /// the host installed before is kept and called in place of the cleanup (the host decides what
    /// the signal means; a trainer that saves on SIGTERM must not see its save's temp file vanish);
    /// a handler installed afterwards replaces this one. Only when the default action is about to
    /// end the process are the temp files removed, then the default action is taken. Called by
    /// the first atomic write; a program may call it at start.
    package static func installSignalCleanup() {
        _ = signalCleanupInstalled
    }

    private static let signalCleanupInstalled: Void = ckpt_cleanup_install()

    /// How many temp files are registered for removal on a signal now (in-flight atomic writes).
    package static var registeredTemporaryFileCount: Int { Int(ckpt_cleanup_registered_count()) }

    /// Creates a new temp file next to the target, registered for removal on a signal *before* it
    /// exists, so there is no instant in which a signal could leave it behind.
    package static func createTemporaryFile(directory: String, name: String, for path: String) throws -> (Int32, String, Int32) {
        // Absolute, so that the handler finds it even if the process changes directory meanwhile.
        let workingDirectory = directory.hasPrefix("/") ? "" : FileManager.default.currentDirectoryPath + "/"
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            let temporaryPath = temporaryPath(directory: directory, name: name, using: &generator)
            let slot = ckpt_cleanup_register(workingDirectory + temporaryPath)
            do {
                let fileDescriptor = try FileIO.open(temporaryPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o600)
                return (fileDescriptor, temporaryPath, slot)
            } catch {
                ckpt_cleanup_unregister(slot)
                guard error.errno == EEXIST else {
                    throw CheckpointError(.io, "cannot create a temporary file in \(directory)", file: path, systemCall: error)
                }
            }
        }
        throw CheckpointError(
            .io, "cannot create a temporary file in \(directory)", file: path,
            systemCall: SystemCallError(systemCall: "open", errno: EEXIST))
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
    /// directory listings of checkpoints stay clean: `.NAME.tmp-` and six random letters or digits.
    static func temporaryPath(directory: String, name: String, using generator: inout some RandomNumberGenerator) -> String {
        // Keep the whole name within NAME_MAX (255 bytes) after the prefix and suffix.
        var stem = name
        while stem.utf8.count > 200 { stem.removeLast() }
        let separator = directory.hasSuffix("/") ? "" : "/"
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        let suffix = String((0..<6).map { _ in letters[Int.random(in: 0..<letters.count, using: &generator)] })
        return directory + separator + "." + stem + ".tmp-" + suffix
    }

    /// The process's umask, read without changing it where the system allows: `umask()` can only
    /// be read by setting it, which races with other threads creating files.
    static func currentUmask() -> mode_t {
        let mask = ckpt_current_umask()
        if mask >= 0 { return mode_t(mask) }
        let previous = umask(0o022)
        umask(previous)
        return previous
    }

    private static func syncDirectory(_ directory: String, finalPath: String) throws {
        let fileDescriptor: Int32
        do {
            fileDescriptor = try FileIO.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        } catch {
            throw CheckpointError(.io, "cannot open directory \(directory) to sync it", file: finalPath, systemCall: error)
        }
        defer { close(fileDescriptor) }
        do {
            try FileIO.sync(fileDescriptor)
        } catch {
            throw CheckpointError(.io, "cannot fsync directory \(directory)", file: finalPath, systemCall: error)
        }
    }

    /// The error of the call that just failed; read before anything else can change errno.
    private static func ioError(_ action: String, _ path: String, _ systemCall: String) -> CheckpointError {
        CheckpointError(.io, action, file: path, systemCall: SystemCallError(systemCall: systemCall, errno: errno))
    }
}
