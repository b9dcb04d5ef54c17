#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole reads and writes on file descriptors, and the calls around them that a signal can
/// interrupt: the one place that retries after signals and short transfers, and turns a call that
/// makes no progress into an error instead of a spin.
///
/// A signal handler installed without `SA_RESTART` (a profiler's timer, a trainer's own handler)
/// makes a blocking call return EINTR. On a local file system regular files' reads, writes and
/// fsyncs are not interrupted, but opening a FIFO, reading or writing a pipe, and any call on a
/// network file system are.
package enum FileIO {
    /// Opens a file, again after EINTR (opening a FIFO blocks until the other end is opened).
    ///
    /// - Parameters:
    ///   - path: The file.
    ///   - flags: `open` flags.
    ///   - mode: The mode of a file `O_CREAT` creates.
    /// - Returns: The descriptor.
    /// - Throws: ``SystemCallError`` of `open` with its errno.
    package static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(SystemCallError) -> Int32 {
        while true {
            let descriptor = systemOpen(path, flags, mode)
            if descriptor >= 0 { return descriptor }
            let error = errno
            if error != EINTR { throw SystemCallError(systemCall: "open", errno: error) }
        }
    }

    /// Flushes a file to its storage device, again after EINTR.
    ///
    /// - Parameter descriptor: An open file descriptor.
    /// - Throws: ``SystemCallError`` of `fsync` with its errno.
    package static func sync(_ descriptor: Int32) throws(SystemCallError) {
        while fsync(descriptor) != 0 {
            let error = errno
            if error != EINTR { throw SystemCallError(systemCall: "fsync", errno: error) }
        }
    }

    /// Closes a descriptor. EINTR is not retried and not an error: Linux has released the
    /// descriptor by then, and a second close could close one another thread just opened (the data
    /// was synced before, where it matters).
    ///
    /// - Parameter descriptor: An open file descriptor.
    /// - Throws: ``SystemCallError`` of `close` with its errno (EIO: a write-back failed).
    package static func close(_ descriptor: Int32) throws(SystemCallError) {
        if systemClose(descriptor) != 0, errno != EINTR { throw SystemCallError(systemCall: "close", errno: errno) }
    }

    /// Linux transfers at most 0x7ffff000 bytes per call; no request asks for more than 1 GiB.
    static let largestRequest = 1 << 30

    /// Writes every byte of `bytes` to `descriptor`.
    ///
    /// - Parameters:
    ///   - descriptor: An open file descriptor.
    ///   - bytes: The bytes.
    /// - Throws: ``SystemCallError`` of `write`: its errno, or 0 when a write made no progress.
    package static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemCallError) {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let result = write(descriptor, base + done, min(bytes.count - done, largestRequest))
            if result < 0 {
                let error = errno
                if error == EINTR { continue }
                throw SystemCallError(systemCall: "write", errno: error)
            }
            guard result > 0 else { throw SystemCallError(systemCall: "write", errno: 0) }
            done += result
        }
    }

    /// Reads `buffer.count` bytes at `offset` of `descriptor`, or fewer at the end of the file.
    ///
    /// - Parameters:
    ///   - descriptor: An open file descriptor that can seek.
    ///   - buffer: Where the bytes go.
    ///   - offset: The file offset of the first byte.
    /// - Returns: The bytes read: `buffer.count` unless the file ends first.
    /// - Throws: ``SystemCallError`` of `pread` with its errno.
    package static func readAll(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemCallError) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let result = pread(descriptor, base + done, min(buffer.count - done, largestRequest), off_t(offset + done))
            if result < 0 {
                let error = errno
                if error == EINTR { continue }
                throw SystemCallError(systemCall: "pread", errno: error)
            }
            if result == 0 { break }
            done += result
        }
        return done
    }
}

// The system's calls by their module's name: inside FileIO the plain names are its own.
#if canImport(Glibc)
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { Glibc.open(path, flags, mode) }
private func systemClose(_ descriptor: Int32) -> Int32 { Glibc.close(descriptor) }
#elseif canImport(Darwin)
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { Darwin.open(path, flags, mode) }
private func systemClose(_ descriptor: Int32) -> Int32 { Darwin.close(descriptor) }
#endif
