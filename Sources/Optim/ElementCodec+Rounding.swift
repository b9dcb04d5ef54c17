import Checkpoint

extension ElementCodec {
    /// `value` rounded to float16 and back, as PyTorch's `c10::Half` arithmetic stores each result.
    static func roundedToFloat16(_ value: Float) -> Float { float(fromFloat16Bits: float16Bits(from: value)) }
}

extension BFloat16 {
    /// `value` rounded to bfloat16 and back, as PyTorch's `c10::BFloat16` arithmetic stores each result.
    static func round(_ value: Float) -> Float { BFloat16(value).floatValue }
}

/// How ATen's scalar (one element at a time) CPU code rounds in one dtype, for the sparse paths
/// that update a few entries through such loops. Values travel as Double; each operation's exact
/// result rounded once to the dtype equals the narrower type's correctly rounded result.
struct ScalarRounding {
    /// A result stored in the dtype.
    let round: (Double) -> Double
    /// `base + a * b` as ATen's loops compute it: one fused multiply-add for float and double
    /// (GCC contracts it), the product rounded first for `c10::Half` and `c10::BFloat16`.
    let multiplyAdd: (_ base: Double, _ a: Double, _ b: Double) -> Double
    /// The same operation in a vectorized loop, which widens float16/bfloat16 to float and fuses it.
    let fusedMultiplyAdd: (_ base: Double, _ a: Double, _ b: Double) -> Double

    /// The rounding of `dtype`, or nil for a dtype the sparse paths do not handle.
    init?(_ dtype: DType) {
        switch dtype {
        case .float64:
            round = { $0 }
            multiplyAdd = { $0.addingProduct($1, $2) }
            fusedMultiplyAdd = multiplyAdd
        case .float32:
            round = { Double(Float($0)) }
            multiplyAdd = { Double(Float($0).addingProduct(Float($1), Float($2))) }
            fusedMultiplyAdd = multiplyAdd
        case .float16:
            round = { Double(ElementCodec.roundedToFloat16(Float($0))) }
            multiplyAdd = { Double(ElementCodec.roundedToFloat16(Float($0) + ElementCodec.roundedToFloat16(Float($1) * Float($2)))) }
            fusedMultiplyAdd = { Double(ElementCodec.roundedToFloat16(Float($0).addingProduct(Float($1), Float($2)))) }
        case .bfloat16:
            round = { Double(BFloat16.round(Float($0))) }
            multiplyAdd = { Double(BFloat16.round(Float($0) + BFloat16.round(Float($1) * Float($2)))) }
            fusedMultiplyAdd = { Double(BFloat16.round(Float($0).addingProduct(Float($1), Float($2)))) }
        default:
            return nil
        }
    }
}
