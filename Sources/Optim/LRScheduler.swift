import Checkpoint

/// The base of ckpt's learning-rate schedulers, with `torch.optim.lr_scheduler.LRScheduler`'s
/// behaviour: building one sets `initial_lr` in every parameter group that has none and takes one
/// step (epoch 0), each ``step()`` advances ``lastEpoch`` and writes the new `lr` of every group,
/// and ``stateDict()`` has the keys of torch's `state_dict()` in torch's order.
///
/// Learning rates follow torch's arithmetic operation for operation (the recursive `get_lr` chain
/// on ``step()``, the closed form on ``step(epoch:)`` where torch has one), in `Double`, so they are
/// bit-identical to torch's. Group learning rates must be Python numbers; a tensor `lr` is refused.
///
/// A subclass supplies ``getLR()`` and, if it has a closed form, ``closedFormLR()``.
open class LRScheduler {
    /// The optimizer whose parameter groups' `lr` this scheduler sets.
    public let optimizer: Optimizer
    /// The index of the last epoch stepped (torch's `last_epoch`): 0 after construction.
    public internal(set) var lastEpoch: Int
    /// The learning rates the schedule starts from, one per group (torch's `base_lrs`: each group's
    /// `initial_lr`).
    public internal(set) var baseLRs: [Double]
    /// Warnings torch would emit through `warnings.warn`, and load-order reports under
    /// ``LoadOrderCheck/warn``, oldest first.
    public internal(set) var warnings: [String] = []

    /// torch's `_step_count`: steps taken, the initial one included.
    var stepCount = 0
    /// True only during the step construction takes (torch's `_is_initial`): a recursive
    /// ``getLR()`` returns the current rates then.
    public internal(set) var isInitial = false
    /// torch's `_get_lr_called_within_step`.
    var getLRCalledWithinStep = false
    /// torch's `_last_lr`.
    var lastLR: [Double] = []
    /// True once torch's `_initial_step` has run on this scheduler, which is when a composite
    /// scheduler's `__dict__` gains `_step_count` and `_is_initial`.
    var initialStepRan = false
    /// Loaded keys this class does not know, kept and saved again as torch's `__dict__.update` keeps them.
    var extraState = OrderedMap<String, StateValue>()

    /// torch's `LRScheduler.__init__`: sets `initial_lr` in every group that has none (or requires
    /// it when resuming), reads the base learning rates, takes the initial step (``getLR()`` at
    /// epoch 0, with ``isInitial`` set), then applies `loadOrderCheck`. A subclass sets its own
    /// properties first, as torch's subclasses do before `super().__init__`.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - lastEpoch: -1 to start; otherwise the epoch to resume from (every group must then have
    ///     `initial_lr`).
    ///   - loadOrderCheck: What to do if construction overwrites options a loaded optimizer state
    ///     set (see ``LoadOrderCheck``).
    ///   - groupsBefore: The groups' options when the subclass's construction began, for a subclass
    ///     that changes group options before calling this (as CyclicLR sets `lr`); nil for now.
    /// - Throws: ``OptimizerError`` when resuming without `initial_lr` (torch's message), for a
    ///   group `lr` that is not a number, or what the initial step throws; ``LoadOrderError`` under
    ///   ``LoadOrderCheck/error``.
    public init(
        optimizer: Optimizer, lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error,
        groupsBefore: [OrderedMap<String, StateValue>]? = nil
    ) throws {
        let before = groupsBefore ?? optimizer.paramGroups.map(\.options)
        self.optimizer = optimizer
        self.lastEpoch = lastEpoch
        if lastEpoch == -1 {
            for index in optimizer.paramGroups.indices where optimizer.paramGroups[index].options["initial_lr"] == nil {
                _ = try optimizer.groupNumber("lr", group: index)
                optimizer.paramGroups[index].options["initial_lr"] = optimizer.paramGroups[index].options["lr"]
            }
        } else {
            for (index, group) in optimizer.paramGroups.enumerated() where group.options["initial_lr"] == nil {
                throw OptimizerError(
                    .invalidValue,
                    "param 'initial_lr' is not specified in param_groups[\(index)] when resuming scheduler with last_epoch >= 0.\n"
                        + "This typically happens when:\n"
                        + "1. You're trying to resume training from a checkpoint but haven't properly loaded the optimizer state\n"
                        + "2. You're using last_epoch >= 0 for a fresh training run (not recommended)")
            }
        }
        baseLRs = try optimizer.groupNumbers("initial_lr")
        try initialStep()
        if lastEpoch == -1 { try checkLoadOrder(before: before, loadOrderCheck) }
    }

