import CKernels
import Checkpoint

/// Adagrad's update for a sparse COO gradient, reproducing torch's single-tensor sparse branch
/// op by op:
///
///     grad = grad.coalesce()
///     sum.add_(sparse(indices, values²))
///     std_values = sum.sparse_mask(grad)._values().sqrt_().add_(eps)
///     param.add_(sparse(indices, values / std_values), alpha=-clr)
///
/// Each op rounds to the tensor's dtype as ATen does: float32 and float64 natively, float16 and
/// bfloat16 through float32 with a rounding after every op (`c10::Half` arithmetic). Products
/// and quotients are computed in Double and rounded once, which for these single operations
/// equals the narrower type's correctly rounded result; float32/float64 square roots are torch's
/// (MKL's, see ``takeTorchSquareRoots``). Only the entries the gradient names change.
enum AdagradSparseUpdate {
    /// Applies one step.
    ///
    /// - Parameters:
    ///   - param: The parameter (any strides), updated in place.
    ///   - grad: Its sparse gradient, same shape and dtype.
    ///   - sum: The accumulator, same shape and dtype, updated in place.
    ///   - step: The step count after this step's increment.
    ///   - hyper: The group's options (weight decay must be 0, as torch requires for sparse gradients).
    /// - Throws: ``OptimizerError`` `.unsupported` for a dtype other than f32, f64, f16 or bf16;
    ///   a failed storage verification.
    static func apply(param: Tensor, grad: SparseTensor, sum: Tensor, step: Double, hyper: AdagradHyperparameters) throws {
        let dtype = param.dtype
        guard let rounding = ScalarRounding(dtype) else {
            throw OptimizerError(.unsupported, "sparse gradients are supported for float32, float64, float16 and bfloat16 parameters, not \(dtype)")
        }
        let round = rounding.round
        let coalesced = try grad.coalesced()
        let nnz = coalesced.nnz
        guard nnz > 0 else { return }
        let clr = hyper.lr / (1 + (step - 1) * hyper.lrDecay)
        // ATen casts scalars to the tensor's type before the element loop (`value.to<scalar_t>()`).
        let alpha = round(-clr)
        let eps = round(hyper.eps)
        let paramOffsets = try coalesced.elementOffsets(in: param), sumOffsets = try coalesced.elementOffsets(in: sum)
        let block = paramOffsets.count / nnz
        let values = try coalesced.values.contiguousCopy()
        var roots = [Double](repeating: 0, count: nnz * block)
        try values.storage.withUnsafeBytes { valueBytes in
            try sum.storage.withUnsafeMutableBytes { sumBytes in
                guard let v = valueBytes.baseAddress, let s = sumBytes.baseAddress else { return }
                for position in roots.indices {
                    var g = try Tensor.readElement(v, position, dtype)
                    if hyper.maximize { g = -g }
                    let accumulated = round(try Tensor.readElement(s, sumOffsets[position], dtype) + round(g * g))
                    try Tensor.writeFloatingElement(s, sumOffsets[position], dtype, accumulated)
                    roots[position] = accumulated
                }
            }
        }
        takeTorchSquareRoots(&roots, dtype: dtype, round: round)
        try values.storage.withUnsafeBytes { valueBytes in
            try param.storage.withUnsafeMutableBytes { paramBytes in
                guard let v = valueBytes.baseAddress, let p = paramBytes.baseAddress else { return }
                for position in roots.indices {
                    var g = try Tensor.readElement(v, position, dtype)
                    if hyper.maximize { g = -g }
                    let std = round(roots[position] + eps)
                    let updated = rounding.multiplyAdd(try Tensor.readElement(p, paramOffsets[position], dtype), alpha, round(g / std))
                    try Tensor.writeFloatingElement(p, paramOffsets[position], dtype, updated)
                }
            }
        }
    }

    /// Replaces each accumulator value with torch's `sqrt` of it in `dtype`.
    ///
    /// For float32 and float64 torch's CPU sqrt is MKL's, which is not correctly rounded on every
    /// CPU; CKernels reproduces it. Half types take the correctly rounded root, then round it.
    private static func takeTorchSquareRoots(_ values: inout [Double], dtype: DType, round: (Double) -> Double) {
        let rounding = TorchRounding.current
        switch dtype {
        case .float64:
            values.withUnsafeMutableBufferPointer { ckpt_torch_sqrt_f64($0.baseAddress, Int64($0.count), rounding.sqrtF64) }
        case .float32:
            var narrow = values.map { Float($0) }
            narrow.withUnsafeMutableBufferPointer { ckpt_torch_sqrt_f32($0.baseAddress, Int64($0.count), rounding.sqrtF32) }
            for index in values.indices { values[index] = Double(narrow[index]) }
        default:
            for index in values.indices { values[index] = round(values[index].squareRoot()) }
        }
    }
}
