import Checkpoint

/// What torch's optimizers check alike, in their constructors and when a step gathers its
/// parameters (`_init_group`), shared by ckpt's optimizers.
extension Optimizer {
    /// The value of a constructor's `lr`: a number, or a one-element tensor.
    ///
    /// - Parameter learningRate: `.float` or `.tensor`.
    /// - Returns: The value as a Double.
    /// - Throws: ``OptimizerError`` "Tensor lr must be 1-element", as torch.
    static func learningRateValue(_ learningRate: StateValue) throws -> Double {
        switch learningRate {
        case .tensor(let tensor):
            guard tensor.numel == 1 else { throw OptimizerError(.invalidValue, "Tensor lr must be 1-element") }
            return try tensor.singleValue()
        case .float(let value): return value
        default: return 0
        }
    }

    /// The parameters of a group that have a gradient, in order, each gradient checked against its
    /// parameter; in a fused group the first is checked as torch's `_device_dtype_check_for_fused`
    /// does, once per optimizer.
    ///
    /// - Parameters:
    ///   - group: The group.
    ///   - index: Its index, for errors' key paths.
    ///   - fused: The group's `fused` option.
    /// - Returns: The parameters with their gradients.
    /// - Throws: ``OptimizerError`` `.unsupported` with torch's message for a fused group whose first
    ///   parameter is not floating point (the first time only); ``CheckpointError`` `.typeMismatch`
    ///   for a gradient of another dtype or shape.
    func parametersWithGradients(in group: ParamGroup, index: Int, fused: Bool) throws -> [(parameter: Parameter, grad: Gradient)] {
        var result: [(parameter: Parameter, grad: Gradient)] = []
        result.reserveCapacity(group.params.count)
        for parameter in group.params {
            guard let grad = parameter.grad else { continue }
            if fused && needsFusedDTypeCheck {
                needsFusedDTypeCheck = false
                guard parameter.data.dtype.isFloatingPoint else {
                    throw OptimizerError(
                        .unsupported,
                        "`fused=True` requires all the params to be floating point Tensors of supported devices: "
                            + "['mps', 'cuda', 'xpu', 'hpu', 'cpu', 'mtia', 'privateuseone'] but \(parameter.data.dtype) and cpu")
                }
            }
            let data = parameter.data
            guard grad.dtype == data.dtype, grad.shape == data.shape else {
                throw CheckpointError(.typeMismatch, "gradient does not match its parameter", path: "param_groups/\(index)/grad",
                                      expected: "\(data.dtype) \(data.shape)", found: "\(grad.dtype) \(grad.shape)")
            }
            result.append((parameter, grad))
        }
        return result
    }

    /// A state tensor the kernels update in place, checked against its parameter and packed: a
    /// strided one (only a loaded state dict has those) is replaced in the state by a contiguous
    /// copy, whose storage ckpt then stops sharing with the dict.
    ///
    /// - Parameters:
    ///   - tensor: The tensor under `key` in `entry`, the parameter's state.
    ///   - key: Its key (`sum`, `momentum_buffer`).
    ///   - entry: The parameter's state.
    ///   - parameter: The parameter.
    ///   - path: The group's key path, for errors.
    /// - Returns: The contiguous tensor now in the state.
    /// - Throws: ``CheckpointError`` `.typeMismatch` when dtype or shape differ from the parameter's.
    func packedStateTensor(_ tensor: Tensor, key: String, in entry: StateDict, of parameter: Parameter, path: String) throws -> Tensor {
        let data = parameter.data
        guard tensor.dtype == data.dtype, tensor.shape == data.shape else {
            throw CheckpointError(.typeMismatch, "state `\(key)` does not match its parameter", path: "\(path)/\(key)",
                                  expected: "\(data.dtype) \(data.shape)", found: "\(tensor.dtype) \(tensor.shape)")
        }
        guard !tensor.isContiguous else { return tensor }
        var packed = entry
        let copy = try tensor.contiguousCopy()
        packed[.string(key)] = .tensor(copy)
        try setState(.dict(packed), for: parameter)
        return copy
    }
}

extension Gradient {
    /// The dense shape the gradient stands for.
    var shape: [Int] {
        switch self {
        case .dense(let tensor): return tensor.shape
        case .sparse(let sparse): return sparse.shape
        }
    }
}

extension OptimizerError {
    /// ckpt's answer to `differentiable=True`, which every torch optimizer accepts.
    static let differentiableUnsupported = OptimizerError(
        .unsupported, "unsupported: differentiable=True needs autograd, which ckpt does not have (no autograd)")
}
