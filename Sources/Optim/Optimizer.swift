import Checkpoint
import OrderedCollections

/// The base of ckpt's optimizers, with `torch.optim.Optimizer`'s behaviour: parameter groups with
/// per-group options, per-parameter state keyed by parameter identity, PyTorch-shaped state dicts
/// (see `Optimizer+StateDict.swift`) and hooks around `step`, `stateDict` and `loadStateDict`.
///
/// A subclass supplies the update (``performStep()``), if its state is created eagerly the
/// initial state of a parameter (``initialState(for:in:)``), and if its checkpoints have changed
/// over time the upgrade of older ones (``upgradeLoadedState()``).
open class Optimizer {
    /// The value an option takes in a group that does not set it.
    public enum OptionDefault {
        /// This value.
        case value(StateValue)
        /// No default: every group must set the option (torch's `required`).
        case required
    }

    /// Runs before ``stateDict()``.
    public typealias StateDictPreHook = (Optimizer) -> Void
    /// Runs after ``stateDict()`` builds the dict; a non-nil result replaces it.
    public typealias StateDictPostHook = (Optimizer, StateValue) -> StateValue?
    /// Runs before ``loadStateDict(_:)`` reads the dict; a non-nil result replaces it.
    public typealias LoadStateDictPreHook = (Optimizer, StateValue) throws -> StateValue?
    /// Runs after ``loadStateDict(_:)`` has installed the state.
    public typealias LoadStateDictPostHook = (Optimizer) throws -> Void
    /// Runs before a step; non-nil step arguments replace the ones the step was called with.
    public typealias StepPreHook = (Optimizer, StepArguments) throws -> StepArguments?
    /// Runs after a step with the arguments it ran with.
    public typealias StepPostHook = (Optimizer, StepArguments) throws -> Void
    /// A step pre-hook for every optimizer in the process.
    public typealias GlobalStepPreHook = @Sendable (Optimizer, StepArguments) throws -> StepArguments?
    /// A step post-hook for every optimizer in the process.
    public typealias GlobalStepPostHook = @Sendable (Optimizer, StepArguments) throws -> Void

    /// Where a state entry belongs: a parameter, or (after loading a dict whose ids outnumber the
    /// parameters) the saved key, kept as torch keeps it.
    enum StateSlot: Hashable {
        case parameter(ObjectIdentifier)
        case unmatched(StateKey)
    }

    /// The options every group starts from, in torch's `defaults` order.
    public let defaults: OrderedMap<String, OptionDefault>
    /// The parameter groups, in order.
    public internal(set) var paramGroups: [ParamGroup] = []
    /// Per-parameter state in insertion order (torch's `self.state`).
    var stateEntries: OrderedDictionary<StateSlot, StateValue> = [:]
    /// Warnings torch would emit through `warnings.warn` (a duplicate parameter in a group), oldest first.
    public internal(set) var warnings: [String] = []
    /// Torch checks the dtype of the first parameter with a gradient once, on the first fused step
    /// (`_need_device_dtype_check_for_fused`).
    var needsFusedDTypeCheck = true
    /// The groups' options as ``loadStateDict(_:)`` left them, until the next step: what a
    /// learning-rate scheduler built in between must not overwrite (see ``LoadOrderCheck``).
    var loadedOptions: [OrderedMap<String, StateValue>]?

    let stateDictPreHooks = HookRegistry<StateDictPreHook>()
    let stateDictPostHooks = HookRegistry<StateDictPostHook>()
    let loadStateDictPreHooks = HookRegistry<LoadStateDictPreHook>()
    let loadStateDictPostHooks = HookRegistry<LoadStateDictPostHook>()
    let stepPreHooks = HookRegistry<StepPreHook>()
    let stepPostHooks = HookRegistry<StepPostHook>()

    /// Creates an optimizer over groups of parameters.
    ///
    /// - Parameters:
    ///   - groups: The groups, added in order with ``addParamGroup(_:)``.
    ///   - defaults: The options and their defaults, in the order torch's `defaults` dict has them.
    /// - Throws: ``OptimizerError`` "optimizer got an empty parameter list" for no groups, or
    ///   whatever ``addParamGroup(_:)`` throws.
    public init(groups: [ParamGroup], defaults: OrderedMap<String, OptionDefault>) throws {
        self.defaults = defaults
        guard !groups.isEmpty else {
            throw OptimizerError(.invalidValue, "optimizer got an empty parameter list")
        }
        for group in groups { try addParamGroup(group) }
    }

