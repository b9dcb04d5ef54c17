import Checkpoint
import Foundation
import Testing
import TestSupport
@testable import Optim

// Scheduler state dicts both ways. torch → ckpt: the states torch.save wrote at several steps load
// into schedulers built as torch's docs say (scheduler, its state, then the optimizer's), save back
// unchanged, and continue on torch's recorded rates. ckpt → torch: ckpt's states, written by the
// Checkpoint writer, load in torch with weights_only=True and continue on the same rates there.

@Suite struct SchedulerStateTests {
    static func saved(_ name: String) throws -> StateValue {
        try StateValue(contentsOf: SchedulerFixtures.directory.appendingPathComponent("states/\(name).pt"))
    }

    /// Runs a fresh optimizer and scheduler through `operations`, returning each group's rates.
    static func run(
        _ scheduler: LRScheduler, _ optimizer: Optimizer, _ operations: some Sequence<SchedulerFixtures.Operation>
    ) throws -> (lrs: [[Double]], error: OptimizerError?) {
        var lrs = Array(repeating: [Double](), count: optimizer.paramGroups.count)
        for operation in operations {
            try optimizer.step()
            do {
                try SchedulerFixtures.apply(operation, to: scheduler)
            } catch let error as OptimizerError {
                return (lrs, error)
            }
            for (index, lr) in try optimizer.groupNumbers("lr").enumerated() { lrs[index].append(lr) }
        }
        return (lrs, nil)
    }

    @Test func statesArePresent() {
        #expect(SchedulerFixtures.savedNames.count >= 20)
    }

    /// torch's state loads, saves back equal to what torch wrote (same keys, order and Python
    /// types), and the run continues on torch's rates bit for bit.
    @Test(arguments: SchedulerFixtures.savedNames)
    func torchStateLoadsAndContinues(_ name: String) throws {
        let scenario = try SchedulerFixtures.scenario(name)
        let file = try Self.saved(name)
        for step in scenario.saveAt {
            let saved = try #require(file[.string("at_\(step)")])
            let (savedScheduler, savedOptimizer) = (try #require(saved["scheduler"]), try #require(saved["optimizer"]))
            let optimizer = try scenario.makeOptimizer()
            let scheduler = try scenario.makeScheduler(on: optimizer)
            try scheduler.loadStateDict(savedScheduler)
            try optimizer.loadStateDict(savedOptimizer)
            #expect(scheduler.stateDict() == savedScheduler, "at \(step): \(SchedulerFixtures.pythonDifference(scheduler.stateDict(), savedScheduler) ?? "types differ")")
            #expect(scheduler.getLastLR().map(\.bitPattern) == scenario.lrs(after: step).map(\.bitPattern), "at \(step)")

            let (lrs, error) = try Self.run(scheduler, optimizer, scenario.operations[step...])
            for (group, observed) in lrs.enumerated() {
                let expected = Array(scenario.lrs[group][(step + 1)...])
                #expect(SchedulerFixtures.firstMismatch(observed, expected) == nil, "from step \(step), group \(group)")
            }
            #expect(error?.message == scenario.error, "from step \(step)")
        }
    }

    /// ckpt's own run, saved at the same steps, equals torch's saved state (Python's `==`: ckpt's
    /// hyperparameters given as Swift Doubles are floats where torch's caller may have passed ints).
    @Test(arguments: SchedulerFixtures.savedNames)
    func stateAtEachStepMatchesTorch(_ name: String) throws {
        let scenario = try SchedulerFixtures.scenario(name)
        let file = try Self.saved(name)
        for step in scenario.saveAt {
            let saved = try #require(file[.string("at_\(step)")])
            let optimizer = try scenario.makeOptimizer()
            let scheduler = try scenario.makeScheduler(on: optimizer)
            _ = try Self.run(scheduler, optimizer, scenario.operations.prefix(step))
            #expect(SchedulerFixtures.pythonDifference(scheduler.stateDict(), try #require(saved["scheduler"])) == nil, "at \(step)")
            #expect(SchedulerFixtures.pythonDifference(optimizer.stateDict(), try #require(saved["optimizer"])) == nil, "at \(step)")
        }
    }

    /// ckpt's states at every save point, written as `.pt` by the Checkpoint writer, read by
    /// `torch.load(weights_only=True)` into torch schedulers that then continue on the rates torch
    /// recorded (scripts/check_scheduler_interop.py does the torch side).
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason))
    func torchLoadsCkptStatesAndContinues() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-schedulers")
        for name in SchedulerFixtures.savedNames {
            let scenario = try SchedulerFixtures.scenario(name)
            var states = StateDict()
            for step in scenario.saveAt {
                let optimizer = try scenario.makeOptimizer()
                let scheduler = try scenario.makeScheduler(on: optimizer)
                _ = try Self.run(scheduler, optimizer, scenario.operations.prefix(step))
                states[.string("at_\(step)")] = ["scheduler": scheduler.stateDict(), "optimizer": optimizer.stateDict()]
            }
            try StateValue.dict(states).write(to: directory.url.appendingPathComponent("\(name).pt"), options: SaveOptions(durable: false))
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/check_scheduler_interop.py")
        let result = try TorchVenv.run([script.path, directory.url.path])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("\(SchedulerFixtures.savedNames.count) files, 0 failures"), "\(result.output)")
    }
}
