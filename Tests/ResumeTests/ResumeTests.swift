import Catalog
import Checkpoint
import Foundation
import Optim
import Testing
import TestSupport

// Resuming a run: the model, the optimizer and the learning-rate schedule saved with TrainingState
// (Optim) through a CheckpointManager (Catalog), restored in a fresh manager into freshly built
// objects, and continued, against torch's uninterrupted run of the same training
// (Tests/Fixtures/schedulers/resume). Every expected value is torch's.

/// How a test saves through the manager.
enum SaveMode: String, CaseIterable, Sendable {
    case sync, async
}

/// Enables a test that compares with the runs' bits only where ckpt can reproduce them.
let reproducible = ConditionTrait.enabled(
    if: TorchRun.reproducible != nil, "the resume fixtures were recorded where ATen does not fuse multiply-adds; NOT checked")

@Suite struct ResumeTests {
    static let runs: [TorchRun] = TorchRun.reproducible ?? []

    static func manager(_ directory: URL) throws -> CheckpointManager {
        try CheckpointManager(directory: directory, options: .init(durable: false))
    }

    static func epoch(_ state: StateValue) -> Int? {
        if case .int(let epoch)? = state["epoch"] { Int(epoch) } else { nil }
    }

    @Test func fixturesArePresent() throws {
        let runs = try TorchRun.names.map { try TorchRun($0) }
        #expect(runs.map(\.saveAt) == [[5, 10, 37], [23]])
        for run in runs where !run.isReproducible {
            Issue.record("\(run) was recorded with ATen capability \(run.atenCapability), whose SGD does not fuse multiply-adds")
        }
    }

    /// torch's own checkpoint after step k loads through TrainingState into objects built as the
    /// torch trainer builds them, and the run continues on torch's rates and parameters.
    @Test(reproducible, arguments: runs)
    func torchCheckpointContinuesOnTorchsRun(_ run: TorchRun) throws {
        for k in run.saveAt {
            let saved = try run.checkpoint(after: k)
            let trainer = try Trainer(run)
            try trainer.training.loadStateDict(saved)
            #expect(Self.epoch(saved) == k)
            #expect(try trainer.lr.bitPattern == run.lrs[k].bitPattern, "\(run) at \(k)")
            for (parameter, expected) in zip(trainer.model, try run.parameters(after: k)) {
                #expect(try parameter.data.isBitwiseEqual(to: expected), "\(run) at \(k): \(parameter.name ?? "")")
            }
            #expect(try trainer.trainComparing(run, k..<TorchRun.steps) == nil, "\(run) from \(k)")
            #expect(trainer.schedulers.allSatisfy { $0.warnings.isEmpty })
        }
    }

    /// ckpt trains the run from torch's initial weights (torch's rates and parameters at every
    /// step), saving through a manager after each of the run's save points (sync, or async while
    /// training goes on, so the steps after a save write into the tensors it is snapshotting).
    static func trainAndSave(_ run: TorchRun, _ mode: SaveMode, into directory: URL) throws {
        let manager = try Self.manager(directory)
        let trainer = try Trainer(run, weights: run.initial)
        #expect(try trainer.lr.bitPattern == run.lrs[0].bitPattern)
        var done = 0
        for k in run.saveAt + [TorchRun.steps] {
            #expect(try trainer.trainComparing(run, done..<k) == nil, "\(run) \(mode): uninterrupted")
            done = k
            guard k < TorchRun.steps else { break }
            let state = try trainer.training.stateDict(adding: ["epoch": .int(Int64(k))])
            switch mode {
            case .sync: try manager.save(step: k, state: state, metrics: ["lr": try trainer.lr])
            case .async: try manager.saveAsync(step: k, state: state, metrics: ["lr": try trainer.lr])
            }
        }
        try manager.close()
    }

    /// A run saved by one manager at each save point, then restarted as a new process would: a new
    /// manager on the directory, a model with zero weights, a new optimizer and new schedulers
    /// (built in the run's order), the checkpoint restored through TrainingState. The continuation
    /// is torch's uninterrupted run, bit for bit, from every save point.
    @Test(reproducible, arguments: runs, SaveMode.allCases)
    func restartedRunContinuesOnTorchsRun(_ run: TorchRun, _ mode: SaveMode) throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-resume")
        try Self.trainAndSave(run, mode, into: directory.url)