    /// Creates an optimizer with all parameters in one group.
    ///
    /// - Parameters:
    ///   - params: The parameters; named ones (every one with a ``Parameter/name``) record `param_names`.
    ///   - defaults: The options and their defaults.
    /// - Throws: ``OptimizerError`` "optimizer got an empty parameter list" for no parameters, or
    ///   whatever ``addParamGroup(_:)`` throws.
    public convenience init(_ params: [Parameter], defaults: OrderedMap<String, OptionDefault>) throws {
        try self.init(groups: params.isEmpty ? [] : [ParamGroup(params: params)], defaults: defaults)
    }

    /// Adds a parameter group with torch's checks, in torch's order, and gives its parameters
    /// fresh state at once (torch's Adagrad would fail with `KeyError: 'sum'`, issue #53712).
    ///
    /// - Parameter group: The group; options it does not set are filled from ``defaults``.
    /// - Throws: ``OptimizerError`` with torch's message when some parameters are named and some
    ///   are not, a required option is missing, named and unnamed groups would mix, or a parameter
    ///   already belongs to another group. A parameter repeated within the group only adds a
    ///   warning to ``warnings``, as in torch.
    open func addParamGroup(_ group: ParamGroup) throws {
        var group = group
        // `params` is the parameter list itself, never an option (it would be packed twice).
        group.options["params"] = nil
        let names = group.params.compactMap(\.name)
        if !names.isEmpty {
            guard names.count == group.params.count else {
                throw OptimizerError(.invalidValue, "all optimizer params should be with/without names. Some param names are missing")
            }
            group.options["param_names"] = .list(names.map { .string($0) })
        }
        for (name, option) in defaults where group.options[name] == nil {
            switch option {
            case .required:
                throw OptimizerError(
                    .invalidValue, "parameter group didn't specify a value of required optimization parameter \(name)")
            case .value(let value):
                group.options[name] = value
            }
        }
        let identities = group.params.map(ObjectIdentifier.init)
        if Set(identities).count != identities.count {
            warnings.append(
                "optimizer contains a parameter group with duplicate parameters; in future, this will cause an error; "
                    + "see github.com/pytorch/pytorch/issues/40967 for more information")
        }
        var existing = Set<ObjectIdentifier>()
        let named = group.options["param_names"] != nil
        for other in paramGroups {
            existing.formUnion(other.params.map(ObjectIdentifier.init))
            if named != (other.options["param_names"] != nil) {
                throw OptimizerError(
                    .invalidValue,
                    "all optimizer param groups should be with/without names. cannot add param group \(named ? "with names" : "without names") to the optimizer")
            }
        }
        guard existing.isDisjoint(with: identities) else {
            throw OptimizerError(.invalidValue, "some parameters appear in more than one parameter group")
        }
        var fresh: [(ObjectIdentifier, StateValue)] = []
        for (parameter, identity) in zip(group.params, identities) where stateEntries[.parameter(identity)] == nil {
            if let state = try initialState(for: parameter, in: group), !fresh.contains(where: { $0.0 == identity }) {
                fresh.append((identity, state))
            }
        }
        paramGroups.append(group)
        for (identity, state) in fresh { stateEntries[.parameter(identity)] = state }
    }

    /// The state a parameter starts with, or nil for optimizers whose state is created lazily.
    ///
    /// - Parameters:
    ///   - parameter: The parameter.
    ///   - group: Its group, options filled in.
    /// - Returns: The state dict value (`.dict`), or nil.
    /// - Throws: If the parameter cannot be optimized (an unsupported dtype).
    open func initialState(for parameter: Parameter, in group: ParamGroup) throws -> StateValue? { nil }

    /// Brings state loaded from an older checkpoint up to date, as a subclass's `__setstate__` does
    /// in torch (Adagrad adds the options newer than the checkpoint and turns a numeric `step`
    /// into a tensor).
    ///
    /// ``loadStateDict(_:)`` calls it once the saved groups and state are in place: read them
    /// through ``paramGroups`` and ``state(for:)``, change them with ``setOption(_:to:inGroup:)``
    /// and ``setState(_:for:)``. Parameters without saved state have none yet; they get
    /// ``initialState(for:in:)`` afterwards, from the upgraded groups, and the load-state-dict
    /// post-hooks run last. The base implementation does nothing; an override calls `super` first.
    ///
    /// - Throws: An error for state that cannot be upgraded; ``loadStateDict(_:)`` then puts back
    ///   the groups and state it replaced and rethrows it.
    open func upgradeLoadedState() throws {}

