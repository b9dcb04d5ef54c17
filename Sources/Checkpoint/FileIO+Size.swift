#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension FileIO {
    /// The size of a regular file, from `stat` alone (nothing is opened or read): how a checkpoint
    /// made of several files checks each one before mapping any.
    ///
    /// - Parameter path: The file.
    /// - Returns: Its size in bytes.
    /// - Throws: ``SystemCallError`` of `stat` with its errno; errno `EISDIR` or `EINVAL` for a
    ///   directory or another file that is not regular.
    package static func size(ofFileAt path: String) throws(SystemCallError) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SystemCallError(systemCall: "stat", errno: errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw SystemCallError(systemCall: "stat", errno: (info.st_mode & S_IFMT) == S_IFDIR ? EISDIR : EINVAL)
        }
        return Int(info.st_size)
    }
}
