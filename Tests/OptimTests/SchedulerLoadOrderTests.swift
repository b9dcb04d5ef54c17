import Checkpoint
import Testing
@testable import Optim

// The load-order hazard of torch's docs, on the page example's files: loading the optimizer's
// state and then building the schedulers overwrites the loaded learning rates. torch does it
// silently; the fixture records the lr and initial_lr torch's group had after each stage of that
// wrong order, and ckpt must report exactly the stages where they changed, reproduce torch's values
// when told to go on, and say nothing in the documented order.

@Suite struct SchedulerLoadOrderTests {
    /// torch's group 0 after each stage of the wrong order: (stage, lr, initial_lr).
    static func torchStages() throws -> [(stage: String, lr: Double, initialLR: Double)] {
        let stages = try #require(try PageExample.json.get()["wrong_order_stages"] as? [[String: String]])
        return try stages.map { stage in
            (stage["after"] ?? "", try SchedulerFixtures.double(hex: stage["lr"] ?? ""),
             try SchedulerFixtures.double(hex: stage["initial_lr"] ?? ""))
        }
    }

    static func loadedOptimizer() throws -> (model: [Parameter], optimizer: Optimizer) {
        let model = try PageExample.model()
        let optimizer = try PageExample.makeOptimizer(model)
        try optimizer.loadStateDict(PageExample.file("save_optim.pt"))
        return (model, optimizer)
    }

    static func group0(_ optimizer: Optimizer) throws -> (lr: Double, initialLR: Double) {
        (try optimizer.groupNumber("lr", group: 0), try optimizer.groupNumber("initial_lr", group: 0))
    }

    @Test func rightOrderReportsNothing() throws {
        let model = try PageExample.model()
        let optimizer = try PageExample.makeOptimizer(model)
        let lr = try PageExample.schedulers(optimizer)
        try lr.loadStateDict(PageExample.file("save_seq.pt"))
        try optimizer.loadStateDict(PageExample.file("save_optim.pt"))
        #expect(lr.warnings.isEmpty && lr.schedulers.allSatisfy { $0.warnings.isEmpty })
    }

    /// Under `.warn`, each constructor keeps torch's (wrong) result and warns exactly when it changed
    /// the group's lr or initial_lr, as torch's recorded stages show; the run then continues on
    /// torch's wrong-order rates, bit for bit.
    @Test func wrongOrderWarnsWhereTorchChangedTheRatesAndOtherwiseMatchesTorch() throws {
        let stages = try Self.torchStages()
        #expect(stages.map(\.stage) == ["optimizer.load_state_dict", "LinearLR", "CosineAnnealingLR", "SequentialLR", "lr.load_state_dict"])
        let (model, optimizer) = try Self.loadedOptimizer()
        var observed = [try Self.group0(optimizer)]
        let scheduler1 = try LinearLR(optimizer, startFactor: 0.1, endFactor: 1, totalIters: 20, loadOrderCheck: .warn)
        observed.append(try Self.group0(optimizer))
        let scheduler2 = try CosineAnnealingLR(optimizer, tMax: 80, etaMin: 3e-5, loadOrderCheck: .warn)
        observed.append(try Self.group0(optimizer))
        let lr = try SequentialLR(optimizer, schedulers: [scheduler1, scheduler2], milestones: [20], loadOrderCheck: .warn)
        observed.append(try Self.group0(optimizer))
        try lr.loadStateDict(PageExample.file("save_seq.pt"))
        observed.append(try Self.group0(optimizer))

        for (stage, (ours, torch)) in zip(stages.map(\.stage), zip(observed, stages)) {
            #expect(ours.lr.bitPattern == torch.lr.bitPattern && ours.initialLR.bitPattern == torch.initialLR.bitPattern, "after \(stage)")
        }
        let constructors: [LRScheduler] = [scheduler1, scheduler2, lr]
        for (index, scheduler) in constructors.enumerated() {
            let (previous, after) = (stages[index], stages[index + 1])
            let torchChanged = previous.lr != after.lr || previous.initialLR != after.initialLR
            #expect(scheduler.warnings.count == (torchChanged ? 1 : 0), "\(after.stage): \(scheduler.warnings)")
        }
        #expect(stages[1].lr != stages[0].lr, "the fixture shows torch overwriting the loaded lr")

        let (lrs, _) = try PageExample.train(model, optimizer, lr)
        #expect(SchedulerFixtures.firstMismatch(lrs, try PageExample.sequence("wrong_order_lrs")) == nil)
        #expect(SchedulerFixtures.firstMismatch(lrs, try PageExample.sequence("continuation_lrs")) != nil)
    }

