import Checkpoint

/// Stochastic gradient descent (optionally with momentum) with `torch.optim.SGD`'s options,
/// validation messages, state and state dict.
///
/// State is created lazily, as torch does: a parameter has none until a step with momentum gives
/// it `momentum_buffer` (the decayed gradient of that first step, then
/// `momentum * buf + (1 - dampening) * g` at each later one); with momentum 0 no state is kept.
/// A `momentum_buffer` of None, as torch before 2.0 saved it, counts as no buffer yet. Each path
/// (`foreach`, `fused`, neither) rounds as torch's does, bit for bit.
public final class SGD: Optimizer {
    /// Creates SGD over one group of parameters.
    ///
    /// - Parameters:
    ///   - params: The parameters; if every one has a name, the state dict records `param_names`.
    ///   - lr: Learning rate (torch's default 1e-3).
    ///   - momentum: Momentum factor; nil keeps torch's default, the Python int 0.
    ///   - dampening: Dampening for momentum; nil keeps torch's default, the Python int 0.
    ///   - weightDecay: L2 penalty; nil keeps torch's default, the Python int 0.
    ///   - nesterov: Nesterov momentum (needs a momentum and zero dampening).
    ///   - maximize: Ascend instead of descend.
    ///   - foreach: Reproduce torch's `foreach` path; nil (torch's default) means the single-tensor path on CPU.
    ///   - differentiable: Must be false: ckpt has no autograd.
    ///   - fused: Reproduce torch's fused CPU kernel.
    /// - Throws: ``OptimizerError`` with torch's message for a negative learning rate, momentum or
    ///   weight decay, Nesterov without momentum or with dampening, an empty list, fused with
    ///   foreach or with differentiable; `.unsupported` for `differentiable: true`.
    public convenience init(
        _ params: [Parameter], lr: Double = 1e-3, momentum: Double? = nil, dampening: Double? = nil,
        weightDecay: Double? = nil, nesterov: Bool = false, maximize: Bool = false, foreach: Bool? = nil,
        differentiable: Bool = false, fused: Bool? = nil
    ) throws {
        try self.init(
            groups: params.isEmpty ? [] : [ParamGroup(params: params)], learningRate: .float(lr), momentum: momentum,
            dampening: dampening, weightDecay: weightDecay, nesterov: nesterov, maximize: maximize, foreach: foreach,
            differentiable: differentiable, fused: fused)
    }

    /// Creates SGD over one group of parameters with a tensor learning rate (one element), which
    /// a scheduler may update in place.
    ///
    /// - Parameters: As the initializer with a Double `lr`, with `lr` a one-element floating tensor.
    /// - Throws: ``OptimizerError`` "Tensor lr must be 1-element" and the other constructor errors.
    public convenience init(
        _ params: [Parameter], lr: Tensor, momentum: Double? = nil, dampening: Double? = nil,
        weightDecay: Double? = nil, nesterov: Bool = false, maximize: Bool = false, foreach: Bool? = nil,
        differentiable: Bool = false, fused: Bool? = nil
    ) throws {
        try self.init(
            groups: params.isEmpty ? [] : [ParamGroup(params: params)], learningRate: .tensor(lr), momentum: momentum,
            dampening: dampening, weightDecay: weightDecay, nesterov: nesterov, maximize: maximize, foreach: foreach,
            differentiable: differentiable, fused: fused)
    }

    /// Creates SGD over parameter groups whose options override the ones given here
    /// (``ParamGroup/sgd(params:lr:momentum:dampening:weightDecay:nesterov:maximize:)`` builds them).
    ///
    /// - Parameters:
    ///   - groups: The groups, in order.
    ///   - lr: Default learning rate.
    ///   - momentum: Default momentum factor; nil is torch's int 0.
    ///   - dampening: Default dampening; nil is torch's int 0.
    ///   - weightDecay: Default L2 penalty; nil is torch's int 0.
    ///   - nesterov: Default Nesterov flag.
    ///   - maximize: Ascend instead of descend.
    ///   - foreach: Reproduce torch's `foreach` path.
    ///   - differentiable: Must be false.
    ///   - fused: Reproduce torch's fused CPU kernel.
    /// - Throws: As the single-group initializer; also the parameter-group errors of ``Optimizer/addParamGroup(_:)``.
    public convenience init(
        groups: [ParamGroup], lr: Double = 1e-3, momentum: Double? = nil, dampening: Double? = nil,
        weightDecay: Double? = nil, nesterov: Bool = false, maximize: Bool = false, foreach: Bool? = nil,
        differentiable: Bool = false, fused: Bool? = nil
    ) throws {
        try self.init(
            groups: groups, learningRate: .float(lr), momentum: momentum, dampening: dampening, weightDecay: weightDecay,
            nesterov: nesterov, maximize: maximize, foreach: foreach, differentiable: differentiable, fused: fused)
    }

