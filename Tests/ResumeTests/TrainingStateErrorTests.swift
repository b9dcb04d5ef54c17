import Checkpoint
import Foundation
import Optim
import Testing

// What TrainingState refuses, each with the key path and what was expected, and nothing changed;
// and the load order: the helper loads the optimizer last by construction, while the wrong order
// by hand is the load-order check's to report.

@Suite struct TrainingStateErrorTests {
    static let sequential = try? TorchRun("sequential")
    static let twoSchedulers = try? TorchRun("two_schedulers")

    /// torch's checkpoint of the sequential run after step 37, as a mutable dict.
    static func saved(_ run: TorchRun? = sequential, after step: Int = 37) throws -> StateDict {
        guard case .dict(let tree) = try #require(run).checkpoint(after: step) else { throw TorchRun.FixtureError(description: "not a dict") }
        return tree
    }

    /// Loading `tree` throws an OptimizerError at `path`, and the trainer's model, optimizer and
    /// schedulers are as they were.
    @discardableResult
    static func refused(_ tree: StateDict, by trainer: Trainer, at path: String, strict: Bool = true) throws -> OptimizerError {
        let before = try trainer.training.stateDict()
        let error = try #require(throws: OptimizerError.self) { try trainer.training.loadStateDict(.dict(tree), strict: strict) }
        #expect(error.path == path, "\(error)")
        #expect(try trainer.training.stateDict() == before, "nothing changes when loading throws")
        return error
    }

