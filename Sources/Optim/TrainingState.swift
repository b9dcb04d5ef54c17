import Checkpoint

/// A training run's state as PyTorch users checkpoint it, in one tree:
///
/// ```python
/// torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
///             "scheduler": sched.state_dict(), "epoch": epoch}, path)
/// ```
///
/// ``stateDict(adding:)`` builds that tree from the live objects and ``loadStateDict(_:)`` restores
/// it into objects already built, in the order torch's docs require: the model, the schedulers'
/// states, then the optimizer's. A scheduler cannot be rebuilt from its state (its lambdas are
/// closures), so resuming means building the model, the optimizer on its parameters and the
/// schedulers on the optimizer exactly as the first run did, then loading. The optimizer's state is
/// loaded last, after every scheduler's construction, so no construction can overwrite the loaded
/// learning rates (the mistake ``LoadOrderCheck`` reports when made by hand).
///
/// The tree is a plain `StateValue`: it is what `CheckpointManager.save(step:state:metrics:)` takes
/// and `restore()` returns, and what `torch.load(weights_only=True)` reads from a `.pt` or ckpt
/// file. With one scheduler it is saved under `scheduler`; with several (stepped one after the
/// other, each on the same optimizer) under `schedulers`, a list in their order.
///
/// ```swift
/// let training = try TrainingState(model: model.parameters, optimizer: optimizer, scheduler: lr)
/// try manager.saveAsync(step: step, state: training.stateDict(adding: ["epoch": .int(Int64(step))]))
/// // after a restart, with the same objects built again:
/// if let restored = try manager.restore() { try training.loadStateDict(restored.state) }
/// ```
public struct TrainingState {
    /// The key of the model's weights (torch's `model.state_dict()`: parameter name → tensor).
    public static let modelKey = "model"
    /// The key of the optimizer's state dict.
    public static let optimizerKey = "optimizer"
    /// The key of a single scheduler's state dict.
    public static let schedulerKey = "scheduler"
    /// The key of several schedulers' state dicts, a list in their order.
    public static let schedulersKey = "schedulers"

    /// The model's parameters, saved under ``modelKey`` by name in this order; empty for none.
    public let model: [Parameter]
    /// The optimizer, saved under ``optimizerKey``.
    public let optimizer: Optimizer
    /// The schedulers, all on ``optimizer``.
    public let schedulers: [LRScheduler]
    /// Where the schedulers are saved: ``schedulerKey``, ``schedulersKey``, or nil for none.
    public let schedulerEntry: String?

    /// A training state with at most one scheduler, saved under ``schedulerKey``.
    ///
    /// - Parameters:
    ///   - model: The model's parameters, each named as `model.named_parameters()` names it; empty
    ///     to keep the model out of the tree.
    ///   - optimizer: The optimizer.
    ///   - scheduler: Its scheduler; for a ``SequentialLR`` or ``ChainedScheduler``, the outer one
    ///     only (its state holds the others'). Nil for none: then ``loadStateDict(_:)`` refuses a
    ///     tree that has one, which the run would otherwise silently ignore.
    /// - Throws: ``OptimizerError`` `.invalidValue` for a parameter without a name, a name used
    ///   twice, or a scheduler on another optimizer.
    public init(model: [Parameter] = [], optimizer: Optimizer, scheduler: LRScheduler? = nil) throws {
        try self.init(model: model, optimizer: optimizer, schedulers: scheduler.map { [$0] } ?? [], entry: scheduler.map { _ in Self.schedulerKey })
    }

    /// A training state with several schedulers, saved under ``schedulersKey`` as a list.
    ///
    /// - Parameters:
    ///   - model: The model's parameters, each named; empty to keep the model out of the tree.
    ///   - optimizer: The optimizer.
    ///   - schedulers: The schedulers, in the order they were built and are stepped.
    /// - Throws: ``OptimizerError`` `.invalidValue` for a parameter without a name, a name used
    ///   twice, or a scheduler on another optimizer.
    public init(model: [Parameter] = [], optimizer: Optimizer, schedulers: [LRScheduler]) throws {
        try self.init(model: model, optimizer: optimizer, schedulers: schedulers, entry: Self.schedulersKey)
    }

    private init(model: [Parameter], optimizer: Optimizer, schedulers: [LRScheduler], entry: String?) throws {
        var names = Set<String>()
        for (index, parameter) in model.enumerated() {
            guard let name = parameter.name else {
                throw OptimizerError(
                    .invalidValue, "model parameter \(index) has no name; the model is saved by parameter name, as model.state_dict() saves it")
            }
            guard names.insert(name).inserted else {
                throw OptimizerError(.invalidValue, "two model parameters are named '\(name)'", path: "\(Self.modelKey)/\(name)")
            }
        }
        for (index, scheduler) in schedulers.enumerated() where scheduler.optimizer !== optimizer {
            throw OptimizerError(
                .invalidValue, "scheduler \(index) (\(type(of: scheduler))) is on another optimizer than the training state's \(type(of: optimizer))")
        }
        self.model = model
        self.optimizer = optimizer
        self.schedulers = schedulers
        self.schedulerEntry = entry
    }

    /// The tree torch users save: `model` (name → tensor, an `OrderedDict` as `model.state_dict()`),
    /// `optimizer`, `scheduler` or `schedulers`, then `extra` (an epoch, a random generator's
    /// state) in its order. Tensors share storage with the parameters and the optimizer, as
    /// torch's state dicts do: save it, or let a copy-on-write save snapshot it, before the next step.
    ///
    /// - Parameter extra: Further entries, such as `["epoch": .int(12)]`.
    /// - Returns: A `.dict`.
    /// - Throws: ``OptimizerError`` `.invalidValue` when an extra key is one of the state's own.
    public func stateDict(adding extra: StateDict = [:]) throws -> StateValue {
        var tree = StateDict()
        if !model.isEmpty {
            var weights = StateDict(isOrderedDict: true)
            for parameter in model { weights[.string(parameter.name!)] = .tensor(parameter.data) }
            tree[.string(Self.modelKey)] = .dict(weights)
        }
        tree[.string(Self.optimizerKey)] = optimizer.stateDict()
        if schedulerEntry == Self.schedulerKey {
            tree[.string(Self.schedulerKey)] = schedulers[0].stateDict()
        } else if schedulerEntry == Self.schedulersKey {
            tree[.string(Self.schedulersKey)] = .list(schedulers.map { $0.stateDict() })
        }
        for (key, value) in extra {
            guard tree[key] == nil else {
                throw OptimizerError(.invalidValue, "the extra entry '\(key)' would replace the training state's own", path: key.pathComponent)
            }
            tree[key] = value
        }
        return .dict(tree)
    }
}
