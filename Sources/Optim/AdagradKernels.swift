import Checkpoint

/// Which of PyTorch's three Adagrad code paths to reproduce. They round differently, so a
/// trajectory is only bit-identical to torch's when both use the same path.
public enum AdagradImplementation: Sendable {
    /// `foreach=False`, torch's default on CPU: one ATen op per tensor per formula step.
    case singleTensor
    /// `foreach=True`: the `_foreach_*` ops, which scale the gradient by `-clr` before dividing.
    case forEach
    /// `fused=True`: `torch._fused_adagrad_`, one pass per element.
    case fused
}

/// The per-group Adagrad options that enter the arithmetic of one step.
public struct AdagradHyperparameters: Sendable {
    public var lr: Double
    public var lrDecay: Double
    public var weightDecay: Double
    public var eps: Double
    public var maximize: Bool

    /// Creates the options with PyTorch's defaults.
    ///
    /// - Parameters:
    ///   - lr: Learning rate.
    ///   - lrDecay: Learning-rate decay per step.
    ///   - weightDecay: L2 penalty added to the gradient.
    ///   - eps: Added to the square root of the accumulator.
    ///   - maximize: Ascend instead of descend.
    public init(lr: Double = 1e-2, lrDecay: Double = 0, weightDecay: Double = 0, eps: Double = 1e-10, maximize: Bool = false) {
        self.lr = lr
        self.lrDecay = lrDecay
        self.weightDecay = weightDecay
        self.eps = eps
        self.maximize = maximize
    }
}

enum AdagradKernels {
    /// Updates one dense parameter in place as PyTorch's `implementation` does.
    ///
    /// - Parameters:
    ///   - param: The parameter; contiguous, updated in place.
    ///   - grad: Its gradient, same dtype and shape (any strides).
    ///   - sum: The squared-gradient accumulator, same dtype and shape, contiguous, updated in place.
    ///   - step: The step count after this step's increment.
    ///   - hyper: The group's options.
    ///   - implementation: The PyTorch path whose rounding to reproduce.
    /// - Throws: ``CheckpointError`` `.typeMismatch` when dtypes or shapes differ or the dtype is
    ///   not floating or complex, `.invalidArgument` when `param` or `sum` is not contiguous.
    static func denseUpdate(
        param: Tensor, grad: Tensor, sum: Tensor, step: Float,
        hyper: AdagradHyperparameters, implementation: AdagradImplementation
    ) throws {
        try checkOperands(param: param, grad: grad, sum: sum)
        // torch computes the decayed rate in Python (double) from the float32 step.
        let clr = hyper.lr / (1 + (Double(step) - 1) * hyper.lrDecay)
        let gradient = grad.isContiguous ? grad : try grad.contiguousCopy()
        let count = param.numel * (param.dtype.isComplex ? 2 : 1)
        guard count > 0 else { return }
        try param.storage.withUnsafeMutableBytes { paramBytes in
            try sum.storage.withUnsafeMutableBytes { sumBytes in
                try gradient.storage.withUnsafeBytes { gradBytes in
                    let item = param.dtype.itemSize
                    let p = paramBytes.baseAddress! + param.storageOffset * item
                    let s = sumBytes.baseAddress! + sum.storageOffset * item
                    let g = gradBytes.baseAddress! + gradient.storageOffset * item
                    switch param.dtype {
                    case .float32, .complex64:
                        update(Float.self, p, g, s, count, clr, hyper, implementation)
                    case .float64, .complex128:
                        update(Double.self, p, g, s, count, clr, hyper, implementation)
                    default:
                        throw CheckpointError(.typeMismatch, "Adagrad kernel not available", found: "\(param.dtype)")
                    }
                }
            }
        }
    }

    private static func checkOperands(param: Tensor, grad: Tensor, sum: Tensor) throws {
        let supported: Set<DType> = [.float32, .float64, .float16, .bfloat16, .complex64, .complex128]
        guard supported.contains(param.dtype) else {
            throw CheckpointError(
                .typeMismatch, "Adagrad needs a floating-point or complex parameter",
                expected: "float32, float64, float16, bfloat16, complex64 or complex128", found: "\(param.dtype)")
        }
        for (name, other) in [("grad", grad), ("sum", sum)] {
            guard other.dtype == param.dtype else {
                throw CheckpointError(.typeMismatch, "\(name) dtype differs from the parameter's", path: name,
                                      expected: "\(param.dtype)", found: "\(other.dtype)")
            }
            guard other.shape == param.shape else {
                throw CheckpointError(.typeMismatch, "\(name) shape differs from the parameter's", path: name,
                                      expected: "\(param.shape)", found: "\(other.shape)")
            }
        }
        for (name, tensor) in [("param", param), ("sum", sum)] where !tensor.isContiguous {
            throw CheckpointError(.invalidArgument, "Adagrad updates \(name) in place and needs it contiguous", path: name,
                                  expected: "contiguous strides", found: "\(tensor.strides)")
        }
    }

    private static func update<T: BinaryFloatingPoint>(
        _: T.Type, _ p: UnsafeMutableRawPointer, _ g: UnsafeRawPointer, _ s: UnsafeMutableRawPointer, _ count: Int,
        _ clr: Double, _ hyper: AdagradHyperparameters, _ implementation: AdagradImplementation
    ) {
        let param = p.assumingMemoryBound(to: T.self)
        let grad = g.assumingMemoryBound(to: T.self)
        let sum = s.assumingMemoryBound(to: T.self)
        let wd = T(hyper.weightDecay), eps = T(hyper.eps), minusClr = T(-clr)
        for i in 0..<count {
            var gi = hyper.maximize ? -grad[i] : grad[i]
            if hyper.weightDecay != 0 { gi = gi + wd * param[i] }
            sum[i] = sum[i] + gi * gi
            let std = sum[i].squareRoot() + eps
            switch implementation {
            case .singleTensor: param[i] = param[i] + minusClr * (gi / std)
            case .forEach: param[i] = param[i] + (gi * minusClr) / std
            case .fused: param[i] = param[i] - T(clr) * gi / std
            }
        }
    }
}
