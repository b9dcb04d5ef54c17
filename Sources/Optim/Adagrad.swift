import Checkpoint

/// Adagrad with `torch.optim.Adagrad`'s options, validation messages, state and state dict.
///
/// State is created eagerly, as torch does: `step` (a float32 0-dim tensor, 0) and `sum`
/// (`full_like(param, initial_accumulator_value)`, the value in both parts for complex
/// parameters). Like torch, every `sum` starts from the optimizer-wide initial accumulator value,
/// even in a group that sets its own. Unlike torch (issue #53712), a parameter added later or
/// missing from a loaded state dict gets fresh state instead of failing at the next step.
public final class Adagrad: Optimizer {
    /// The initial accumulator value given to the constructor; torch initialises every `sum`
    /// from it, whatever a group says.
    public let initialAccumulatorValue: Double

    /// Creates Adagrad over one group of parameters.
    ///
    /// - Parameters:
    ///   - params: The parameters; if every one has a name, the state dict records `param_names`.
    ///   - lr: Learning rate (torch's default 1e-2).
    ///   - lrDecay: Learning-rate decay; nil keeps torch's default, the Python int 0.
    ///   - weightDecay: L2 penalty; nil keeps torch's default, the Python int 0.
    ///   - initialAccumulatorValue: Starting value of `sum`; nil keeps torch's default, the Python int 0.
    ///   - eps: Denominator term (default 1e-10).
    ///   - foreach: Reproduce torch's `foreach` path; nil (torch's default) means the single-tensor path on CPU.
    ///   - maximize: Ascend instead of descend.
    ///   - differentiable: Must be false: ckpt has no autograd.
    ///   - fused: Reproduce torch's fused CPU kernel.
    /// - Throws: ``OptimizerError`` with torch's message for an empty list, a negative option,
    ///   fused with foreach or with differentiable; `.unsupported` for `differentiable: true`.
    public convenience init(
        _ params: [Parameter], lr: Double = 1e-2, lrDecay: Double? = nil, weightDecay: Double? = nil,
        initialAccumulatorValue: Double? = nil, eps: Double = 1e-10, foreach: Bool? = nil, maximize: Bool = false,
        differentiable: Bool = false, fused: Bool? = nil
    ) throws {
        try self.init(
            groups: params.isEmpty ? [] : [ParamGroup(params: params)], learningRate: .float(lr), lrDecay: lrDecay, weightDecay: weightDecay,
            initialAccumulatorValue: initialAccumulatorValue, eps: eps, foreach: foreach, maximize: maximize,
            differentiable: differentiable, fused: fused)
    }

    /// Creates Adagrad over one group of parameters with a tensor learning rate (one element),
    /// which a scheduler may update in place.
    ///
    /// - Parameters: As the initializer with a Double `lr`, with `lr` a one-element floating tensor.
    /// - Throws: ``OptimizerError`` "Tensor lr must be 1-element" and the other constructor errors.
    public convenience init(
        _ params: [Parameter], lr: Tensor, lrDecay: Double? = nil, weightDecay: Double? = nil,
        initialAccumulatorValue: Double? = nil, eps: Double = 1e-10, foreach: Bool? = nil, maximize: Bool = false,
        differentiable: Bool = false, fused: Bool? = nil
    ) throws {
        try self.init(
            groups: params.isEmpty ? [] : [ParamGroup(params: params)], learningRate: .tensor(lr), lrDecay: lrDecay, weightDecay: weightDecay,
            initialAccumulatorValue: initialAccumulatorValue, eps: eps, foreach: foreach, maximize: maximize,
            differentiable: differentiable, fused: fused)
    }

    /// Creates Adagrad over parameter groups whose options override the ones given here.
    ///
    /// - Parameters:
    ///   - groups: The groups, in order.
    ///   - lr: Default learning rate.
    ///   - lrDecay: Default learning-rate decay; nil is torch's int 0.
    ///   - weightDecay: Default L2 penalty; nil is torch's int 0.
    ///   - initialAccumulatorValue: Starting value of every `sum`; nil is torch's int 0.
    ///   - eps: Default denominator term.
    ///   - foreach: Reproduce torch's `foreach` path.
    ///   - maximize: Ascend instead of descend.
    ///   - differentiable: Must be false.
    ///   - fused: Reproduce torch's fused CPU kernel.
    /// - Throws: As the single-group initializer; also the parameter-group errors of ``Optimizer/addParamGroup(_:)``.
    public convenience init(
        groups: [ParamGroup], lr: Double = 1e-2, lrDecay: Double? = nil, weightDecay: Double? = nil,
        initialAccumulatorValue: Double? = nil, eps: Double = 1e-10, foreach: Bool? = nil, maximize: Bool = false,
        differentiable: Bool = false, fused: Bool? = nil
    ) throws {
        try self.init(
            groups: groups, learningRate: .float(lr), lrDecay: lrDecay, weightDecay: weightDecay,
            initialAccumulatorValue: initialAccumulatorValue, eps: eps, foreach: foreach, maximize: maximize,
            differentiable: differentiable, fused: fused)
    }

