#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which one, and the `errno` it set. The `cause` of a
/// ``CheckpointError`` with code `.io`.
public struct SystemCallError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The call, as `write` or `pread`.
    public let systemCall: String
    /// The error number; 0 when the call made no progress without reporting an error (a write of
    /// 0 bytes, a read at an unexpected end of file).
    public let errno: Int32

    /// Creates the error of a call that failed with `errno`.
    ///
    /// - Parameters:
    ///   - systemCall: The call's name.
    ///   - errno: The error number.
    public init(systemCall: String, errno: Int32) {
        self.systemCall = systemCall
        self.errno = errno
    }

    /// What went wrong in the system's words (`strerror`), or that the call made no progress.
    package var reason: String { errno == 0 ? "no progress" : String(cString: strerror(errno)) }

    public var description: String {
        errno == 0 ? "\(systemCall): \(reason)" : "\(systemCall): \(reason) (errno \(errno))"
    }
}
