import Checkpoint
import Foundation
import Optim
import TestSupport
import Testing

/// A scheduler written outside Optim, as torch users subclass `LRScheduler`: halves the rate every
/// epoch after the first, recursively.
final class HalvingLR: LRScheduler {
    init(_ optimizer: Optimizer) throws {
        try super.init(optimizer: optimizer)
    }

    override func getLR() throws -> [Double] {
        optimizer.paramGroups.map { group in
            guard case .float(let lr)? = group["lr"] else { return .nan }
            return isInitial ? lr : lr / 2
        }
    }
}

/// Learning-rate schedulers used as a package outside this one would: train, save the scheduler
/// beside the optimizer in one file, resume in the documented order, continue on the same rates.
@Suite struct SchedulerAPITests {
    static func optimizer() throws -> Adagrad {
        try Adagrad([Parameter(try Tensor([1, 2] as [Float]))], lr: 0.1)
    }

    @Test func saveAndResumeASequentialSchedule() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-scheduler-api")
        let url = directory.url.appendingPathComponent("resume.pt")

        let optimizer = try Self.optimizer()
        let warmup = try LinearLR(optimizer, startFactor: 0.1, totalIters: 5)
        let decay = try CosineAnnealingLR(optimizer, tMax: 20, etaMin: 1e-4)
        let schedule = try SequentialLR(optimizer, schedulers: [warmup, decay], milestones: [5])
        for _ in 0..<12 {
            try optimizer.step()
            try schedule.step()
        }
        try StateValue.dict(["scheduler": schedule.stateDict(), "optimizer": optimizer.stateDict()]).write(to: url)
        var expected: [Double] = []
        for _ in 0..<10 {
            try optimizer.step()
            try schedule.step()
            expected += schedule.getLastLR()
        }

        let saved = try StateValue(contentsOf: url)
        let resumedOptimizer = try Self.optimizer()
        let resumed = try SequentialLR(
            resumedOptimizer,
            schedulers: [try LinearLR(resumedOptimizer, startFactor: 0.1, totalIters: 5),
                         try CosineAnnealingLR(resumedOptimizer, tMax: 20, etaMin: 1e-4)],
            milestones: [5])
        try resumed.loadStateDict(try #require(saved["scheduler"]))
        try resumedOptimizer.loadStateDict(try #require(saved["optimizer"]))
        #expect(resumed.lastEpoch == 12)
        var observed: [Double] = []
        for _ in 0..<10 {
            try resumedOptimizer.step()
            try resumed.step()
            observed += resumed.getLastLR()
        }
        #expect(observed == expected)
    }

    @Test func loadingTheOptimizerFirstIsReported() throws {
        let source = try Self.optimizer()
        _ = try StepLR(source, stepSize: 3)
        let optimizer = try Self.optimizer()
        try optimizer.loadStateDict(source.stateDict())
        // StepLR keeps the loaded lr at construction; LinearLR scales it.
        #expect(try StepLR(optimizer, stepSize: 3).warnings.isEmpty)
        #expect(throws: LoadOrderError.self) { try LinearLR(optimizer, startFactor: 0.5) }
        let warned = try LinearLR(optimizer, startFactor: 0.5, loadOrderCheck: .warn)
        #expect(warned.warnings.count == 1)
    }

    @Test func perGroupOptionsAndASubclass() throws {
        let optimizer = try Self.optimizer()
        let cyclic = try CyclicLR(optimizer, baseLR: [0.01], maxLR: 0.1, stepSizeUp: 4, cycleMomentum: false)
        try cyclic.step()
        #expect(cyclic.getLastLR().count == 1 && cyclic.baseLRs == [0.01])

        let halving = try HalvingLR(try Self.optimizer())
        try halving.step()
        try halving.step()
        #expect(halving.getLastLR() == [0.025])
        #expect(halving.stateDict()["last_epoch"] == 2)
    }
}