    /// By default the first constructor that changes a loaded rate throws, naming the loaded and
    /// the overwritten value (torch's), and leaves the optimizer's groups as they were.
    @Test func wrongOrderIsAnErrorByDefault() throws {
        let stages = try Self.torchStages()
        let (_, optimizer) = try Self.loadedOptimizer()
        let loadedGroups = optimizer.paramGroups.map(\.options)
        let error = try #require(throws: LoadOrderError.self) {
            try LinearLR(optimizer, startFactor: 0.1, endFactor: 1, totalIters: 20)
        }
        #expect(error.scheduler == "LinearLR")
        #expect(error.overwrites == [.init(group: 0, key: "lr", loaded: .float(stages[0].lr), current: .float(stages[1].lr))])
        #expect(error.description.contains("param_groups/0/lr"), "\(error)")
        #expect(optimizer.paramGroups.map(\.options) == loadedGroups, "the loaded options are put back")
    }

    /// A scheduler whose construction keeps the loaded rates (CosineAnnealingLR: its initial step
    /// returns the current lr) is not reported, as torch changes nothing either.
    @Test func aConstructionThatKeepsTheLoadedRatesIsNotReported() throws {
        let stages = try Self.torchStages()
        let (_, optimizer) = try Self.loadedOptimizer()
        let cosine = try CosineAnnealingLR(optimizer, tMax: 80, etaMin: 3e-5)
        #expect(cosine.warnings.isEmpty)
        #expect(try optimizer.groupNumber("lr", group: 0) == stages[0].lr)
    }

    @Test func reportHandlerAndIgnore() throws {
        let (_, optimizer) = try Self.loadedOptimizer()
        var reports: [LoadOrderError] = []
        _ = try LinearLR(optimizer, startFactor: 0.1, totalIters: 20, loadOrderCheck: .report { reports.append($0) })
        #expect(reports.map(\.scheduler) == ["LinearLR"])

        let (_, other) = try Self.loadedOptimizer()
        let ignored = try LinearLR(other, startFactor: 0.1, totalIters: 20, loadOrderCheck: .ignore)
        #expect(ignored.warnings.isEmpty)
    }

    /// The loaded options are only protected until the optimizer steps: a scheduler built later
    /// (a new phase of training) is not a load-order mistake.
    @Test func aStepEndsTheCheck() throws {
        let (_, optimizer) = try Self.loadedOptimizer()
        try optimizer.step()
        _ = try LinearLR(optimizer, startFactor: 0.1, totalIters: 20)
    }

    /// OneCycleLR and CyclicLR overwrite more than `lr` (initial_lr, momentum); every loaded option
    /// they change is named.
    @Test func everyOverwrittenOptionIsNamed() throws {
        let scenario = try SchedulerFixtures.scenario("one_cycle_cos")
        let source = try scenario.makeOptimizer()
        _ = try scenario.makeScheduler(on: source)
        let optimizer = try scenario.makeOptimizer()
        try optimizer.loadStateDict(source.stateDict())
        let error = try #require(throws: LoadOrderError.self) {
            try OneCycleLR(optimizer, maxLR: 0.2, totalSteps: 100)
        }
        #expect(error.overwrites.map(\.key) == ["lr", "initial_lr", "max_lr", "min_lr"])
    }
}