    @Test func aMissingKeyIsNamed() throws {
        let trainer = try Trainer(try #require(Self.sequential))
        for key in ["model", "optimizer", "scheduler"] {
            var tree = try Self.saved()
            tree[.string(key)] = nil
            let error = try Self.refused(tree, by: trainer, at: key)
            #expect(error.code == .malformedStateDict)
            #expect(error.message.hasPrefix("missing: expected"), "\(error)")
            #expect(error.message.contains("'epoch'"), "the keys found are listed: \(error)")
        }
    }

    @Test func theSchedulersMustBeSavedAsTheyAreGiven() throws {
        let single = try Trainer(try #require(Self.sequential))
        let error = try Self.refused(try Self.saved(Self.twoSchedulers, after: 23), by: single, at: "scheduler")
        #expect(error.message.contains("'schedulers' (a list of 2)"), "\(error)")

        let two = try Trainer(try #require(Self.twoSchedulers))
        #expect(try Self.refused(try Self.saved(), by: two, at: "schedulers").message.contains("'scheduler'"))
        var three = try Self.saved(Self.twoSchedulers, after: 23)
        guard case .list(let states)? = three["schedulers"] else { throw TorchRun.FixtureError(description: "no schedulers") }
        three["schedulers"] = .list(states + [states[0]])
        #expect(try Self.refused(three, by: two, at: "schedulers").message == "expected 2 scheduler states (one per scheduler, in order), found 3")
    }

    /// A checkpoint with a schedule restored without a scheduler would continue on the optimizer's
    /// last lr, a different run: refused. A `"scheduler": None` is no schedule.
    @Test func aSavedScheduleNeedsASchedulerToGoInto() throws {
        let trainer = try Trainer(try #require(Self.sequential))
        let bare = try TrainingState(model: trainer.model, optimizer: trainer.optimizer)
        let tree = try Self.saved()
        let error = try #require(throws: OptimizerError.self) { try bare.loadStateDict(.dict(tree)) }
        #expect(error.path == "scheduler" && error.message.contains("no scheduler to restore it into"), "\(error)")

        var none = tree
        none["scheduler"] = StateValue.none
        try bare.loadStateDict(.dict(none))
        #expect(bare.optimizer.stateDict()["state"] == tree["optimizer"]?["state"])
    }

    @Test func modelWeightsAreCheckedByName() throws {
        let trainer = try Trainer(try #require(Self.sequential))
        guard case .dict(let weights)? = try Self.saved()["model"] else { throw TorchRun.FixtureError(description: "no model") }

        var missing = try Self.saved(), dropped = weights
        dropped["2.bias"] = nil
        missing["model"] = .dict(dropped)
        #expect(try Self.refused(missing, by: trainer, at: "model/2.bias").message.contains("missing from the saved model"))

        var unexpected = try Self.saved(), extra = weights
        extra["1.running_mean"] = weights["0.bias"]
        unexpected["model"] = .dict(extra)
        try Self.refused(unexpected, by: trainer, at: "model/1.running_mean")

        var reshaped = try Self.saved(), wrong = weights
        wrong["0.bias"] = .tensor(try Tensor(zeros: .float32, shape: [9]))
        reshaped["model"] = .dict(wrong)
        #expect(try Self.refused(reshaped, by: trainer, at: "model/0.bias").message
            == "size mismatch for 0.bias: copying a param with shape torch.Size([9]) from checkpoint, the shape in current model is torch.Size([8]).")

        var notATensor = try Self.saved(), text = weights
        text["0.weight"] = "weights"
        notATensor["model"] = .dict(text)
        #expect(try Self.refused(notATensor, by: trainer, at: "model/0.weight").message == "expected a tensor, found str")
    }

    /// `strict: false` loads the weights both sides name, as torch's does, and casts a weight to
    /// its parameter's dtype (torch's `copy_`).
    @Test func nonStrictLoadsWhatBothSidesName() throws {
        let run = try #require(Self.sequential)
        let trainer = try Trainer(run)
        guard case .dict(var weights)? = try Self.saved()["model"] else { throw TorchRun.FixtureError(description: "no model") }
        weights["2.bias"] = nil
        weights["1.running_mean"] = .tensor(try Tensor(zeros: .float32, shape: [3]))
        guard case .tensor(let bias)? = weights["0.bias"] else { throw TorchRun.FixtureError(description: "no 0.bias") }
        weights["0.bias"] = .tensor(try bias.cast(to: .float64))
        var tree = try Self.saved()
        tree["model"] = .dict(weights)
        try trainer.training.loadStateDict(.dict(tree), strict: false)
        let expected = try run.parameters(after: 37)
        #expect(try trainer.model[0].data.isBitwiseEqual(to: expected[0]))
        #expect(try trainer.model[1].data.isBitwiseEqual(to: expected[1]), "cast back to float32 exactly")
        #expect(try trainer.model[3].data.scalars(as: Float.self) == [0, 0], "not in the file: kept")
    }

    /// An error inside a scheduler's or the optimizer's state is reported at its full key path,
    /// and schedulers loaded before it are put back.
    @Test func nestedErrorsCarryTheirFullPath() throws {
        let trainer = try Trainer(try #require(Self.sequential))
        var badScheduler = try Self.saved()
        guard case .dict(var scheduler)? = badScheduler["scheduler"], case .list(var inner)? = scheduler["_schedulers"],
              case .dict(var cosine) = inner[1]
        else { throw TorchRun.FixtureError(description: "no nested schedulers") }
        cosine["last_epoch"] = "27"
        inner[1] = .dict(cosine)
        scheduler["_schedulers"] = .list(inner)
        badScheduler["scheduler"] = .dict(scheduler)
        let error = try Self.refused(badScheduler, by: trainer, at: "scheduler/_schedulers/1/last_epoch")
        #expect(error.message == "expected an int, found str")

        // The scheduler's state is valid and loads first; the optimizer's fails: both are undone.
        var badOptimizer = try Self.saved()
        guard case .dict(var optimizer)? = badOptimizer["optimizer"] else { throw TorchRun.FixtureError(description: "no optimizer") }
        optimizer["param_groups"] = .list([])
        badOptimizer["optimizer"] = .dict(optimizer)
        let optimizerError = try Self.refused(badOptimizer, by: trainer, at: "optimizer")
        #expect(optimizerError.message == "loaded state dict has a different number of parameter groups")
    }

    @Test func invalidTrainingStates() throws {
        let run = try #require(Self.sequential)
        let trainer = try Trainer(run)
        let unnamed = Parameter(try Tensor(zeros: .float32, shape: [2]))
        #expect(throws: OptimizerError.self) { try TrainingState(model: [unnamed], optimizer: trainer.optimizer) }
        #expect(throws: OptimizerError.self) { try TrainingState(model: [trainer.model[0], trainer.model[0]], optimizer: trainer.optimizer) }
        let other = try Trainer(run)
        let error = try #require(throws: OptimizerError.self) {
            try TrainingState(optimizer: trainer.optimizer, schedulers: [trainer.schedulers[0], other.schedulers[0]])
        }
        #expect(error.message.contains("scheduler 1 (SequentialLR) is on another optimizer"), "\(error)")
        let extra = try #require(throws: OptimizerError.self) { try trainer.training.stateDict(adding: ["optimizer": 1]) }
        #expect(extra.path == "optimizer")
        #expect(throws: OptimizerError.self) { try trainer.training.loadStateDict([1, 2]) }
    }

    /// TrainingState takes schedulers already built and loads the optimizer's state after theirs,
    /// so the order torch's docs warn about cannot be got wrong through it: nothing is reported.
    /// Made by hand (the optimizer's state first, the schedulers built after it), the same resume
    /// is the load-order check's error (see OptimTests' SchedulerLoadOrderTests, against torch's
    /// own wrong-order run).
    @Test func theWrongOrderIsOnlyPossibleByHandAndIsReported() throws {
        let run = try #require(Self.sequential)
        let saved = try run.checkpoint(after: 37)
        let trainer = try Trainer(run)
        try trainer.training.loadStateDict(saved)
        #expect(trainer.schedulers.allSatisfy { $0.warnings.isEmpty })
        #expect(try trainer.lr.bitPattern == run.lrs[37].bitPattern)

        let model = try trainer.model.map { Parameter(try $0.data.contiguousCopy(), name: $0.name) }
        let optimizer = try SGD(model, lr: 0.1, momentum: 0.9, weightDecay: 5e-4)
        try optimizer.loadStateDict(try #require(saved["optimizer"]))
        let error = try #require(throws: LoadOrderError.self) { try LinearLR(optimizer, startFactor: 0.1, totalIters: 10) }
        #expect(error.scheduler == "LinearLR" && error.overwrites.map(\.key) == ["lr"], "\(error)")
    }
}
