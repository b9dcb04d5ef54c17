import CSystem
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Standard input as a file that can be mapped: readers map and seek, which a pipe cannot do.
///
/// A regular file redirected to standard input (`< model.pt`) is read in place through
/// `/dev/stdin`. Anything else (a pipe, a socket, a terminal) is copied once into a temp file in
/// the temporary directory, registered for removal on SIGHUP/SIGINT/SIGTERM and at exit, like an
/// atomic write's temp file, so an interrupted command leaves nothing behind.
package enum StandardInputSpool {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var spooled: String?

    /// The path of a file with standard input's bytes; the same path on every call.
    ///
    /// - Returns: `/dev/stdin` for a regular file, else the temp file's path.
    /// - Throws: `CheckpointError` `.io` when standard input cannot be read or the copy cannot
    ///   be written.
    package static func path() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let spooled { return spooled }
        var status = stat()
        if fstat(STDIN_FILENO, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG {
            spooled = "/dev/stdin"
            return "/dev/stdin"
        }
        DurableFile.installSignalCleanup()
        let directory = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let (descriptor, path, slot) = try DurableFile.createTemporaryFile(directory: directory, name: "ckpt-stdin", for: "-")
        defer { close(descriptor) }
        do {
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count < 0 {
                    if errno == EINTR { continue }
                    throw CheckpointError(.io, "cannot read standard input", file: "-", systemCall: SystemCallError(systemCall: "read", errno: errno))
                }
                if count == 0 { break }
                let failure = buffer.withUnsafeBytes { bytes -> SystemCallError? in
                    do throws(SystemCallError) {
                        try FileIO.writeAll(descriptor, UnsafeRawBufferPointer(rebasing: bytes[..<count]))
                        return nil
                    } catch {
                        return error
                    }
                }
                if let failure { throw CheckpointError(.io, "cannot spool standard input", file: path, systemCall: failure) }
            }
        } catch {
            unlink(path)
            ckpt_cleanup_unregister(slot)
            throw error
        }
        // A registered name is removed at exit by the cleanup hook; without a free slot, by ours.
        if slot < 0 { atexit { StandardInputSpool.removeSpool() } }
        spooled = path
        return path
    }

    private static func removeSpool() {
        if let spooled, spooled != "/dev/stdin" { unlink(spooled) }
    }
}
