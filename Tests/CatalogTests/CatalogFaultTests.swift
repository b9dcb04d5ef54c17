import Catalog
import Checkpoint
import Foundation
import TestSupport
import Testing

/// A checkpoint manager whose saves the system refuses: a full disk, a file size limit, no
/// permission, a read-only file system. The save fails with a typed error, and every checkpoint
/// committed before still loads, verifies and is what restore picks, with nothing left half-done.
@Suite struct CatalogFaultTests {
    typealias F = CatalogFixtures

    static let child = ProcessOutput.builtExecutable("fault-child")

    /// A state of about `kib` KiB whose values follow from `step`.
    static func state(step: Int, kib: Int) throws -> StateValue {
        let values = (0..<(kib * 256)).map { Float(step) + Float($0 % 1021) }
        return ["w": .tensor(try Tensor(values, shape: [values.count])), "step": .int(Int64(step))]
    }

    /// The committed steps are exactly `steps`, each file holds its step's values, restore picks
    /// the last, and no temp file is left in the checkpoints folder.
    static func expectCommitted(_ directory: URL, _ steps: [Int], kib: Int) throws {
        let manager = try CheckpointManager(directory: directory, options: .init(pruneAfterSave: false))
        defer { try? manager.close() }
        let entries = try manager.all()
        #expect(entries.map(\.step) == steps && entries.allSatisfy { $0.status == .committed }, "\(entries.map { "\($0.step) \($0.status)" })")
        for entry in entries {
            let loaded = try StateValue(contentsOf: entry.url)
            try loaded.verifyChecksums()
            #expect(loaded == (try state(step: entry.step, kib: kib)), "step \(entry.step)")
        }
        #expect(try manager.restore()?.entry.step == steps.last)
        let folder = manager.checkpointURL(step: 0).deletingLastPathComponent()
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(Set(names) == Set(entries.map { $0.url.lastPathComponent }), "\(names.sorted())")
    }

    /// The code and errno at the root of a failed save: `.checkpoint`'s CheckpointError, or the
    /// catalog's own.
    static func root(_ error: CatalogError) -> (String, Int32?) {
        if error.code == .checkpoint, let cause = error.cause as? CheckpointError {
            return ("\(cause.code)", (cause.cause as? SystemCallError)?.errno)
        }
        return ("\(error.code)", nil)
    }

    @Test(.enabled(if: TemporaryMount.isAvailable, "mounting a tmpfs needs root (CAP_SYS_ADMIN) on Linux"))
    func aFullDiskFailsASaveAndKeepsEveryCommittedCheckpoint() throws {
        let disk = try TemporaryMount(bytes: 2 << 20)
        let kib = 384
        var committed: [Int] = []
        var failure: CatalogError?
        do {
            let manager = try CheckpointManager(directory: disk.url, options: .init(pruneAfterSave: false))
            defer { try? manager.close() }
            for step in 0..<10 {
                do {
                    try manager.save(step: step, state: try Self.state(step: step, kib: kib))
                    committed.append(step)
                } catch let error as CatalogError {
                    failure = error
                    break
                }
            }
        }
        let error = try #require(failure, "2 MiB held \(committed.count) checkpoints of \(kib) KiB")
        #expect(committed.count >= 2)
        let (code, errno) = Self.root(error)
        #expect(code == "io", "\(error)")
        if error.code == .checkpoint { #expect(errno == ENOSPC, "\(error)") }
        try Self.expectCommitted(disk.url, committed, kib: kib)
        // Room again (the oldest pruned): the same catalog takes the next save.
        let manager = try CheckpointManager(directory: disk.url, options: .init(retention: RetentionPolicy(keepLast: 1)))
        try manager.prune()
        let next = try #require(committed.last) + 1
        try manager.save(step: next, state: try Self.state(step: next, kib: kib))
        try manager.close()
        try Self.expectCommitted(disk.url, [next], kib: kib)
    }

    /// A trainer under RLIMIT_FSIZE (SIGXFSZ ignored): its save fails with EFBIG, typed; the steps
    /// before stay committed and the failed step leaves no row and no file.
    @Test func aFileSizeLimitFailsASaveAndKeepsEveryCommittedCheckpoint() throws {
        let run = try TemporaryDirectory()
        let kib = 64
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        for step in 0..<2 { try manager.save(step: step, state: try Self.state(step: step, kib: kib)) }
        try manager.close()
        let result = try ProcessOutput(running: Self.child, ["fsize-catalog", run.url.path, String(1 << 20)])
        #expect(!result.signaled && result.status == 0, "\(result.status): \(result.output)")
        #expect(result.output.hasPrefix("error io errno=\(EFBIG): "), "\(result.output)")
        #expect(result.output.contains("step 2: cannot write the checkpoint"), "\(result.output)")
        try Self.expectCommitted(run.url, [0, 1], kib: kib)
    }

    /// A process without write permission on a run's catalog: a typed error, the catalog unchanged.
    @Test(.enabled(if: geteuid() != 0 || ProcessCapabilities.canChangeUser, "as root without CAP_SETUID nothing is denied"))
    func noPermissionFailsASaveAndKeepsTheCatalog() throws {
        let directory = try TemporaryDirectory()
        let run = directory.url.appendingPathComponent("locked-run")
        let kib = 16
        let manager = try CheckpointManager(directory: run, options: F.options())
        try manager.save(step: 0, state: try Self.state(step: 0, kib: kib))
        try manager.close()
        for path in [run.path, run.appendingPathComponent("checkpoints/main").path] { chmod(path, 0o555) }
        defer { for path in [run.path, run.appendingPathComponent("checkpoints/main").path] { chmod(path, 0o755) } }
        let lines = try ProcessOutput(running: Self.child, ["denied", directory.url.path]).output.split(separator: "\n")
        #expect(lines.count == 3 && lines[2].hasPrefix("error io "), "\(lines)")
        try Self.expectCommitted(run, [0], kib: kib)
    }

    /// A run directory on a file system remounted read-only: opening it to write is a typed
    /// error; its checkpoint files still load. (SQLite cannot open a WAL catalog there at all, not
    /// even to list it: it needs to create the `-shm` file.)
    @Test(.enabled(if: TemporaryMount.isAvailable, "mounting a tmpfs needs root (CAP_SYS_ADMIN) on Linux"))
    func aReadOnlyFileSystemRefusesSavesAndStillLoads() throws {
        let disk = try TemporaryMount(bytes: 4 << 20)
        let kib = 16
        let manager = try CheckpointManager(directory: disk.url, options: F.options())
        for step in 0..<2 { try manager.save(step: step, state: try Self.state(step: step, kib: kib)) }
        try manager.close()
        try disk.remountReadOnly()
        let error = try #require(throws: CatalogError.self) {
            let manager = try CheckpointManager(directory: disk.url, options: F.options())
            try manager.save(step: 2, state: try Self.state(step: 2, kib: kib))
        }
        #expect(error.code == .io, "\(error)")
        for step in 0..<2 {
            let loaded = try StateValue(contentsOf: manager.checkpointURL(step: step))
            try loaded.verifyChecksums()
            #expect(loaded == (try Self.state(step: step, kib: kib)))
        }
    }
}
