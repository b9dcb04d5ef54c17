import Foundation
import Testing
import TestSupport

@testable import Checkpoint

/// The one read/write helper: whole transfers, and errors that keep the system call and errno.
struct FileIOTests {
    @Test func writeAllAndReadAllMoveEveryByte() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-fileio")
        let path = directory.path("bytes")
        let descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try bytes.withUnsafeBytes { try FileIO.writeAll(descriptor, $0) }
        var back = [UInt8](repeating: 0, count: 100_010)
        let read = try back.withUnsafeMutableBytes { try FileIO.readAll(descriptor, into: $0, at: 0) }
        #expect(read == bytes.count)
        #expect(Array(back.prefix(read)) == bytes)
    }

    @Test func failuresNameTheCallAndErrno() {
        let error = #expect(throws: SystemCallError.self) {
            try [UInt8](repeating: 1, count: 8).withUnsafeBytes { try FileIO.writeAll(-1, $0) }
        }
        #expect(error?.systemCall == "write")
        #expect(error?.errno == EBADF)
        #expect(error?.description.contains("errno \(EBADF)") == true)
    }

    /// A full disk shows as ENOSPC from write, not as an endless retry.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full"), "needs /dev/full"))
    func aFullDeviceIsAnError() throws {
        let descriptor = open("/dev/full", O_WRONLY)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        let error = #expect(throws: SystemCallError.self) {
            try [UInt8](repeating: 1, count: 4096).withUnsafeBytes { try FileIO.writeAll(descriptor, $0) }
        }
        #expect(error?.errno == ENOSPC)
    }
}