    /// For schedulers that take no initial step (``SequentialLR``, ``ChainedScheduler``,
    /// ``ReduceLROnPlateau``, which do not call torch's base `__init__`).
    init(composing optimizer: Optimizer, lastEpoch: Int, lastLR: [Double]) {
        self.optimizer = optimizer
        self.lastEpoch = lastEpoch
        self.baseLRs = []
        self.lastLR = lastLR
    }

    /// The learning rates of the next step, one per group, with ``lastEpoch`` already advanced
    /// (torch's `get_lr`). Subclasses override it.
    ///
    /// - Returns: One learning rate per parameter group.
    /// - Throws: ``OptimizerError`` when the schedule cannot go on (OneCycleLR past its last step).
    open func getLR() throws -> [Double] {
        throw OptimizerError(.unsupported, "\(type(of: self)) does not implement get_lr")
    }

    /// The learning rates at ``lastEpoch`` from the base learning rates alone (torch's
    /// `_get_closed_form_lr`), used by ``step(epoch:)``; nil for schedulers without one.
    ///
    /// - Returns: One learning rate per group, or nil.
    /// - Throws: ``OptimizerError`` when the rates cannot be computed.
    open func closedFormLR() throws -> [Double]? { nil }

    /// The learning rates the last step set, one per group (torch's `get_last_lr()`).
    ///
    /// - Returns: A copy; changing it changes nothing.
    public func getLastLR() -> [Double] { lastLR }

    /// Advances one epoch and sets each group's `lr` (call it after the optimizer's step).
    ///
    /// - Throws: ``OptimizerError`` when the schedule cannot go on or a group's `lr` is not a number.
    open func step() throws {
        stepCount += 1
        try updateLR(epoch: nil)
    }

    /// Jumps to `epoch` and sets each group's `lr` from the closed form where torch has one
    /// (torch's deprecated `step(epoch)`), else from ``getLR()`` at that epoch.
    ///
    /// - Parameter epoch: The epoch to set.
    /// - Throws: ``OptimizerError`` when the schedule cannot be computed there.
    open func step(epoch: Int) throws {
        stepCount += 1
        try updateLR(epoch: epoch)
    }

    /// torch's `_initial_step`: the step construction takes, with ``isInitial`` set.
    func initialStep() throws {
        stepCount = 0
        initialStepRan = true
        isInitial = true
        defer { isInitial = false }
        try step()
    }

    /// torch's `_update_lr`.
    func updateLR(epoch: Int?) throws {
        let values: [Double]
        do {
            getLRCalledWithinStep = true
            defer { getLRCalledWithinStep = false }
            if let epoch {
                lastEpoch = epoch
                values = try closedFormLR() ?? getLR()
            } else {
                lastEpoch += 1
                values = try getLR()
            }
        }
        try setGroupLRs(values)
        lastLR = try optimizer.groupNumbers("lr")
    }

    /// Writes one `lr` per group; as torch's `zip(..., strict=True)`, the counts must agree.
    func setGroupLRs(_ values: [Double]) throws {
        try requireSameCount(optimizer.paramGroups, values)
        for (index, value) in values.enumerated() {
            optimizer.paramGroups[index].options["lr"] = .float(value)
        }
    }

    /// torch's `zip(a, b, strict=True)` check: per-group lists of different lengths (a group added
    /// after the scheduler was built, or a state dict from another optimizer) are an error.
    func requireSameCount<A, B>(_ first: [A], _ second: [B]) throws {
        guard first.count == second.count else {
            throw OptimizerError(
                .invalidValue,
                "\(type(of: self)): per-group lists of different lengths (\(first.count) and \(second.count)) for "
                    + "\(optimizer.paramGroups.count) parameter groups; was a group added after the scheduler was built?")
        }
    }

