#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole reads and writes on file descriptors: the one place that retries after signals and
/// short transfers, and turns a call that makes no progress into an error instead of a spin.
package enum FileIO {
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
