import Checkpoint

extension ParamGroup {
    /// A numeric option as torch's arithmetic reads `group[key]`: a float, an int, a bool or a
    /// one-element tensor.
    ///
    /// - Parameters:
    ///   - key: The option.
    ///   - optimizer: The optimizer's name, for the error.
    ///   - index: The group's index, for the error's key path.
    /// - Returns: The value as a Double.
    /// - Throws: ``OptimizerError`` `.malformedStateDict` when the option is missing or not a number.
    func number(_ key: String, optimizer: String, index: Int) throws -> Double {
        switch self[key] {
        case .float(let value)?: return value
        case .int(let value)?: return Double(value)
        case .bool(let flag)?: return flag ? 1 : 0
        case .tensor(let tensor)? where tensor.numel == 1: return try tensor.singleValue()
        default:
            throw OptimizerError(.malformedStateDict, "\(optimizer) option `\(key)` is missing or not a number",
                                 path: "param_groups/\(index)/\(key)")
        }
    }
}
