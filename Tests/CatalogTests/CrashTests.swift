import Catalog
import Checkpoint
import Foundation
import TestSupport
import Testing

/// Other processes: a trainer SIGKILLed at random points of saving and pruning, and a trainer and
/// an evaluator writing to one catalog at once.
@Suite(.serialized) struct CrashTests {
    typealias F = CatalogFixtures

    /// Kills per run of the suite; `make crash-test` sets CKPT_CRASH_ITERATIONS higher.
    static let iterations = ProcessInfo.processInfo.environment["CKPT_CRASH_ITERATIONS"].flatMap(Int.init) ?? 200
    static let seed = ProcessInfo.processInfo.environment["CKPT_CRASH_SEED"].flatMap(UInt64.init) ?? 0xC4A5_4001

    /// The steps the killed process reported as committed, in order.
    static func committedSteps(_ run: TemporaryDirectory) -> [Int] {
        let text = (try? String(contentsOfFile: run.path("progress.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            line.hasPrefix("committed ") ? Int(line.dropFirst("committed ".count)) : nil
        }
    }

    /// Every committed row's file loads, verifies and holds its step's values.
    static func expectCommittedFilesLoad(_ manager: CheckpointManager, _ context: String) throws {
        for entry in try manager.all() where entry.status == .committed {
            let state = try CheckpointFileInfoProbe.load(entry.url)
            #expect(state == (try F.state(step: entry.step)), "\(context): step \(entry.step) holds other values")
        }
    }

    /// After reconcile: rows and files are the same set, all committed, and no temp file is left.
    static func expectCatalogMatchesDirectory(_ manager: CheckpointManager, _ context: String) throws {
        let folder = manager.checkpointURL(step: 0).deletingLastPathComponent()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        let entries = try manager.all()
        #expect(entries.allSatisfy { $0.status == .committed }, "\(context): \(entries.map { "\($0.step) \($0.status)" })")
        #expect(Set(names) == Set(entries.map { $0.url.lastPathComponent }), "\(context): files \(names.sorted()) rows \(entries.map(\.step))")
    }

    @Test func aSaveOrPruneKilledAtAnyPointIsRecoverable() throws {
        let run = try TemporaryDirectory()
        var random = SplitMix64(seed: Self.seed)
        var crashPointKills = 0
        var timedKills = 0
        var lastCommitted = -1
        var repairs: [String: Int] = [:]
        let started = Date()
        for iteration in 0..<Self.iterations {
            let context = "iteration \(iteration) (seed \(Self.seed))"
            // Half the kills at a named crash point (the k-th one the process reaches), half after a
            // random delay, which lands anywhere: inside the file write, an fsync, a transaction.
            var environment: [String: String] = [:]
            if iteration % 2 == 0 {
                environment["CATALOG_CRASH_AT"] = String(Int.random(in: 1...24, using: &random))
            }
            let process = try F.start(["loop", run.url.path], environment: environment)
            if iteration % 2 == 0 {
                let deadline = Date().addingTimeInterval(30)
                while process.isRunning, Date() < deadline { usleep(2000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                crashPointKills += 1
            } else {
                usleep(UInt32.random(in: 20_000...120_000, using: &random))
                kill(process.processIdentifier, SIGKILL)
                timedKills += 1
            }
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "\(context): the helper exited with \(process.terminationStatus)")

            let manager = try CheckpointManager(
                directory: run.url, options: .init(pruneAfterSave: false))
            // Before any repair: what was reported committed is committed, every committed file
            // loads, and restore picks the newest committed step.
            let reported = Self.committedSteps(run).last ?? -1
            #expect(reported >= lastCommitted, "\(context)")
            lastCommitted = reported
            try Self.expectCommittedFilesLoad(manager, context)
            let newestCommitted = try manager.all().filter { $0.status == .committed }.map(\.step).max()
            if reported >= 0 {
                #expect(newestCommitted ?? -1 >= reported, "\(context): step \(reported) was reported committed, newest is \(String(describing: newestCommitted))")
            }
            #expect(try manager.latest()?.step == newestCommitted, "\(context)")
            let restored = try manager.restore()
            #expect(restored?.entry.step == newestCommitted, "\(context): restore picked \(String(describing: restored?.entry.step))")
            // After reconcile the catalog matches the directory.
            for repair in try manager.reconcile().repairs { repairs[repair.kind.rawValue, default: 0] += 1 }
            try Self.expectCatalogMatchesDirectory(manager, context)
            // The helper keeps every 5th step; thin those out now and then so each iteration's
            // checks stay short however many iterations run.
            if iteration % 25 == 24 {
                try manager.prune(policy: RetentionPolicy(keepLast: 3))
                try Self.expectCatalogMatchesDirectory(manager, context + " after pruning")
            }
            try manager.close()
        }
        #expect(crashPointKills + timedKills == Self.iterations)
        #expect(lastCommitted > 0)
        // The named crash points leave each kind of unfinished operation at least once.
        if Self.iterations >= 100 {
            for kind in ["committedFinishedWrite", "removedUnfinishedWrite", "finishedDeletion"] {
                #expect(repairs[kind, default: 0] > 0, "no kill left a \(kind) to repair: \(repairs)")
            }
        }
        print("crash test: \(Self.iterations) kills (\(crashPointKills) at crash points, \(timedKills) at random times), reached step \(lastCommitted), repairs \(repairs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")), \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        let integrity = try CatalogFileTests.sql(CheckpointManager.catalogURL(in: run.url).path, "PRAGMA integrity_check")
        #expect(integrity == ["ok"])
    }

    @Test func aTrainerAndAnEvaluatorNeverSeeBusy() throws {
        let run = try TemporaryDirectory()
        let count = ProcessInfo.processInfo.environment["CKPT_CONTENTION_COMMITS"].flatMap(Int.init) ?? 1000
        let started = Date()
        let trainerOut = run.url.appendingPathComponent("trainer.out")
        let evaluatorOut = run.url.appendingPathComponent("evaluator.out")
        // The catalog exists before both start, so neither races to create the directory.
        try CheckpointManager(directory: run.url).close()
        let trainer = try F.start(["commits", run.url.path, "trainer", String(count)], output: trainerOut)
        let evaluator = try F.start(["commits", run.url.path, "evaluator", String(count)], output: evaluatorOut)
        trainer.waitUntilExit()
        evaluator.waitUntilExit()
        #expect(trainer.terminationStatus == 0)
        #expect(evaluator.terminationStatus == 0)
        let outputs = [trainerOut, evaluatorOut].map { (try? String(contentsOf: $0, encoding: .utf8)) ?? "" }
        #expect(outputs.allSatisfy { $0.hasPrefix("busy=0 ") }, "\(outputs)")
        print("contention: trainer \(outputs[0].trimmingCharacters(in: .whitespacesAndNewlines)), evaluator \(outputs[1].trimmingCharacters(in: .whitespacesAndNewlines)), \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        let path = CheckpointManager.catalogURL(in: run.url).path
        #expect(try CatalogFileTests.sql(path, "PRAGMA integrity_check") == ["ok"])
        #expect(try CatalogFileTests.sql(path, "SELECT count(*) FROM checkpoints WHERE status = 'committed'") == [String(count / 2)])
        #expect(try CatalogFileTests.sql(path, "SELECT count(*) FROM metrics WHERE name = 'eval'").first.flatMap(Int.init) ?? 0 > 0)
    }
}

/// Loads a checkpoint with every CRC checked, as restore does.
enum CheckpointFileInfoProbe {
    static func load(_ url: URL) throws -> StateValue {
        let state = try StateValue(contentsOf: url, options: LoadOptions(verifyChecksums: true))
        try state.verifyChecksums()
        return state
    }
}
