import Checkpoint
import Foundation
import TestSupport
import Testing

/// Saves that the system refuses partway: a full disk, a file size limit, no permission, a
/// read-only file system, a storm of signals. Each is an error naming the file and the system's
/// reason, and the file saved before stays whole and loadable, with no temp file beside it.
@Suite struct WriteFaultTests {
    typealias F = MappedReadFaultTests

    static let formats = ["model.ckpt", "model.pt", "model.safetensors"]

    /// A state of about `kib` KiB whose values follow from `seed`.
    static func state(seed: Float, kib: Int) throws -> StateValue {
        let values = (0..<(kib * 256)).map { seed + Float($0 % 1021) }
        return ["w": .tensor(try Tensor(values, shape: [values.count])), "step": .int(Int64(seed))]
    }

    /// The file holds `expected` and verifies, and nothing else is in its directory.
    static func expectIntact(_ url: URL, _ expected: StateValue, only names: Set<String>? = nil) throws {
        let loaded = try StateValue(contentsOf: url)
        try loaded.verifyChecksums()
        #expect(loaded == expected, "\(url.path) holds other values")
        let directory = url.deletingLastPathComponent().path
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: directory))
        #expect(present == (names ?? [url.lastPathComponent]), "left in \(directory): \(present.sorted())")
    }

    /// The system call error at the root of a save's error.
    static func rootErrno(_ error: CheckpointError) -> Int32? { (error.cause as? SystemCallError)?.errno }

    @Test(.enabled(if: TemporaryMount.isAvailable, "mounting a tmpfs needs root (CAP_SYS_ADMIN) on Linux"), arguments: formats)
    func aFullDiskIsAnIOErrorAndKeepsTheOldFile(name: String) throws {
        let disk = try TemporaryMount(bytes: 1 << 20)
        let url = disk.url.appendingPathComponent(name)
        let old = try Self.state(seed: 1, kib: 256)
        try old.write(to: url)
        // 256 KiB stored, 768 KiB free: the temp file of a 1 MiB save runs out of room.
        let error = try #require(throws: CheckpointError.self) { try Self.state(seed: 2, kib: 1024).write(to: url) }
        #expect(error.code == .io)
        #expect(Self.rootErrno(error) == ENOSPC, "\(error)")
        #expect(error.file == url.path)
        try Self.expectIntact(url, old)
    }

    /// Where no small file system can be mounted: /dev/full fails every write with ENOSPC.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full"), "needs /dev/full"), arguments: formats)
    func aDeviceWithNoRoomIsAnIOError(name: String) throws {
        let format = try #require(CheckpointFormat(pathExtension: URL(fileURLWithPath: name).pathExtension))
        let error = try #require(throws: CheckpointError.self) {
            try Self.state(seed: 2, kib: 64).write(to: URL(fileURLWithPath: "/dev/full"), format: format)
        }
        #expect(error.code == .io)
        #expect(Self.rootErrno(error) == ENOSPC, "\(error)")
    }

    /// RLIMIT_FSIZE with SIGXFSZ ignored: the write past the limit fails with EFBIG (a process that
    /// does not ignore SIGXFSZ is ended by it, as by any other fatal signal).
    @Test(arguments: formats)
    func aFileSizeLimitIsAnIOErrorAndKeepsTheOldFile(name: String) throws {
        let directory = try TemporaryDirectory()
        let url = directory.url.appendingPathComponent(name)
        let old = try Self.state(seed: 1, kib: 64)
        try old.write(to: url)
        let output = try F.run(["fsize", url.path, String(1 << 20)])
        #expect(output.hasPrefix("error io errno=\(EFBIG): \(url.path): "), "\(output)")
        try Self.expectIntact(url, old)
    }

    /// As an unprivileged user (fault-child gives up root first): a file it may not read, a
    /// directory it may not write.
    @Test(.enabled(if: geteuid() != 0 || ProcessCapabilities.canChangeUser, "as root without CAP_SETUID nothing is denied"))
    func noPermissionIsAnIOErrorAndKeepsTheOldFile() throws {
        let directory = try TemporaryDirectory()
        let old = try Self.state(seed: 1, kib: 16)
        let unreadable = directory.url.appendingPathComponent("unreadable.ckpt")
        try old.write(to: unreadable)
        let locked = directory.url.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: false)
        try old.write(to: locked.appendingPathComponent("model.ckpt"))
        chmod(unreadable.path, 0)
        chmod(locked.path, 0o555)
        defer { chmod(locked.path, 0o755) }
        // The child may not create the catalog's run directory either (its parent is root's 0755).
        let lines = try F.run(["denied", directory.url.path]).split(separator: "\n").map(String.init)
        #expect(lines.count == 3 && lines.allSatisfy { $0.hasPrefix("error ") }, "\(lines)")
        #expect(lines.first?.hasPrefix("error io errno=\(EACCES): \(unreadable.path): cannot open: Permission denied") == true, "\(lines)")
        #expect(lines.dropFirst().first?.hasPrefix("error io errno=\(EACCES): \(locked.path)/model.ckpt: cannot create a temporary file") == true, "\(lines)")
        chmod(unreadable.path, 0o644)
        try Self.expectIntact(unreadable, old, only: ["unreadable.ckpt", "locked"])
        try Self.expectIntact(locked.appendingPathComponent("model.ckpt"), old)
    }

    /// A read-only file system refuses even root: EROFS; what is on it still loads.
    @Test(.enabled(if: TemporaryMount.isAvailable, "mounting a tmpfs needs root (CAP_SYS_ADMIN) on Linux"), arguments: formats)
    func aReadOnlyFileSystemIsAnIOErrorAndStillLoads(name: String) throws {
        let disk = try TemporaryMount(bytes: 4 << 20)
        let url = disk.url.appendingPathComponent(name)
        let old = try Self.state(seed: 1, kib: 64)
        try old.write(to: url)
        try disk.remountReadOnly()
        let error = try #require(throws: CheckpointError.self) { try Self.state(seed: 2, kib: 64).write(to: url) }
        #expect(error.code == .io)
        #expect(Self.rootErrno(error) == EROFS, "\(error)")
        try Self.expectIntact(url, old)
    }

    /// SIGKILL at random times while a process saves over one file again and again: the file
    /// always loads, verifies, and holds the last save reported finished or the one after it. A
    /// killed save's temp file stays behind (nothing runs on SIGKILL); it is a hidden name that
    /// loading and the next save ignore.
    @Test(arguments: formats)
    func aSaveKilledAtAnyPointLeavesTheLastWholeFile(name: String) throws {
        let directory = try TemporaryDirectory()
        let url = directory.url.appendingPathComponent(name)
        var random = SplitMix64(seed: 0x5A7E_0001)
        for kill in 0..<8 {
            let log = directory.url.appendingPathComponent("log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let process = Process()
            process.executableURL = F.child
            process.arguments = ["overwrite", url.path]
            process.standardOutput = try FileHandle(forWritingTo: log)
            try process.run()
            usleep(UInt32.random(in: 30_000...150_000, using: &random))
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let reported = (try String(contentsOf: log, encoding: .utf8)).split(separator: "\n").compactMap { Int($0.dropFirst("saved ".count)) }
            guard let last = reported.last else { continue }
            let loaded = try StateValue(contentsOf: url)
            try loaded.verifyChecksums()
            let step = try #require(loaded["step"].flatMap { value -> Int? in if case .int(let n) = value { Int(n) } else { nil } })
            #expect(step == last || step == last + 1, "kill \(kill): the file holds save \(step), the last reported was \(last)")
            #expect(loaded == (try MappedReadFaultTests.childState(seed: step)), "kill \(kill)")
        }
    }

    /// Saves and loads in every format, into a FIFO read slowly, and through a catalog another
    /// connection holds locked, while every thread is signalled every 50 µs by a handler without
    /// SA_RESTART: everything succeeds. Before, the FIFO's open failed with EINTR and the catalog's
    /// busy wait gave up long before its timeout.
    @Test func everySaveAndLoadSucceedsThroughAStormOfSignals() throws {
        let directory = try TemporaryDirectory()
        let output = try F.run(["eintr", directory.url.path, "2"])
        let lines = output.split(separator: "\n").map(String.init)
        let failures = lines.filter { !$0.hasPrefix("ok ") && !$0.hasPrefix("done ") }
        #expect(failures.isEmpty, "\(failures)")
        let summary = try #require(lines.last { $0.hasPrefix("done ") })
        let numbers = summary.split(separator: " ").compactMap { $0.split(separator: "=").last.flatMap { Int($0) } }
        #expect(numbers.count == 2 && numbers[0] >= 2 && numbers[1] >= 1000, "\(summary)")
        #expect(lines.filter { $0 == "ok fifo" }.count == numbers.first, "\(lines)")
    }
}