        for k in run.saveAt {
            let manager = try Self.manager(directory.url)
            defer { try? manager.close() }
            // The newest checkpoint, as a restarted trainer asks for it; earlier ones by step.
            let restored = try #require(k == run.saveAt.last ? try manager.restore() : try manager.restore(step: k))
            #expect(restored.entry.step == k && restored.skipped.isEmpty)
            #expect(restored.entry.metrics["lr"] == run.lrs[k])

            let trainer = try Trainer(run)
            try trainer.training.loadStateDict(restored.state)
            let start = try #require(Self.epoch(restored.state))
            #expect(start == k)
            #expect(try trainer.lr.bitPattern == run.lrs[k].bitPattern, "\(run) \(mode) at \(k)")
            #expect(try trainer.trainComparing(run, start..<TorchRun.steps) == nil, "\(run) \(mode): resumed after \(k)")
        }
    }

    /// ckpt's checkpoint holds what torch's does at the same step: the same weights, the same
    /// scheduler states (Python types and key order included), the same optimizer state; the
    /// optimizer's groups also name their parameters (`param_names`), as torch's do for an
    /// optimizer built on `model.named_parameters()`.
    @Test(reproducible, arguments: runs)
    func savedTreeIsTorchs(_ run: TorchRun) throws {
        let trainer = try Trainer(run, weights: run.initial)
        var done = 0
        for k in run.saveAt {
            #expect(try trainer.trainComparing(run, done..<k) == nil)
            done = k
            let ours = try trainer.training.stateDict(adding: ["epoch": .int(Int64(k))])
            let torch = try run.checkpoint(after: k)
            #expect(ours.children.map(\.key) == torch.children.map(\.key))
            #expect(ours[.string(run.key)] == torch[.string(run.key)], "\(run) at \(k)")
            #expect(ours["epoch"] == torch["epoch"])
            // An OrderedDict, as torch's, without torch's `_metadata` (module versions): ckpt has no modules.
            guard case .dict(let weights)? = ours["model"], case .dict(let torchWeights)? = torch["model"] else {
                Issue.record("no model")
                continue
            }
            #expect(weights.isOrderedDict && torchWeights.isOrderedDict)
            #expect(weights.map(\.key) == torchWeights.map(\.key))
            for ((_, a), (_, b)) in zip(weights, torchWeights) {
                guard case .tensor(let x) = a, case .tensor(let y) = b else { Issue.record("not tensors"); continue }
                #expect(try x.isBitwiseEqual(to: y))
            }
            let (optimizer, torchOptimizer) = (try #require(ours["optimizer"]), try #require(torch["optimizer"]))
            #expect(optimizer["state"] == torchOptimizer["state"], "\(run) at \(k)")
            guard case .list(let groups)? = optimizer["param_groups"], case .list(let torchGroups)? = torchOptimizer["param_groups"],
                  case .dict(var group)? = groups.first
            else { Issue.record("no param_groups"); continue }
            #expect(group["param_names"] == .list(TorchRun.parameterNames.map { .string($0) }))
            group["param_names"] = nil
            #expect([StateValue.dict(group)] == torchGroups, "\(run) at \(k)")
        }
    }

    /// torch reads ckpt's checkpoints, written by the manager (sync and async), with
    /// `weights_only=True`, finds its own weights at that step, and continues on exactly its own
    /// run (scripts/check_resume_interop.py).
    @Test(reproducible, .enabled(if: TorchVenv.python != nil, TorchVenv.skipReason))
    func torchResumesCkptCheckpoints() throws {
        var arguments: [String] = []
        var directories: [TemporaryDirectory] = []
        for run in Self.runs {
            for mode in SaveMode.allCases {
                let directory = try TemporaryDirectory(prefix: "ckpt-resume-torch")
                directories.append(directory)
                try Self.trainAndSave(run, mode, into: directory.url)
                let manager = try Self.manager(directory.url)
                defer { try? manager.close() }
                for k in run.saveAt {
                    let entry = try #require(try manager.entry(step: k))
                    arguments.append("\(run.name):\(k):\(entry.url.path)")
                }
            }
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/check_resume_interop.py")
        let result = try TorchVenv.run([script.path] + arguments)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("\(arguments.count) checkpoints, 0 failures"), "\(result.output)")
        #expect(arguments.count == 2 * Self.runs.map(\.saveAt.count).reduce(0, +))
    }
}
