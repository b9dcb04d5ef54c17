import Checkpoint

extension Optimizer {
    /// torch's `_device_dtype_check_for_fused` as its optimizers run it: on the first parameter
    /// with a gradient in a fused group, once per optimizer (the flag is cleared after the check).
    ///
    /// - Parameter parameter: The parameter about to be stepped in a fused group.
    /// - Throws: ``OptimizerError`` `.unsupported` with torch's message for a parameter that is
    ///   not floating point, the first time only.
    func checkFusedDTypeOnce(_ parameter: Parameter) throws {
        guard needsFusedDTypeCheck else { return }
        needsFusedDTypeCheck = false
        guard parameter.data.dtype.isFloatingPoint else {
            throw OptimizerError(
                .unsupported,
                "`fused=True` requires all the params to be floating point Tensors of supported devices: "
                    + "['mps', 'cuda', 'xpu', 'hpu', 'cpu', 'mtia', 'privateuseone'] but \(parameter.data.dtype) and cpu")
        }
    }
}

extension OptimizerError {
    /// ckpt's answer to `differentiable=True`, which every torch optimizer accepts.
    static let differentiableUnsupported = OptimizerError(
        .unsupported, "unsupported: differentiable=True needs autograd, which ckpt does not have (no autograd)")
}

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
