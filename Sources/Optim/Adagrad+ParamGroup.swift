import Checkpoint

extension ParamGroup {
    /// Creates a group with Adagrad's options; nil takes the optimizer's default.
    ///
    /// - Parameters:
    ///   - params: The parameters.
    ///   - lr: Learning rate.
    ///   - lrDecay: Learning-rate decay.
    ///   - weightDecay: L2 penalty.
    ///   - initialAccumulatorValue: Recorded in the group as torch does; note that torch (and
    ///     therefore ckpt) initialises every `sum` from the optimizer-wide value, not the group's.
    ///   - eps: Denominator term.
    public init(
        params: [Parameter], lr: Double? = nil, lrDecay: Double? = nil, weightDecay: Double? = nil,
        initialAccumulatorValue: Double? = nil, eps: Double? = nil
    ) {
        var options = OrderedMap<String, StateValue>()
        if let lr { options["lr"] = .float(lr) }
        if let lrDecay { options["lr_decay"] = .float(lrDecay) }
        if let weightDecay { options["weight_decay"] = .float(weightDecay) }
        if let initialAccumulatorValue { options["initial_accumulator_value"] = .float(initialAccumulatorValue) }
        if let eps { options["eps"] = .float(eps) }
        self.init(params: params, options: options)
    }
}
