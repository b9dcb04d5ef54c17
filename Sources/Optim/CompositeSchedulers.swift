import Checkpoint

/// A scheduler made of others (SequentialLR, ChainedScheduler): torch's `recursive_undo` walks
/// into it, and its state dict nests theirs under `_schedulers`.
protocol SchedulerComposite: LRScheduler {
    var schedulers: [LRScheduler] { get }
}

/// Runs schedulers one after another, switching at each milestone epoch
/// (`torch.optim.lr_scheduler.SequentialLR`).
///
/// Building it resets every group's `lr` to its `initial_lr`, undoes the initial step the given
/// schedulers took, and takes the first one's initial step again, as torch does. At a milestone
/// the next scheduler restarts at epoch 0 from its closed form (where it has one). A
/// ``ChainedScheduler`` or another SequentialLR can only come first: torch cannot restart one at a
/// milestone either.
public final class SequentialLR: LRScheduler, SchedulerComposite {
    /// The schedulers, in the order they run.
    public let schedulers: [LRScheduler]
    var milestones: [Int]

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer every scheduler sets.
    ///   - schedulers: The schedulers, at least one, all on `optimizer`, none a ``ReduceLROnPlateau``.
    ///   - milestones: The epochs at which the next scheduler takes over, one fewer than the schedulers.
    ///   - lastEpoch: -1 to start.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` with torch's messages for an invalid combination;
    ///   ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, schedulers: [LRScheduler], milestones: [Int], lastEpoch: Int = -1,
        loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        try Self.validate(schedulers, optimizer: optimizer, name: "SequentialLR")
        guard milestones.count == schedulers.count - 1 else {
            throw OptimizerError(
                .invalidValue,
                "Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone points, "
                    + "but got number of schedulers \(schedulers.count) and the number of milestones to be equal to \(milestones.count)")
        }
        let before = optimizer.paramGroups.map(\.options)
        self.schedulers = schedulers
        self.milestones = milestones
        super.init(composing: optimizer, lastEpoch: lastEpoch + 1, lastLR: [])
        let initial = try optimizer.groupNumbers("initial_lr")
        for (index, lr) in initial.enumerated() {
            optimizer.paramGroups[index].options["lr"] = optimizer.paramGroups[index].options["initial_lr"] ?? .float(lr)
        }
        Self.undoInitialStep(self)
        let first = PythonArithmetic.bisectRight(milestones, 0)
        try schedulers[first].initialStep()
        lastLR = schedulers[first].getLastLR()
        if lastEpoch == -1 { try checkLoadOrder(before: before, loadOrderCheck) }
    }

    /// torch's `recursive_undo`: every scheduler inside, however deeply nested, goes back one epoch.
    private static func undoInitialStep(_ scheduler: LRScheduler) {
        if let composite = scheduler as? any SchedulerComposite {
            for inner in composite.schedulers { undoInitialStep(inner) }
        } else {
            scheduler.lastEpoch -= 1
        }
    }

    /// torch's checks common to SequentialLR and ChainedScheduler, in torch's order.
    static func validate(_ schedulers: [LRScheduler], optimizer: Optimizer, name: String) throws {
        guard !schedulers.isEmpty else {
            throw OptimizerError(
                .invalidValue,
                name == "SequentialLR"
                    ? "SequentialLR expects at least one scheduler, but got no scheduler."
                    : "\(name) expects at least one scheduler to be chained, but got no scheduler.")
        }
        for (index, scheduler) in schedulers.enumerated() {
            if scheduler is ReduceLROnPlateau {
                throw OptimizerError(
                    .invalidValue,
                    "\(name) does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be specified "
                        + "when calling `step`, but got one at index \(index) in the given schedulers sequence.")
            }
            if scheduler.optimizer !== optimizer {
                throw OptimizerError(
                    .invalidValue,
                    "\(name) expects all schedulers to belong to the same optimizer, but got scheduler \(type(of: scheduler)) "
                        + "at index \(index) has a different optimizer than \(type(of: optimizer)).")
            }
        }
    }

    /// Advances one epoch: the scheduler whose span it is steps, or restarts at its milestone.
    ///
    /// - Throws: ``OptimizerError`` when that scheduler cannot step or restart.
    public override func step() throws {
        lastEpoch += 1
        let index = PythonArithmetic.bisectRight(milestones, lastEpoch)
        guard schedulers.indices.contains(index) else {
            throw OptimizerError(
                .invalidValue, "milestone \(index) has no scheduler: \(milestones.count) milestones for \(schedulers.count) schedulers",
                path: "_milestones")
        }
        let scheduler = schedulers[index]
        if index > 0 && milestones[index - 1] == lastEpoch {
            try scheduler.updateLR(epoch: 0)
        } else {
            try scheduler.step()
        }
        lastLR = scheduler.getLastLR()
    }

    /// torch's SequentialLR takes no epoch.
    ///
    /// - Throws: ``OptimizerError`` `.invalidType` always.
    public override func step(epoch: Int) throws {
        throw OptimizerError(.invalidType, "SequentialLR.step() takes 1 positional argument but 2 were given")
    }

    override var stateEntries: [StateEntry] {
        let present = initialStepRan
        return [
            .field("_milestones", self, \.milestones, encode: { .list($0.map { .int(Int64($0)) }) }, read: StateCoding.ints),
            .int("last_epoch", self, \.lastEpoch), .floats("_last_lr", self, \.lastLR),
        ] + compositeStepEntries(present: present)
    }

    override var trailingStateEntries: [StateEntry] { [nestedStates()] }
}

