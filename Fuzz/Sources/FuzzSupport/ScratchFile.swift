import Foundation

/// Where each input is written for the public readers, which all open files (there is no public
/// bytes-based loader). A per-process directory in /dev/shm keeps the write in memory.
public enum ScratchFile {
    /// The per-process directory, created once.
    public static let directory: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let url = URL(fileURLWithPath: base).appendingPathComponent("ckpt-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: ScratchFile.directory) }
        return url
    }()

    /// Writes `bytes` to `name` in the scratch directory, replacing what was there.
    ///
    /// - Parameters:
    ///   - bytes: The input.
    ///   - name: The file name; its extension picks the reader where it matters.
    /// - Returns: The file's URL.
    public static func write(_ bytes: UnsafeRawBufferPointer, name: String) -> URL {
        let url = directory.appendingPathComponent(name)
        // A fresh inode each time: a reader still mapping the previous input never sees it change.
        unlink(url.path)
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot create \(url.path)")
        var offset = 0
        while offset < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            precondition(n > 0, "cannot write \(url.path)")
            offset += n
        }
        close(fd)
        return url
    }

    /// Writes `bytes` to `name` in the scratch directory.
    public static func write(_ bytes: [UInt8], name: String) -> URL {
        bytes.withUnsafeBytes { write($0, name: name) }
    }
}