    /// Creates SGD over parameter groups with a tensor learning rate (one element) as the default.
    ///
    /// - Parameters: As the groups initializer with a Double `lr`, with `lr` a one-element floating tensor.
    /// - Throws: ``OptimizerError`` "Tensor lr must be 1-element" and the other constructor errors.
    public convenience init(
        groups: [ParamGroup], lr: Tensor, momentum: Double? = nil, dampening: Double? = nil,
        weightDecay: Double? = nil, nesterov: Bool = false, maximize: Bool = false, foreach: Bool? = nil,
        differentiable: Bool = false, fused: Bool? = nil
    ) throws {
        try self.init(
            groups: groups, learningRate: .tensor(lr), momentum: momentum, dampening: dampening, weightDecay: weightDecay,
            nesterov: nesterov, maximize: maximize, foreach: foreach, differentiable: differentiable, fused: fused)
    }

    private init(
        groups: [ParamGroup], learningRate: StateValue, momentum: Double?, dampening: Double?, weightDecay: Double?,
        nesterov: Bool, maximize: Bool, foreach: Bool?, differentiable: Bool, fused: Bool?
    ) throws {
        let lrValue = try Optimizer.learningRateValue(learningRate)
        // SGD compares with `<`, so NaN passes (Adagrad's `not 0.0 <= lr` does not).
        if lrValue < 0 { throw OptimizerError(.invalidValue, "Invalid learning rate: \(lrValue)") }
        if let momentum, momentum < 0 { throw OptimizerError(.invalidValue, "Invalid momentum value: \(momentum)") }
        if let weightDecay, weightDecay < 0 { throw OptimizerError(.invalidValue, "Invalid weight_decay value: \(weightDecay)") }

        let defaults: OrderedMap<String, OptionDefault> = [
            "lr": .value(learningRate),
            "momentum": .value(momentum.map(StateValue.float) ?? .int(0)),
            "dampening": .value(dampening.map(StateValue.float) ?? .int(0)),
            "weight_decay": .value(weightDecay.map(StateValue.float) ?? .int(0)),
            "nesterov": .value(.bool(nesterov)),
            "maximize": .value(.bool(maximize)),
            "foreach": .value(foreach.map(StateValue.bool) ?? .none),
            "differentiable": .value(.bool(differentiable)),
            "fused": .value(fused.map(StateValue.bool) ?? .none),
        ]
        // Checked before the groups are added, as torch does.
        if nesterov && ((momentum ?? 0) <= 0 || (dampening ?? 0) != 0) {
            throw OptimizerError(.invalidValue, "Nesterov momentum requires a momentum and zero dampening")
        }
        try super.init(groups: groups, defaults: defaults)
        if fused == true {
            if differentiable { throw OptimizerError(.unsupported, "`fused` does not support `differentiable`") }
            if foreach == true { throw OptimizerError(.unsupported, "`fused` and `foreach` cannot be `True` together.") }
        }
        if differentiable { throw OptimizerError.differentiableUnsupported }
    }

    /// Runs SGD's update on every parameter that has a gradient (see `SGD+Step.swift`).
    ///
    /// - Throws: ``OptimizerError`` with torch's message for fused with sparse gradients or a
    ///   non-floating parameter, weight decay with a sparse gradient, a fused group where some
    ///   parameters have a momentum buffer and others not; `.unsupported` for momentum with a
    ///   sparse gradient (a sparse buffer ckpt cannot keep); ``CheckpointError`` when a gradient
    ///   or buffer does not fit its parameter. Nothing is updated when a group fails these checks.
    public override func performStep() throws { try performSGDStep() }

    /// Torch's `SGD.__setstate__`: groups saved before an option existed get its default
    /// (`nesterov` False, `maximize` False, `foreach` None, `differentiable` False, `fused` False,
    /// appended in that order).
    ///
    /// - Throws: Nothing in practice.
    public override func upgradeLoadedState() throws {
        try super.upgradeLoadedState()
        let added: [(String, StateValue)] = [("nesterov", .bool(false)), ("maximize", .bool(false)), ("foreach", .none),
                                             ("differentiable", .bool(false)), ("fused", .bool(false))]
        for index in paramGroups.indices {
            for (key, value) in added where paramGroups[index].options[key] == nil {
                paramGroups[index].options[key] = value
            }
        }
    }
}

extension ParamGroup {
    /// A group with SGD's options; nil takes the optimizer's default.
    ///
    /// - Parameters:
    ///   - params: The parameters.
    ///   - lr: Learning rate.
    ///   - momentum: Momentum factor.
    ///   - dampening: Dampening for momentum.
    ///   - weightDecay: L2 penalty.
    ///   - nesterov: Nesterov momentum.
    ///   - maximize: Ascend instead of descend.
    /// - Returns: The group, its options in the order torch's dict literal would list them.
    public static func sgd(
        params: [Parameter], lr: Double? = nil, momentum: Double? = nil, dampening: Double? = nil,
        weightDecay: Double? = nil, nesterov: Bool? = nil, maximize: Bool? = nil
    ) -> ParamGroup {
        var options = OrderedMap<String, StateValue>()
        if let lr { options["lr"] = .float(lr) }
        if let momentum { options["momentum"] = .float(momentum) }
        if let dampening { options["dampening"] = .float(dampening) }
        if let weightDecay { options["weight_decay"] = .float(weightDecay) }
        if let nesterov { options["nesterov"] = .bool(nesterov) }
        if let maximize { options["maximize"] = .bool(maximize) }
        return ParamGroup(params: params, options: options)
    }
}