/// Steps several schedulers together at every step, each acting on the rate the previous one left
/// (`torch.optim.lr_scheduler.ChainedScheduler`).
///
/// It has no epoch of its own (torch's has no `last_epoch`): ``LRScheduler/lastEpoch`` stays -1.
public final class ChainedScheduler: LRScheduler, SchedulerComposite {
    /// The schedulers, stepped in this order.
    public let schedulers: [LRScheduler]

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - schedulers: The schedulers, at least one, all on one optimizer, none a ``ReduceLROnPlateau``.
    ///   - optimizer: Their optimizer; nil for the first one's.
    /// - Throws: ``OptimizerError`` with torch's messages for an invalid combination.
    public init(_ schedulers: [LRScheduler], optimizer: Optimizer? = nil) throws {
        guard let optimizer = optimizer ?? schedulers.first?.optimizer else {
            throw OptimizerError(.invalidValue, "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.")
        }
        try SequentialLR.validate(schedulers, optimizer: optimizer, name: "ChainedScheduler")
        self.schedulers = schedulers
        super.init(composing: optimizer, lastEpoch: -1, lastLR: [])
        lastLR = try schedulers[schedulers.count - 1].optimizer.groupNumbers("lr")
    }

    /// Steps every scheduler once, in order.
    ///
    /// - Throws: What a scheduler's step throws.
    public override func step() throws {
        for scheduler in schedulers { try scheduler.step() }
        lastLR = try schedulers[schedulers.count - 1].optimizer.groupNumbers("lr")
    }

    /// torch's ChainedScheduler takes no epoch.
    ///
    /// - Throws: ``OptimizerError`` `.invalidType` always.
    public override func step(epoch: Int) throws {
        throw OptimizerError(.invalidType, "ChainedScheduler.step() takes 1 positional argument but 2 were given")
    }

    override var stateEntries: [StateEntry] {
        [.floats("_last_lr", self, \.lastLR)] + compositeStepEntries(present: initialStepRan)
    }

    override var trailingStateEntries: [StateEntry] { [nestedStates()] }
}

extension SchedulerComposite {
    /// `_step_count` and `_is_initial`, which torch's `__dict__` gains when a SequentialLR around
    /// this one runs its `_initial_step`.
    func compositeStepEntries(present: Bool) -> [StateEntry] {
        let entries: [StateEntry] = [.int("_step_count", self, \.stepCount), .bool("_is_initial", self, \.isInitial)]
        return entries.map { $0.present(if: present) { [self] in initialStepRan = true } }
    }

    /// `_schedulers`: each scheduler's own state dict; loading gives each its entry, all or nothing.
    func nestedStates() -> StateEntry {
        StateEntry("_schedulers", .list(schedulers.map { $0.stateDict() })) { [self] value, path in
            let states = try StateCoding.list(value, path)
            guard states.count <= schedulers.count else {
                throw OptimizerError(
                    .malformedStateDict, "the state has \(states.count) schedulers, this \(type(of: self)) has \(schedulers.count)",
                    path: path)
            }
            let installs = try zip(schedulers, states).enumerated().map { index, pair in
                try pair.0.prepareLoad(pair.1, path: StateCoding.join(path, String(index)))
            }
            return { for install in installs { install() } }
        }
    }
}
