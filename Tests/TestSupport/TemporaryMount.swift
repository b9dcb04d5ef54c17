import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small tmpfs mounted on a new temporary directory, unmounted and removed when the last
/// reference goes away: a disk that fills up, or a file system that is read-only, for fault tests.
/// Mounting needs root (CAP_SYS_ADMIN) on Linux; ``isAvailable`` says whether this machine allows it.
public final class TemporaryMount: @unchecked Sendable {
    /// The mount point.
    public let url: URL

    /// Mounts a tmpfs of `bytes` bytes.
    ///
    /// - Parameter bytes: Its size.
    /// - Throws: `POSIXError` when the system refuses the mount.
    public init(bytes: Int) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-mount-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        #if os(Linux)
        guard mount("tmpfs", url.path, "tmpfs", 0, "size=\(bytes),mode=0755") == 0 else {
            let error = errno
            try? FileManager.default.removeItem(at: url)
            throw POSIXError(POSIXErrorCode(rawValue: error) ?? .EPERM)
        }
        #else
        try? FileManager.default.removeItem(at: url)
        throw POSIXError(.ENOTSUP)
        #endif
    }

    /// A path inside the mount.
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Makes the file system read-only; what is on it stays readable.
    ///
    /// - Throws: `POSIXError` when the system refuses.
    public func remountReadOnly() throws {
        #if os(Linux)
        guard mount("tmpfs", url.path, "tmpfs", UInt(MS_REMOUNT | MS_RDONLY), nil) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPERM)
        }
        #endif
    }

    deinit {
        #if os(Linux)
        umount2(url.path, Int32(MNT_DETACH))
        #endif
        try? FileManager.default.removeItem(at: url)
    }

    /// Whether this process may mount a tmpfs (tried once).
    public static let isAvailable: Bool = (try? TemporaryMount(bytes: 1 << 16)) != nil
}
