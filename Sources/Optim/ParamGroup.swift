import Checkpoint
import OrderedCollections

/// A group of parameters sharing optimization options, as one dict of torch's `param_groups`.
///
/// The options are kept as ``StateValue``s in the order torch's dict would hold them, so a state
/// dict written from them has torch's key order and Python types (`lr_decay: 0` stays an int,
/// `foreach: None` stays none). Options the group does not set are filled from the optimizer's
/// defaults when the group is added.
public struct ParamGroup {
    /// The parameters, in order; their position defines their id in a state dict.
    public internal(set) var params: [Parameter]
    /// Every key of the group except `params`, in torch's order (`param_names` included when set).
    public internal(set) var options: OrderedDictionary<String, StateValue>

    /// Creates a group with options given as state values (for any optimizer).
    ///
    /// - Parameters:
    ///   - params: The parameters.
    ///   - options: Options that override the optimizer's defaults, in the order a Python dict
    ///     literal would list them.
    public init(params: [Parameter], options: OrderedDictionary<String, StateValue> = [:]) {
        self.params = params
        self.options = options
    }

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
        var options = OrderedDictionary<String, StateValue>()
        if let lr { options["lr"] = .float(lr) }
        if let lrDecay { options["lr_decay"] = .float(lrDecay) }
        if let weightDecay { options["weight_decay"] = .float(weightDecay) }
        if let initialAccumulatorValue { options["initial_accumulator_value"] = .float(initialAccumulatorValue) }
        if let eps { options["eps"] = .float(eps) }
        self.init(params: params, options: options)
    }

    /// The option `key`, or nil.
    public subscript(key: String) -> StateValue? { options[key] }

    /// The parameters' names when the group was built from named parameters (`param_names`).
    public var paramNames: [String]? {
        guard case .list(let names)? = options["param_names"] else { return nil }
        return names.compactMap { if case .string(let name) = $0 { return name } else { return nil } }
    }
}
