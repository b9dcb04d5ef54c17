import Catalog
import Checkpoint
import Foundation
import TestSupport
import Testing

/// reconcile classifies every row and file a crash or a person can leave behind.
@Suite struct ReconcileTests {
    typealias F = CatalogFixtures

    static func managerWithSteps(_ run: TemporaryDirectory, _ steps: [Int]) throws -> CheckpointManager {
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        for step in steps { try manager.save(step: step, state: try F.state(step: step), metrics: ["loss": Double(step)]) }
        return manager
    }

    static func sql(_ run: TemporaryDirectory, _ statement: String) throws {
        _ = try CatalogFileTests.sql(CheckpointManager.catalogURL(in: run.url).path, statement)
    }

    @Test func aCleanDirectoryNeedsNoRepair() throws {
        let run = try TemporaryDirectory()
        let manager = try Self.managerWithSteps(run, [1, 2, 3])
        let report = try manager.reconcile(verify: true)
        #expect(report.repairs.isEmpty)
        #expect(report.filesChecked == 3)
        #expect("\(report)".contains("matches"))
    }

    @Test func aFileDeletedByHandLeavesTheValidList() throws {
        let run = try TemporaryDirectory()
        let manager = try Self.managerWithSteps(run, [1, 2, 3])
        try FileManager.default.removeItem(at: manager.checkpointURL(step: 3))
        let report = try manager.reconcile()
        #expect(report.repairs.map(\.kind) == [.removedMissingFile])
        #expect(report.repairs.first?.step == 3)
        #expect(try manager.all().map(\.step) == [1, 2])
        #expect(try manager.latest()?.step == 2)
    }

    @Test func aCorruptNewestIsPassedOverAndMarked() throws {
        let run = try TemporaryDirectory()
        let manager = try Self.managerWithSteps(run, [1, 2, 3])
        let newest = manager.checkpointURL(step: 3)
        try F.corrupt(newest, at: try F.firstBlobOffset(newest) + 3)
        #expect(try manager.latestVerified()?.entry.step == 2)
        // Without verify, only size and manifest CRC are compared: a flipped blob byte passes.
        #expect(try manager.reconcile().repairs.isEmpty)
        let report = try manager.reconcile(verify: true)
        #expect(report.repairs.map(\.kind) == [.markedCorrupt])
        #expect(try manager.entry(step: 3)?.status == .corrupt)
        #expect(try manager.latest()?.step == 2)
        // A truncated file is caught without verify.
        let second = manager.checkpointURL(step: 2)
        let handle = try FileHandle(forUpdating: second)
        try handle.truncate(atOffset: 100)
        try handle.close()
        #expect(try manager.reconcile().repairs.map(\.kind) == [.markedCorrupt])
        #expect(try manager.restore()?.entry.step == 1)
    }

    @Test func rowsLeftByADeadProcessAreSettled() throws {
        let run = try TemporaryDirectory()
        let manager = try Self.managerWithSteps(run, [1, 2, 3, 4])
        try FileManager.default.removeItem(at: manager.checkpointURL(step: 4))
        // As a crash leaves them: 2 deleting (file still there), 3 writing with its file complete,
        // 4 writing with no file. A NULL writer is a writer that cannot be alive.
        try Self.sql(run, "UPDATE checkpoints SET status = 'deleting', writer = NULL WHERE step = 2")
        try Self.sql(run, "UPDATE checkpoints SET status = 'writing', writer = NULL, bytes = NULL, manifest_crc32 = NULL WHERE step IN (3, 4)")
        try Self.sql(run, "DELETE FROM metrics WHERE checkpoint_id = (SELECT id FROM checkpoints WHERE step = 3)")
        #expect(try manager.latest()?.step == 1)
        let restored = try #require(try manager.restore())
        #expect(restored.entry.step == 1)
        #expect(restored.skipped.map(\.reason) == [.writing, .writing, .deleting])
        let report = try manager.reconcile()
        let kinds = Dictionary(uniqueKeysWithValues: report.repairs.map { ($0.step!, $0.kind) })
        #expect(kinds == [2: .finishedDeletion, 3: .committedFinishedWrite, 4: .removedUnfinishedWrite])
        #expect(!FileManager.default.fileExists(atPath: manager.checkpointURL(step: 2).path))
        #expect(try manager.all().map(\.step) == [1, 3])
        // The metrics came back from the file.
        #expect(try manager.entry(step: 3)?.metrics == ["loss": 3])
        #expect(try manager.reconcile().repairs.isEmpty)
    }

