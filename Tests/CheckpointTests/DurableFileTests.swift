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
        #expect(error?.cause as? SystemCallError == SystemCallError(systemCall: "open", errno: ENOENT))
    }

    @Test func targetThatIsADirectoryIsRefusedBeforeAnythingIsWritten() throws {
        let target = path("taken")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        var called = false
        let error = #expect(throws: CheckpointError.self) {
            try DurableFile.write(to: target, sync: false) { _ in called = true }
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.description.contains(target) == true, "\(String(describing: error))")
        #expect(error?.description.contains("cannot write over a directory") == true, "\(String(describing: error))")
        #expect(!called)
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

    // MARK: What sits at the output path

    func symlink(_ link: String, to destination: String) throws {
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: destination)
    }

    func linkDestination(_ link: String) throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: link)
    }

    func fileType(_ target: String) -> mode_t {
        var info = stat()
        guard lstat(target, &info) == 0 else { return 0 }
        return info.st_mode & S_IFMT
    }

    func makeDirectory(_ name: String) throws {
        try FileManager.default.createDirectory(atPath: path(name), withIntermediateDirectories: true)
    }

    @Test func absoluteSymlinkIsFollowedAndKept() throws {
        let target = path("run_100.pt")
        let link = path("latest.pt")
        try DurableFile.write(to: target, sync: false) { writeAll($0, "old") }
        try symlink(link, to: target)
        try DurableFile.write(to: link) { writeAll($0, "new") }
        #expect(fileType(link) == S_IFLNK)
        #expect(try linkDestination(link) == target)
        #expect(fileType(target) == S_IFREG)
        #expect(try contents(target) == "new")
        #expect(try listing() == ["latest.pt", "run_100.pt"])
    }

    @Test func relativeSymlinkIsResolvedFromItsOwnDirectoryAndTheTempFileGoesBesideTheTarget() throws {
        try makeDirectory("links")
        try makeDirectory("runs")
        let target = path("runs/run.pt")
        let link = path("links/latest.pt")
        try DurableFile.write(to: target, sync: false) { writeAll($0, "old") }
        try symlink(link, to: "../runs/run.pt")
        var besideTarget: [String] = []
        var besideLink: [String] = []
        try DurableFile.write(to: link, sync: false) { fd in
            besideTarget = (try? FileManager.default.contentsOfDirectory(atPath: path("runs")).sorted()) ?? []
            besideLink = (try? FileManager.default.contentsOfDirectory(atPath: path("links")).sorted()) ?? []
            writeAll(fd, "new")
        }
        #expect(besideTarget.count == 2 && besideTarget.contains { $0.hasPrefix(".run.pt.tmp-") }, "\(besideTarget)")
        #expect(besideLink == ["latest.pt"])
        #expect(try linkDestination(link) == "../runs/run.pt")
        #expect(try contents(target) == "new")
        #expect(try FileManager.default.contentsOfDirectory(atPath: path("runs")) == ["run.pt"])
    }

    @Test func chainOfSymlinksReplacesTheLastTarget() throws {
        try makeDirectory("a")
        try makeDirectory("b")
        let target = path("a/real.pt")
        try DurableFile.write(to: target, sync: false) { writeAll($0, "old") }
        try symlink(path("b/middle.pt"), to: "../a/real.pt")
        try symlink(path("top.pt"), to: path("b/middle.pt"))
        try DurableFile.write(to: path("top.pt"), sync: false) { writeAll($0, "new") }
        #expect(fileType(path("top.pt")) == S_IFLNK)
        #expect(fileType(path("b/middle.pt")) == S_IFLNK)
        #expect(try contents(target) == "new")
        #expect(try FileManager.default.contentsOfDirectory(atPath: path("a")) == ["real.pt"])
    }

    @Test func danglingSymlinkCreatesItsTarget() throws {
        let link = path("latest.pt")
        try symlink(link, to: "run_200.pt")
        try DurableFile.write(to: link, sync: false) { writeAll($0, "new") }
        #expect(fileType(link) == S_IFLNK)
        #expect(fileType(path("run_200.pt")) == S_IFREG)
        #expect(try contents(link) == "new")
        #expect(try listing() == ["latest.pt", "run_200.pt"])
    }

    @Test func symlinkLoopIsAnIOErrorAndWritesNothing() throws {
        try symlink(path("a"), to: "b")
        try symlink(path("b"), to: "a")
        let error = #expect(throws: CheckpointError.self) {
            try DurableFile.write(to: path("a"), sync: false) { writeAll($0, "x") }
        }
        #expect(error?.code == .io)
        #expect((error?.cause as? SystemCallError)?.errno == ELOOP)
        #expect(try listing() == ["a", "b"])
    }

    @Test func symlinkToADirectoryIsRefused() throws {
        try makeDirectory("dir")
        try symlink(path("link"), to: "dir")
        let error = #expect(throws: CheckpointError.self) {
            try DurableFile.write(to: path("link"), sync: false) { writeAll($0, "x") }
        }
        #expect(error?.code == .invalidArgument)
        #expect(fileType(path("link")) == S_IFLNK)
    }

    @Test func socketIsRefused() throws {
        let target = path("socket")
        #if os(Linux)
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(target.utf8)
        try #require(bytes.count < MemoryLayout.size(ofValue: address.sun_path))
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        let error = #expect(throws: CheckpointError.self) {
            try DurableFile.write(to: target, sync: false) { writeAll($0, "x") }
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.description.contains("a socket") == true, "\(String(describing: error))")
        #expect(fileType(target) == S_IFSOCK)
        #expect(try listing() == ["socket"])
    }

    /// Reads everything a FIFO receives, on another thread, until the writer closes it.
    final class FIFOReader: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var received = Data()

        init(_ fifo: String) {
            Thread.detachNewThread { [self] in
                let descriptor = open(fifo, O_RDONLY)
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while descriptor >= 0 {
                    let count = read(descriptor, &buffer, buffer.count)
                    if count <= 0 { break }
                    received.append(contentsOf: buffer[..<count])
                }
                if descriptor >= 0 { close(descriptor) }
                done.signal()
            }
        }

        func wait() -> Data {
            done.wait()
            return received
        }
    }

    @Test func fifoIsStreamedToAndKept() throws {
        let fifo = path("pipe")
        try #require(mkfifo(fifo, 0o600) == 0)
        let reader = FIFOReader(fifo)
        // sync: fsync of a FIFO fails with EINVAL, which is not an error here.
        try DurableFile.write(to: fifo, sync: true) { writeAll($0, "through the pipe") }
        #expect(String(decoding: reader.wait(), as: UTF8.self) == "through the pipe")
        #expect(fileType(fifo) == S_IFIFO)
        #expect(try listing() == ["pipe"])
    }

    @Test(arguments: [CheckpointFormat.ckpt, .safetensors])
    func checkpointStreamedThroughAFIFOLoads(format: CheckpointFormat) throws {
        let fifo = path("pipe")
        try #require(mkfifo(fifo, 0o600) == 0)
        let tree: StateValue = [
            "weight": .tensor(try Tensor([Float](repeating: 1.5, count: 100_000), shape: [100, 1000])),
            "bias": .tensor(try Tensor([Float](repeating: -2, count: 10), shape: [10])),
            "step": 7,
        ]
        let reader = FIFOReader(fifo)
        try tree.write(to: URL(fileURLWithPath: fifo), format: format)
        let copy = path("copy." + format.rawValue)
        try reader.wait().write(to: URL(fileURLWithPath: copy))
        #expect(try StateValue(contentsOf: URL(fileURLWithPath: copy)) == tree)
        #expect(fileType(fifo) == S_IFIFO)
    }

    @Test func devNullIsWrittenToAndStaysADevice() throws {
        try DurableFile.write(to: "/dev/null", sync: true) { writeAll($0, "discarded") }
        #expect(fileType("/dev/null") == S_IFCHR)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "/dev").allSatisfy { !$0.hasPrefix(".null.tmp-") })
    }

    @Test(arguments: ["/dev/fd/", "/proc/self/fd/"])
    func ownDescriptorIsWrittenThroughAsItIs(prefix: String) throws {
        #if !os(Linux)
        if prefix.hasPrefix("/proc") { return }
        #endif
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        defer { close(ends[0]) }
        try DurableFile.write(to: prefix + String(ends[1]), sync: true) { writeAll($0, "to the pipe") }
        close(ends[1])
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(ends[0], &buffer, buffer.count)
        #expect(String(decoding: buffer[..<max(count, 0)], as: UTF8.self) == "to the pipe")
    }

    @Test func closedDescriptorIsAnIOError() throws {
        let error = #expect(throws: CheckpointError.self) {
            try DurableFile.write(to: "/dev/fd/987654", sync: false) { writeAll($0, "x") }
        }
        #expect(error?.code == .io)
        #expect((error?.cause as? SystemCallError)?.errno == EBADF)
    }

    @Test(arguments: [
        ("/dev/stdout", Int32?.some(1)), ("/dev/stderr", 2), ("/dev/fd/7", 7), ("/proc/self/fd/12", 12),
        ("/dev/fd/", nil), ("/dev/fd/x", nil), ("/dev/stdout2", nil), ("dev/stdout", nil),
    ])
    func ownDescriptorNames(target: String, descriptor: Int32?) {
        #expect(DurableFile.ownDescriptor(target) == descriptor)
    }

    @Test func temporaryFileIsRegisteredForSignalCleanupWhileItExists() throws {
        let target = path("model.ckpt")
        var registered = 0
        try DurableFile.write(to: target, sync: false) { fd in
            registered = DurableFile.registeredTemporaryFileCount
            writeAll(fd, "x")
        }
        // Other tests write in parallel: at least this write's file was registered.
        #expect(registered >= 1)
    }
}