    /// The optimizer's update for one step, after the loss closure ran. Subclasses override it.
    ///
    /// - Throws: ``OptimizerError`` when the step cannot run.
    open func performStep() throws {
        throw OptimizerError(.unsupported, "\(type(of: self)) does not implement step")
    }

    /// The state of one parameter (for Adagrad `["step": ..., "sum": ...]`), or nil.
    ///
    /// - Parameter parameter: The parameter.
    /// - Returns: Its state dict, sharing tensor storage with the optimizer.
    public func state(for parameter: Parameter) -> StateValue? {
        stateEntries[.parameter(ObjectIdentifier(parameter))]
    }

    /// Replaces or removes the state of one parameter.
    ///
    /// - Parameters:
    ///   - state: The new state (a `.dict`), or nil to remove it.
    ///   - parameter: A parameter of one of the groups.
    /// - Throws: ``OptimizerError`` `.invalidValue` if the parameter is in no group.
    public func setState(_ state: StateValue?, for parameter: Parameter) throws {
        let identity = ObjectIdentifier(parameter)
        guard paramGroups.contains(where: { $0.params.contains { ObjectIdentifier($0) == identity } }) else {
            throw OptimizerError(.invalidValue, "the parameter is not in any parameter group of this optimizer")
        }
        stateEntries[.parameter(identity)] = state
    }

    /// Sets an option of one group, as assigning `opt.param_groups[i][key]` does (a learning-rate
    /// scheduler sets `lr` this way between steps).
    ///
    /// - Parameters:
    ///   - key: The option, such as `"lr"`.
    ///   - value: Its new value.
    ///   - index: The group's index.
    /// - Throws: ``OptimizerError`` `.invalidValue` for a group index out of range or the key `params`.
    public func setOption(_ key: String, to value: StateValue, inGroup index: Int) throws {
        guard paramGroups.indices.contains(index) else {
            throw OptimizerError(.invalidValue, "no parameter group \(index); the optimizer has \(paramGroups.count)")
        }
        guard key != "params" else {
            throw OptimizerError(.invalidValue, "a group's params cannot be replaced; use addParamGroup")
        }
        paramGroups[index].options[key] = value
    }

    /// Resets gradients, as torch's `zero_grad`.
    ///
    /// - Parameter setToNone: True (the default) drops each gradient; false zeroes dense
    ///   gradients in place and empties sparse ones.
    /// - Throws: A failed storage verification while zeroing.
    public func zeroGrad(setToNone: Bool = true) throws {
        for group in paramGroups {
            for parameter in group.params {
                guard let grad = parameter.grad else { continue }
                if setToNone {
                    parameter.grad = nil
                    continue
                }
                switch grad {
                case .dense(let tensor):
                    try tensor.zeroElementsInPlace()
                case .sparse(let sparse):
                    parameter.grad = .sparse(try SparseTensor(
                        indices: Tensor(zeros: .int64, shape: [sparse.sparseDim, 0]),
                        values: Tensor(zeros: sparse.values.dtype, shape: [0] + sparse.shape[sparse.sparseDim...]),
                        shape: sparse.shape, isCoalesced: true))
                }
            }
        }
    }

    /// Performs one optimization step without a loss closure.
    ///
    /// - Throws: What a hook or the update throws; ``OptimizerError`` for an invalid configuration.
    public func step() throws {
        _ = try runStep(StepArguments())
    }

    /// Performs one optimization step, calling `closure` (which reevaluates the model) first.
    ///
    /// - Parameter closure: Returns the loss.
    /// - Returns: The closure's loss, or nil if a step pre-hook removed the closure.
    /// - Throws: What the closure, a hook or the update throws.
    @discardableResult
    public func step(closure: @escaping () throws -> Double) throws -> Double? {
        try runStep(StepArguments(closure: closure))
    }

    /// Torch's order: global pre-hooks, instance pre-hooks, the closure, the update, instance
    /// post-hooks, global post-hooks.
    private func runStep(_ arguments: StepArguments) throws -> Double? {
        var arguments = arguments
        for hook in GlobalStepHooks.shared.pre {
            if let replacement = try hook(self, arguments) { arguments = replacement }
        }
        for hook in Array(stepPreHooks.hooks.values) {
            if let replacement = try hook(self, arguments) { arguments = replacement }
        }
        let loss = try arguments.closure?()
        loadedOptions = nil
        try performStep()
        for hook in Array(stepPostHooks.hooks.values) { try hook(self, arguments) }
        for hook in GlobalStepHooks.shared.post { try hook(self, arguments) }
        return loss
    }
}
