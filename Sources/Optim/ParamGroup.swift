import Checkpoint

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
    /// A group inside an optimizer changes through ``Optimizer/setOption(_:to:inGroup:)``.
    public var options: OrderedMap<String, StateValue>

    /// Creates a group with options given as state values (for any optimizer).
    ///
    /// - Parameters:
    ///   - params: The parameters.
    ///   - options: Options that override the optimizer's defaults, in the order a Python dict
    ///     literal would list them.
    public init(params: [Parameter], options: OrderedMap<String, StateValue> = [:]) {
        self.params = params
        self.options = options
    }

    /// The option `key`, or nil; assigning nil removes it (`group[key]` in torch).
    public subscript(key: String) -> StateValue? {
        get { options[key] }
        set { options[key] = newValue }
    }

    /// The parameters' names when the group was built from named parameters (`param_names`).
    public var paramNames: [String]? {
        guard case .list(let names)? = options["param_names"] else { return nil }
        return names.compactMap { if case .string(let name) = $0 { return name } else { return nil } }
    }
}
