import Checkpoint

extension ElementCodec {
    /// `value` rounded to float16 and back, as PyTorch's `c10::Half` arithmetic stores each result.
    static func roundedToFloat16(_ value: Float) -> Float { float(fromFloat16Bits: float16Bits(from: value)) }
}

extension BFloat16 {
    /// `value` rounded to bfloat16 and back, as PyTorch's `c10::BFloat16` arithmetic stores each result.
    static func round(_ value: Float) -> Float { BFloat16(value).floatValue }
}