    /// Creates Adagrad over parameter groups with a tensor learning rate (one element) as the default.
    ///
    /// - Parameters: As the groups initializer with a Double `lr`, with `lr` a one-element floating tensor.
    /// - Throws: ``OptimizerError`` "Tensor lr must be 1-element" and the other constructor errors.
    public convenience init(
        groups: [ParamGroup], lr: Tensor, lrDecay: Double? = nil, weightDecay: Double? = nil,
        initialAccumulatorValue: Double? = nil, eps: Double = 1e-10, foreach: Bool? = nil, maximize: Bool = false,
        differentiable: Bool = false, fused: Bool? = nil
    ) throws {
        try self.init(
            groups: groups, learningRate: .tensor(lr), lrDecay: lrDecay, weightDecay: weightDecay,
            initialAccumulatorValue: initialAccumulatorValue, eps: eps, foreach: foreach, maximize: maximize,
            differentiable: differentiable, fused: fused)
    }

    private init(
        groups: [ParamGroup], learningRate: StateValue, lrDecay: Double?, weightDecay: Double?,
        initialAccumulatorValue: Double?, eps: Double, foreach: Bool?, maximize: Bool, differentiable: Bool, fused: Bool?
    ) throws {
        let lrValue = try Optimizer.learningRateValue(learningRate)
        // `not 0.0 <= x` rejects NaN too, as in torch.
        if !(0.0 <= lrValue) {
            throw OptimizerError(.invalidValue, "Invalid learning rate: \(lrValue)")
        }
        for (name, value) in [("lr_decay", lrDecay), ("weight_decay", weightDecay),
                              ("initial_accumulator_value", initialAccumulatorValue)] {
            if let value, !(0.0 <= value) { throw OptimizerError(.invalidValue, "Invalid \(name) value: \(value)") }
        }
        if !(0.0 <= eps) { throw OptimizerError(.invalidValue, "Invalid epsilon value: \(eps)") }

        self.initialAccumulatorValue = initialAccumulatorValue ?? 0
        let defaults: OrderedMap<String, OptionDefault> = [
            "lr": .value(learningRate),
            "lr_decay": .value(lrDecay.map(StateValue.float) ?? .int(0)),
            "eps": .value(.float(eps)),
            "weight_decay": .value(weightDecay.map(StateValue.float) ?? .int(0)),
            "initial_accumulator_value": .value(initialAccumulatorValue.map(StateValue.float) ?? .int(0)),
            "foreach": .value(foreach.map(StateValue.bool) ?? .none),
            "maximize": .value(.bool(maximize)),
            "differentiable": .value(.bool(differentiable)),
            "fused": .value(fused.map(StateValue.bool) ?? .none),
        ]
        try super.init(groups: groups, defaults: defaults)
        if fused == true {
            if differentiable { throw OptimizerError(.unsupported, "`fused` does not support `differentiable`") }
            if foreach == true { throw OptimizerError(.unsupported, "`fused` and `foreach` cannot be `True` together.") }
        }
        if differentiable { throw OptimizerError.differentiableUnsupported }
    }

    /// Fresh Adagrad state: `step` = float32 0-dim zero, `sum` = the initial accumulator value.
    ///
    /// - Parameters:
    ///   - parameter: The parameter.
    ///   - group: Its group (its own `initial_accumulator_value` is ignored, as in torch).
    /// - Returns: `["step": tensor(0.), "sum": full_like(param, iav)]`.
    /// - Throws: ``OptimizerError`` `.unsupported` for a parameter that is not floating or complex.
    public override func initialState(for parameter: Parameter, in group: ParamGroup) throws -> StateValue? {
        let dtype = parameter.data.dtype
        guard dtype.isFloatingPoint || dtype.isComplex, dtype.itemSize >= 2 else {
            throw OptimizerError(.unsupported, "Adagrad cannot hold state for a \(dtype) parameter")
        }
        let step = try Tensor(zeros: .float32, shape: [])
        let sum = try Tensor.full(
            like: parameter.data, real: initialAccumulatorValue, imaginary: dtype.isComplex ? initialAccumulatorValue : 0)
        return .dict(["step": .tensor(step), "sum": .tensor(sum)])
    }

    /// Runs Adagrad's update on every parameter that has a gradient (see `Adagrad+Step.swift`).
    ///
    /// - Throws: ``OptimizerError`` with torch's message for fused with sparse or complex
    ///   parameters, weight decay with a sparse gradient, or a non-floating fused parameter;
    ///   ``CheckpointError`` when a gradient or state does not fit its parameter. Nothing is
    ///   updated when a group fails these checks.
    public override func performStep() throws { try performAdagradStep() }

    /// Torch's `Adagrad.__setstate__`: adds the options newer than the checkpoint and turns a
    /// numeric `step` into a float32 tensor (see `Adagrad+Load.swift`).
    ///
    /// - Throws: What creating a `step` tensor throws (nothing in practice).
    public override func upgradeLoadedState() throws {
        try super.upgradeLoadedState()
        try addNewerOptionsAndTensorSteps()
    }
}
