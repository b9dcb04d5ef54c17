import Catalog
import Checkpoint
import Foundation
import TestSupport
import Testing

/// Saving, listing, ranking and restoring through one manager.
@Suite struct CheckpointManagerTests {
    typealias F = CatalogFixtures

    @Test func savesRecordsAndRestores() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        #expect(try manager.latest() == nil)
        #expect(try manager.restore() == nil)
        for step in [100, 200, 300] {
            let entry = try manager.save(step: step, state: try F.state(step: step), metrics: ["loss": Double(1000 - step)])
            #expect(entry.status == .committed)
            #expect(entry.relativePath == "checkpoints/main/step-000000\(step).ckpt")
            #expect(FileManager.default.fileExists(atPath: entry.url.path))
        }
        let all = try manager.all()
        #expect(all.map(\.step) == [100, 200, 300])
        #expect(all.allSatisfy { $0.status == .committed && ($0.bytes ?? 0) > 0 && $0.manifestCRC32 != nil && $0.committed != nil })
        #expect(all.map { $0.metrics["loss"] } == [900, 800, 700])
        #expect(try manager.latest()?.step == 300)
        #expect(try manager.best(metric: "loss", mode: .min)?.step == 300)
        #expect(try manager.best(metric: "loss", mode: .max)?.step == 100)
        #expect(try manager.best(metric: "accuracy", mode: .max) == nil)
        let restored = try #require(try manager.restore())
        #expect(restored.entry.step == 300)
        #expect(restored.skipped.isEmpty)
        #expect(restored.state == (try F.state(step: 300)))
        #expect(try manager.restore(step: 100)?.state == (try F.state(step: 100)))
        #expect(try manager.restore(bestBy: "loss", mode: .max)?.entry.step == 100)
        #expect(throws: CatalogError.self) { try manager.restore(step: 150) }
        // The file carries what the catalog needs.
        let metadata = try #require(try StateValue.metadata(contentsOf: all[0].url))
        guard case .dict(let top) = metadata, case .dict(let record)? = top["catalog"] else { Issue.record("\(metadata)"); return }
        #expect(record["step"] == .int(100))
        #expect(record["run"] == .string("main"))
        try manager.close()
    }

    @Test func shouldSaveFollowsTheInterval() throws {
        let run = try TemporaryDirectory()
        let every = try CheckpointManager(directory: run.url, options: F.options(saveInterval: 50))
        #expect((0..<200).filter(every.shouldSave) == [0, 50, 100, 150])
        let always = try CheckpointManager(directory: run.url, run: "other", options: F.options())
        #expect((0..<3).allSatisfy(always.shouldSave))
        #expect(throws: CatalogError.self) { try CheckpointManager(directory: run.url, options: F.options(saveInterval: 0)) }
    }

    @Test func retentionRunsAfterEachSave() throws {
        let run = try TemporaryDirectory()
        let policy = RetentionPolicy(keepLast: 2, keepBest: 1, metric: "loss", mode: .min)
        let manager = try CheckpointManager(directory: run.url, options: F.options(policy))
        let losses: [Int: Double] = [1: 5, 2: 1, 3: 4, 4: 3, 5: 6]
        for step in 1...5 { try manager.save(step: step, state: try F.state(step: step), metrics: ["loss": losses[step]!]) }
        #expect(try manager.all().map(\.step) == [2, 4, 5])
        let files = try FileManager.default.contentsOfDirectory(atPath: run.path("checkpoints/main")).sorted()
        #expect(files == ["step-000000002.ckpt", "step-000000004.ckpt", "step-000000005.ckpt"])
        // A dry run with another policy changes nothing.
        let dry = try manager.prune(policy: RetentionPolicy(keepLast: 1), dryRun: true)
        #expect(dry.dryRun && dry.plan.deleted.map(\.step) == [4, 2])
        #expect(try manager.all().count == 3)
        let real = try manager.prune(policy: RetentionPolicy(keepLast: 1))
        #expect(real.plan.kept.map(\.entry.step) == [5])
        #expect(try manager.all().map(\.step) == [5])
    }

    @Test func savingAStepAgainReplacesIt() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try manager.save(step: 7, state: try F.state(step: 1), metrics: ["loss": 1])
        try manager.save(step: 7, state: try F.state(step: 7), metrics: ["loss": 2])
        let all = try manager.all()
        #expect(all.count == 1)
        #expect(all[0].metrics == ["loss": 2])
        #expect(try manager.restore()?.state == (try F.state(step: 7)))
    }

    @Test func metricsKeepNaNAndEvaluatorsAddMore() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try manager.save(step: 1, state: try F.state(step: 1), metrics: ["loss": .nan, "lr": .infinity])
        try manager.save(step: 2, state: try F.state(step: 2), metrics: ["loss": 3])
        let first = try #require(try manager.entry(step: 1))
        #expect(first.metrics["loss"]?.isNaN == true)
        #expect(first.metrics["lr"] == .infinity)
        // NaN is never best.
        #expect(try manager.best(metric: "loss", mode: .max)?.step == 2)
        let evaluator = try CheckpointManager(directory: run.url, options: F.options())
        #expect(try evaluator.recordMetrics(step: 1, metrics: ["accuracy": 0.5]))
        #expect(try !evaluator.recordMetrics(step: 99, metrics: ["accuracy": 0.5]))
        #expect(try manager.entry(step: 1)?.metrics["accuracy"] == 0.5)
        #expect(try manager.best(metric: "accuracy", mode: .max)?.step == 1)
    }

    @Test func runsShareOneCatalog() throws {
        let run = try TemporaryDirectory()
        let main = try CheckpointManager(directory: run.url, options: F.options())
        let ablation = try CheckpointManager(directory: run.url, run: "ablation-1", options: F.options())
        try main.save(step: 1, state: try F.state(step: 1))
        try main.save(step: 2, state: try F.state(step: 2))
        try ablation.save(step: 1, state: try F.state(step: 10))
        #expect(try main.all().map(\.step) == [1, 2])
        #expect(try ablation.restore()?.state == (try F.state(step: 10)))
        let runs = try CheckpointManager.runs(in: run.url)
        #expect(runs.map(\.name) == ["ablation-1", "main"])
        #expect(runs.map(\.latestStep) == [1, 2])
        #expect(runs[1].counts[.committed] == 2)
        #expect(runs[1].committedBytes > 0)
        for bad in ["", ".hidden", "a/b", "x y", String(repeating: "a", count: 101)] {
            #expect(throws: CatalogError.self) { try CheckpointManager(directory: run.url, run: bad, options: F.options()) }
        }
    }

    @Test func readOnlyOpenDoesNotCreate() throws {
        let run = try TemporaryDirectory()
        var options = F.options()
        options.createIfMissing = false
        let error = #expect(throws: CatalogError.self) { try CheckpointManager(directory: run.url, options: options) }
        #expect(error?.code == .notFound)
        #expect(!FileManager.default.fileExists(atPath: CheckpointManager.catalogURL(in: run.url).path))
        #expect(throws: CatalogError.self) { try CheckpointManager.runs(in: run.url) }
    }

    @Test func restoreSkipsMissingAndCorruptCheckpoints() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        for step in 1...4 { try manager.save(step: step, state: try F.state(step: step)) }
        let entries = try manager.all()
        try FileManager.default.removeItem(at: entries[3].url)
        try F.corrupt(entries[2].url, at: try F.firstBlobOffset(entries[2].url) + 10)
        let restored = try #require(try manager.restore())
        #expect(restored.entry.step == 2)
        #expect(restored.skipped.map(\.entry.step) == [4, 3])
        #expect(restored.skipped.map(\.reason) == [.missing, .corrupt])
        let verified = try #require(try manager.latestVerified())
        #expect(verified.entry.step == 2)
        // Restoring a given step that does not verify says why.
        let error = #expect(throws: CatalogError.self) { try manager.restore(step: 3) }
        #expect(error?.code == .noValidCheckpoint)
        // Nothing verifies: an error listing each, not a silent fresh start.
        try F.corrupt(entries[1].url, at: try F.firstBlobOffset(entries[1].url))
        try FileManager.default.removeItem(at: entries[0].url)
        let none = #expect(throws: CatalogError.self) { try manager.restore() }
        #expect(none?.code == .noValidCheckpoint)
        #expect(none.map { "\($0)".contains("step 3") } == true)
    }

    /// A .ckpt loads from its manifest, so only the entry CRCs catch a damaged pickle, which
    /// torch.load would trip over.
    @Test func aDamagedPickleIsCorruptThoughTheManifestLoads() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        for step in 1...2 { try manager.save(step: step, state: try F.state(step: step)) }
        let newest = try #require(try manager.entry(step: 2)).url
        let pickle = try #require(try ZipReader(path: newest.path).entries.first { $0.name.hasSuffix("/data.pkl") })
        try F.corrupt(newest, at: pickle.dataOffset + 5)
        #expect(try StateValue(contentsOf: newest) == (try F.state(step: 2)), "the tree still loads from the manifest")
        let restored = try #require(try manager.restore())
        #expect(restored.entry.step == 1)
        #expect(restored.skipped.map(\.reason) == [.corrupt])
    }

    @Test func aReplacedFileIsNotTheRecordedOne() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try manager.save(step: 1, state: try F.state(step: 1))
        let second = try manager.save(step: 2, state: try F.state(step: 2))
        // Another valid file put in its place by hand (a different step's content and metadata).
        try FileManager.default.removeItem(at: second.url)
        try FileManager.default.copyItem(at: try #require(try manager.entry(step: 1)).url, to: second.url)
        let restored = try #require(try manager.restore())
        #expect(restored.entry.step == 1)
        #expect(restored.skipped.first?.reason == .corrupt)
    }

    @Test func invalidArguments() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        #expect(throws: CatalogError.self) { try manager.save(step: -1, state: try F.state(step: 0)) }
        #expect(throws: CatalogError.self) { try manager.saveAsync(step: -1, state: try F.state(step: 0)) }
        #expect(throws: CatalogError.self) { try manager.best() }
        #expect(throws: CatalogError.self) {
            try CheckpointManager(directory: run.url, options: F.options(RetentionPolicy(keepBest: 1)))
        }
        #expect(CheckpointManager.fileName(step: 12) == "step-000000012.ckpt")
        #expect(CheckpointManager.fileName(step: 1_234_567_890) == "step-1234567890.ckpt")
    }
}