    /// The groups' current `lr`s (torch's `_param_groups_val_list(optimizer, "lr")`).
    func groupLRs() throws -> [Double] { try optimizer.groupNumbers("lr") }

    // MARK: State dict (see LRScheduler+StateDict.swift)

    /// The scheduler's state as torch's `state_dict()` shapes it: every key torch keeps in the
    /// scheduler's `__dict__` except the optimizer (and functions, saved as `None`), in torch's
    /// order, with Python types (`last_epoch` an int, `_last_lr` a list of floats, MultiStepLR's
    /// `milestones` a `collections.Counter`). Keys a loaded state had that this class does not know
    /// are kept and saved again, as torch's `__dict__.update` keeps them.
    ///
    /// The result is a plain `StateValue` tree: `write(to:)` saves it as a `.pt` that
    /// `torch.load(weights_only=True)` reads, and a torch scheduler's `load_state_dict` continues
    /// from it on the same learning rates. (A subclass outside ckpt saves the base class's keys;
    /// its own fields are its to save.)
    ///
    /// - Returns: A `.dict`.
    public func stateDict() -> StateValue { makeStateDict() }

    /// Loads a state dict as torch's `load_state_dict` does (`__dict__.update`): keys present
    /// replace the current values, absent ones keep them, unknown ones are kept for the next
    /// ``stateDict()``. Nested schedulers (SequentialLR, ChainedScheduler) load their own entries.
    ///
    /// Load the optimizer's state after this (torch's order): the groups' `lr` come from it.
    ///
    /// - Parameter state: A dict as ``stateDict()`` or torch's `state_dict()` returns.
    /// - Throws: ``OptimizerError`` `.malformedStateDict` naming the key path, the expected and the
    ///   found type when a value cannot be this scheduler's; `.unsupported` for a saved callable
    ///   object's attributes (a Swift closure has none). Nothing changes when it throws.
    public func loadStateDict(_ state: StateValue) throws {
        try prepareLoad(state, path: "")()
    }

    /// The entries of torch's `__dict__` in its order (a subclass's own first, then the base's).
    var stateEntries: [StateEntry] { baseStateEntries }
    /// Entries torch's `state_dict()` appends after `__dict__`'s (LambdaLR's `lr_lambdas`).
    var trailingStateEntries: [StateEntry] { [] }

    /// Checks a state dict and returns what installs it, so nested schedulers load all or nothing.
    /// A subclass that re-derives state after torch's `__dict__.update` wraps the result.
    ///
    /// - Parameters:
    ///   - state: The dict.
    ///   - path: Its key path in the enclosing state (empty at the top).
    func prepareLoad(_ state: StateValue, path: String) throws -> () -> Void {
        try prepareEntries(state, path: path)
    }
}

extension Optimizer {
    /// Every group's option `key` as a number, for a scheduler.
    ///
    /// - Throws: ``OptimizerError`` naming the group when the option is missing, a tensor, or not a number.
    func groupNumbers(_ key: String) throws -> [Double] {
        try paramGroups.indices.map { try groupNumber(key, group: $0) }
    }

    /// One group's option `key` as a number.
    func groupNumber(_ key: String, group index: Int) throws -> Double {
        switch paramGroups[index].options[key] {
        case .float(let value): return value
        case .int(let value): return Double(value)
        case nil:
            throw OptimizerError(.invalidValue, "param_groups[\(index)] has no '\(key)'", path: "param_groups/\(index)/\(key)")
        case .tensor?:
            throw OptimizerError(
                .unsupported, "ckpt's learning-rate schedulers need Python numbers; '\(key)' is a Tensor",
                path: "param_groups/\(index)/\(key)")
        case let value?:
            throw OptimizerError(
                .invalidType, "'\(key)' must be a number, found \(value.pythonTypeName)", path: "param_groups/\(index)/\(key)")
        }
    }
}
