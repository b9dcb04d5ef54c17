import Checkpoint

/// SGD's update for a sparse COO gradient without momentum: torch's
/// `param.add_(grad if not maximize else -grad, alpha=-lr)`, whose CPU kernel
/// (`add_out_dense_sparse_cpu`) adds each stored entry in order, `param += alpha * value` with
/// alpha cast to the parameter's type (``ScalarRounding/multiplyAdd``), repeated positions of an
/// uncoalesced gradient one after another. A gradient whose values are strided takes ATen's slow
/// path instead: coalesced first, then each entry's block added with `add_`, whose float16/bfloat16
/// vector loop fuses the multiply-add except in its scalar tail.
enum SGDSparseUpdate {
    /// Applies one step.
    ///
    /// - Parameters:
    ///   - param: The parameter, contiguous, updated in place.
    ///   - grad: Its sparse gradient, same shape and dtype.
    ///   - hyper: The group's options (no momentum or weight decay: the caller checks).
    /// - Throws: ``OptimizerError`` `.unsupported` for a dtype other than f32, f64, f16 or bf16;
    ///   a failed storage verification.
    static func apply(param: Tensor, grad: SparseTensor, hyper: SGDHyperparameters) throws {
        let dtype = param.dtype
        guard let rounding = ScalarRounding(dtype) else {
            throw OptimizerError(.unsupported, "sparse gradients are supported for float32, float64, float16 and bfloat16 parameters, not \(dtype)")
        }
        guard grad.nnz > 0 else { return }
        let stridedValues = !grad.values.isContiguous
        let entries = stridedValues ? try grad.coalesced() : grad
        let offsets = try entries.elementOffsets(in: param)
        let block = offsets.count / entries.nnz
        let alpha = rounding.round(-hyper.lr)
        let values = try entries.values.contiguousCopy()
        // ATen's add over one block: its vectorized loop takes 32 two-byte elements per iteration
        // and leaves the rest to its scalar tail.
        let vectorPart = dtype.itemSize == 2 && stridedValues ? block - block % 32 : 0
        try values.storage.withUnsafeBytes { valueBytes in
            try param.storage.withUnsafeMutableBytes { paramBytes in
                guard let v = valueBytes.baseAddress, let p = paramBytes.baseAddress else { return }
                for position in offsets.indices {
                    var g = try Tensor.readElement(v, position, dtype)
                    if hyper.maximize { g = -g }
                    let current = try Tensor.readElement(p, offsets[position], dtype)
                    let updated = position % max(block, 1) < vectorPart
                        ? rounding.fusedMultiplyAdd(current, alpha, g) : rounding.multiplyAdd(current, alpha, g)
                    try Tensor.writeFloatingElement(p, offsets[position], dtype, updated)
                }
            }
        }
    }
}
