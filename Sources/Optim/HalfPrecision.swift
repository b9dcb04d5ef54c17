import Checkpoint

/// IEEE half-precision conversions done on bits, because Swift's `Float16` is missing on macOS
/// x86_64 and ckpt must round exactly as PyTorch's `c10::Half` does on every platform.
enum HalfPrecision {
    /// The half value of `bits`, exactly, as a Float.
    static func float(fromBits bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {
            // Subnormal (or zero): mantissa × 2⁻²⁴, exact in Float.
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }

    /// `value` rounded to the nearest half, ties to even; NaN stays a quiet NaN, overflow gives ±inf.
    static func bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let magnitude = value.magnitude
        if value.isNaN { return sign | 0x7E00 | UInt16(truncatingIfNeeded: (bits >> 13) & 0x3FF) }
        // 65520 is the midpoint between the largest half (65504) and the next power of two: ties go up to inf.
        if magnitude >= 65520 { return sign | 0x7C00 }
        if magnitude < Float(sign: .plus, exponent: -14, significand: 1) {
            // Subnormal range: quantize to multiples of 2⁻²⁴ with the FPU's ties-to-even rounding.
            let scaled = (magnitude * Float(sign: .plus, exponent: 24, significand: 1)).rounded(.toNearestOrEven)
            return sign | UInt16(scaled)
        }
        let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
        let mantissa = bits & 0x7F_FFFF
        let halfway: UInt32 = 0x1000
        var rounded = UInt32(exponent) << 10 | (mantissa >> 13)
        let remainder = mantissa & 0x1FFF
        if remainder > halfway || (remainder == halfway && (rounded & 1) == 1) { rounded += 1 }
        return sign | UInt16(truncatingIfNeeded: rounded)
    }

    /// `value` rounded to half precision and back.
    static func round(_ value: Float) -> Float { float(fromBits: bits(from: value)) }
}

extension BFloat16 {
    /// `value` rounded to bfloat16 and back, as PyTorch's `c10::BFloat16` arithmetic stores each result.
    static func round(_ value: Float) -> Float { BFloat16(value).floatValue }
}