    @Test func unrecordedFilesAndTemporaryFiles() throws {
        let run = try TemporaryDirectory()
        let manager = try Self.managerWithSteps(run, [1])
        // A checkpoint written by another manager into this layout, a damaged one, a temp file
        // of a save that died, and a stranger.
        let other = try TemporaryDirectory()
        let elsewhere = try Self.managerWithSteps(other, [7, 8])
        let folder = manager.checkpointURL(step: 0).deletingLastPathComponent()
        try FileManager.default.copyItem(at: elsewhere.checkpointURL(step: 7), to: manager.checkpointURL(step: 7))
        try FileManager.default.copyItem(at: elsewhere.checkpointURL(step: 8), to: manager.checkpointURL(step: 8))
        try F.corrupt(manager.checkpointURL(step: 8), at: try F.firstBlobOffset(manager.checkpointURL(step: 8)))
        try Data("partial".utf8).write(to: folder.appendingPathComponent(".step-000000009.ckpt.tmp-Ab12Cd"))
        try Data("notes".utf8).write(to: folder.appendingPathComponent("README"))
        let report = try manager.reconcile()
        let kinds = Dictionary(uniqueKeysWithValues: report.repairs.map { ($0.step!, $0.kind) })
        #expect(kinds == [7: .addedUnrecordedFile, 8: .addedCorruptFile, 9: .removedTemporaryFile])
        #expect(report.unrecognized == ["checkpoints/main/README"])
        #expect(try manager.all().map { "\($0.step) \($0.status)" } == ["1 committed", "7 committed", "8 corrupt"])
        #expect(try manager.entry(step: 7)?.metrics == ["loss": 7])
        #expect(try manager.restore()?.entry.step == 7)
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent(".step-000000009.ckpt.tmp-Ab12Cd").path))
        // Pruning deletes only committed checkpoints; the corrupt one stays for inspection.
        try manager.prune(policy: RetentionPolicy(keepLast: 1))
        #expect(try manager.all().map(\.step) == [7, 8])
    }

    @Test func rebuildRecreatesTheCatalogFromTheFiles() throws {
        let run = try TemporaryDirectory()
        let manager = try Self.managerWithSteps(run, [10, 20, 30])
        let ablation = try CheckpointManager(directory: run.url, run: "ablation", options: F.options())
        try ablation.save(step: 5, state: try F.state(step: 5), metrics: ["loss": 0.5])
        try manager.recordMetrics(step: 10, metrics: ["eval": 1])
        try manager.close()
        try ablation.close()
        let report = try CheckpointManager.reconcile(directory: run.url, rebuild: true, options: F.options())
        #expect(report.repairs.first?.kind == .movedCatalogAside)
        #expect(report.repairs.filter { $0.kind == .addedUnrecordedFile }.map { "\($0.run!) \($0.step!)" } == ["ablation 5", "main 10", "main 20", "main 30"])
        let names = try FileManager.default.contentsOfDirectory(atPath: run.url.path)
        #expect(names.contains { $0.hasPrefix("catalog.sqlite.broken-") })
        let rebuilt = try CheckpointManager(directory: run.url, options: F.options())
        #expect(try rebuilt.all().map(\.step) == [10, 20, 30])
        // Metrics saved in the files come back; those recorded only in the catalog do not.
        #expect(try rebuilt.entry(step: 10)?.metrics == ["loss": 10])
        #expect(try CheckpointManager.runs(in: run.url).map(\.name) == ["ablation", "main"])
    }

    @Test func aDeletedCatalogIsRefilledWhenOpened() throws {
        let run = try TemporaryDirectory()
        try Self.managerWithSteps(run, [1, 2]).close()
        try FileManager.default.removeItem(at: CheckpointManager.catalogURL(in: run.url))
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: CheckpointManager.catalogURL(in: run.url).path + suffix) }
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        #expect(try manager.all().map(\.step) == [1, 2])
        #expect(try manager.restore()?.entry.step == 2)
    }
}
