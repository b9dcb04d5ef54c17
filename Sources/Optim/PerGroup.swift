/// A scheduler option given once for every parameter group or once per group, as torch accepts a
/// float or a list (`max_lr=0.1` or `max_lr=[0.1, 0.01]`): write `0.1` or `[0.1, 0.01]`.
public enum PerGroup: Equatable, Sendable, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral {
    /// One value for every group.
    case all(Double)
    /// One value per group, in the optimizer's group order.
    case each([Double])

    public init(floatLiteral value: Double) { self = .all(value) }
    public init(integerLiteral value: Int) { self = .all(Double(value)) }
    public init(arrayLiteral elements: Double...) { self = .each(elements) }

    /// torch's `_format_param`: one value per group, or the error torch raises.
    func values(_ name: String, groups: Int) throws -> [Double] {
        switch self {
        case .all(let value):
            return Array(repeating: value, count: groups)
        case .each(let values):
            guard values.count == groups else {
                throw OptimizerError(
                    .invalidValue,
                    "\(name) must have the same length as optimizer.param_groups. \(name) has \(values.count) values, param_groups has \(groups).")
            }
            return values
        }
    }
}
