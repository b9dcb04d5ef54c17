import Foundation
import Testing
import TestSupport
@testable import Checkpoint

@Suite struct DurableFileTests {
    let directory: URL

    init() throws {
        directory = TemporaryDirectory.scoped(prefix: "ckpt-durable")
    }

    struct BodyFailure: Error {}

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    }

    func writeAll(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        #expect(bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) } == bytes.count)
    }

    func contents(_ target: String) throws -> String {
        try String(contentsOfFile: target, encoding: .utf8)
    }

    @Test(arguments: [true, false])
    func successReplacesTheFileAndLeavesNoTemporaryFile(sync: Bool) throws {
        let target = path("model.ckpt")
        try DurableFile.write(to: target, sync: sync) { writeAll($0, "first") }
        #expect(try contents(target) == "first")
        try DurableFile.write(to: target, sync: sync) { writeAll($0, "second, longer") }
        #expect(try contents(target) == "second, longer")
        #expect(try listing() == ["model.ckpt"])
    }

    @Test func temporaryFileIsHiddenAndInTheTargetDirectory() throws {
        let target = path("model.ckpt")
        var seen: [String] = []
        try DurableFile.write(to: target, sync: false) { fd in
            seen = (try? listing()) ?? []
            writeAll(fd, "x")
        }
        #expect(seen.count == 1)
        #expect(seen.first?.hasPrefix(".model.ckpt.tmp-") == true, "\(seen)")
    }

    @Test func throwingBodyKeepsTheOldFileAndRemovesTheTemporaryFile() throws {
        let target = path("model.ckpt")
        try DurableFile.write(to: target) { writeAll($0, "old") }
        #expect(throws: BodyFailure.self) {
            try DurableFile.write(to: target) { fd in
                writeAll(fd, "partial new cont")
                throw BodyFailure()
            }
        }
        #expect(try contents(target) == "old")
        #expect(try listing() == ["model.ckpt"])
    }

    @Test func throwingBodyLeavesNoFileUnderANewName() throws {
        let target = path("fresh.ckpt")
        #expect(throws: BodyFailure.self) {
            try DurableFile.write(to: target, sync: false) { fd in
                writeAll(fd, "partial")
                throw BodyFailure()
            }
        }
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(try listing().isEmpty)
    }

    @Test func zipWriterFailureInsideTheBodyKeepsTheOldFile() throws {
        let target = path("model.ckpt")
        try DurableFile.write(to: target, sync: false) { writeAll($0, "old") }
        #expect(throws: CheckpointError.self) {
            try DurableFile.write(to: target, sync: false) { fd in
                let writer = ZipWriter(fileDescriptor: fd, path: target)
                try [UInt8(1)].withUnsafeBytes { _ = try writer.addEntry(name: "../escape", bytes: $0) }
            }
        }
        #expect(try contents(target) == "old")
        #expect(try listing() == ["model.ckpt"])
    }

    @Test func modeFollowsTheUmask() throws {
        let target = path("mode.ckpt")
        try DurableFile.write(to: target, sync: false) { writeAll($0, "x") }
        let attributes = try FileManager.default.attributesOfItem(atPath: target)
        let mode = (attributes[.posixPermissions] as? NSNumber)?.uint16Value
        // umask is read back the classic way here, independently of DurableFile's /proc reading.
        let mask = umask(0o022)
        umask(mask)
        #expect(mode == UInt16(0o666 & ~mask))
    }

    @Test func missingDirectoryIsAnIOError() throws {
        let error = #expect(throws: CheckpointError.self) {
            try DurableFile.write(to: path("no/such/dir/model.ckpt")) { writeAll($0, "x") }
        }
        #expect(error?.code == .io)
        #expect(error?.cause as? SystemCallError == SystemCallError(systemCall: "mkstemp", errno: ENOENT))
    }

    @Test func targetThatIsADirectoryFailsAndCleansUp() throws {
        let target = path("taken")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        let error = #expect(throws: CheckpointError.self) {
            try DurableFile.write(to: target, sync: false) { writeAll($0, "x") }
        }
        #expect(error?.code == .io)
        #expect(error?.cause as? SystemCallError == SystemCallError(systemCall: "rename", errno: EISDIR))
        #expect(try listing() == ["taken"])
    }

    @Test(arguments: ["", "dir/", "dir/.."])
    func pathWithoutAFileNameIsInvalid(target: String) throws {
        let error = #expect(throws: CheckpointError.self) { try DurableFile.write(to: target) { _ in } }
        #expect(error?.code == .invalidArgument)
    }

    @Test func veryLongNameStillGetsATemporaryFile() throws {
        let name = String(repeating: "n", count: 250)
        let target = path(name)
        try DurableFile.write(to: target, sync: false) { writeAll($0, "long") }
        #expect(try contents(target) == "long")
        #expect(try listing() == [name])
    }

    /// Split rather than a write in the working directory: changing the directory would race
    /// with tests running in parallel.
    @Test(arguments: [("model.ckpt", ".", "model.ckpt"), ("/model.ckpt", "/", "model.ckpt"), ("a/b/c.pt", "a/b", "c.pt")])
    func pathsSplitIntoDirectoryAndName(target: String, directory: String, name: String) throws {
        let parts = try DurableFile.split(target)
        #expect(parts.directory == directory && parts.name == name)
    }
}
