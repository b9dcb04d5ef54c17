import CStats
import Checkpoint
import Foundation

/// The element verdicts of part of a tensor pair; chunks merge in any order.
struct Closeness {
    var maxAbsolute = 0.0
    var maxRelative = 0.0
    var mismatched = 0
    var nanMismatches = 0

    mutating func merge(_ other: Closeness) {
        maxAbsolute = max(maxAbsolute, other.maxAbsolute)
        maxRelative = max(maxRelative, other.maxRelative)
        mismatched += other.mismatched
        nanMismatches += other.nanMismatches
    }

    func comparison(path: [StateKey], elementCount: Int) -> StateDiff.TensorComparison {
        StateDiff.TensorComparison(
            path: path, elementCount: elementCount, maxAbsoluteDifference: maxAbsolute, maxRelativeDifference: maxRelative,
            mismatchedElements: mismatched, nanMismatches: nanMismatches)
    }
}

/// Compares packed blocks of elements with ``StateDiff/Tolerance``'s rule: one worker thread's
/// decoding buffers.
///
/// Same-dtype blocks with the same bytes are close without decoding (identical NaNs included).
/// float32, float64, bfloat16 and float16, in any pairing, go to the C kernel as they lie in the
/// file; integer and float8 elements are decoded to float64 first; complex ones one by one.
final class BlockComparer {
    private static let blockElements = 4096
    private var left = [Double](repeating: 0, count: blockElements)
    private var right = [Double](repeating: 0, count: blockElements)

    /// The verdicts of `count` element pairs.
    func compare(
        _ a: UnsafeRawPointer, _ aType: DType, _ b: UnsafeRawPointer, _ bType: DType, count: Int, tolerance: StateDiff.Tolerance
    ) -> Closeness {
        if aType == bType, memcmp(a, b, count * aType.itemSize) == 0 { return Closeness() }
        if aType.isComplex || bType.isComplex { return Self.complexCloseness(a, aType, b, bType, count: count, tolerance: tolerance) }
        if let aFormat = Self.format(aType), let bFormat = Self.format(bType) {
            return Self.kernel(a, aType, aFormat, b, bType, bFormat, count: count, tolerance: tolerance)
        }
        var result = Closeness()
        var start = 0
        while start < count {
            let length = min(Self.blockElements, count - start)
            left.withUnsafeMutableBufferPointer { decode(a, aType, from: start, count: length, into: $0) }
            right.withUnsafeMutableBufferPointer { decode(b, bType, from: start, count: length, into: $0) }
            let block = left.withUnsafeBytes { x in
                right.withUnsafeBytes { y in
                    Self.kernel(x.baseAddress!, .float64, CKPT_FORMAT_F64, y.baseAddress!, .float64, CKPT_FORMAT_F64,
                                count: length, tolerance: tolerance, nanBitsFrom: (a, aType, b, bType, start))
                }
            }
            result.merge(block)
            start += length
        }
        return result
    }

    private func decode(_ raw: UnsafeRawPointer, _ dtype: DType, from start: Int, count: Int, into out: UnsafeMutableBufferPointer<Double>) {
        let bytes = UnsafeRawBufferPointer(start: raw, count: (start + count) * dtype.itemSize)
        for index in 0..<count { out[index] = Self.parts(Tensor.element(bytes, at: start + index, of: dtype)).0 }
    }

    /// The C kernel over a block; NaN pairs, which it only counts, are judged here.
    ///
    /// - Parameter nanBitsFrom: The undecoded elements when `a` and `b` are float64 decodings,
    ///   so NaNs are compared by the bits they had; the index of the block's first element there.
    private static func kernel(
        _ a: UnsafeRawPointer, _ aType: DType, _ aFormat: ckpt_float_format, _ b: UnsafeRawPointer, _ bType: DType,
        _ bFormat: ckpt_float_format, count: Int, tolerance: StateDiff.Tolerance,
        nanBitsFrom source: (UnsafeRawPointer, DType, UnsafeRawPointer, DType, Int)? = nil
    ) -> Closeness {
        var block = ckpt_block_closeness()
        ckpt_compare_block(a, aFormat, b, bFormat, count, tolerance.relative, tolerance.absolute, &block)
        var result = Closeness(
            maxAbsolute: block.max_abs, maxRelative: block.max_rel, mismatched: Int(block.mismatched), nanMismatches: 0)
        guard block.nans > 0 else { return result }
        let (rawA, typeA, rawB, typeB, first) = source ?? (a, aType, b, bType, 0)
        let bytesA = UnsafeRawBufferPointer(start: rawA, count: (first + count) * typeA.itemSize)
        let bytesB = UnsafeRawBufferPointer(start: rawB, count: (first + count) * typeB.itemSize)
        for index in first..<first + count {
            let (x, _) = parts(Tensor.element(bytesA, at: index, of: typeA))
            let (y, _) = parts(Tensor.element(bytesB, at: index, of: typeB))
            guard x.isNaN || y.isNaN else { continue }
            if x.isNaN && y.isNaN && (tolerance.equalNaN || sameBits(bytesA, typeA, bytesB, typeB, at: index)) { continue }
            result.mismatched += 1
            result.nanMismatches += 1
        }
        return result
    }

    /// True when element `index` has the same bits on both sides: the stored bits for one dtype,
    /// the float64 bits of each part once widened across dtypes.
    private static func sameBits(_ a: UnsafeRawBufferPointer, _ aType: DType, _ b: UnsafeRawBufferPointer, _ bType: DType, at index: Int) -> Bool {
        if aType == bType {
            let size = aType.itemSize
            return memcmp(a.baseAddress! + index * size, b.baseAddress! + index * size, size) == 0
        }
        let (x, xi) = parts(Tensor.element(a, at: index, of: aType))
        let (y, yi) = parts(Tensor.element(b, at: index, of: bType))
        return x.bitPattern == y.bitPattern && xi.bitPattern == yi.bitPattern
    }

    private static func format(_ dtype: DType) -> ckpt_float_format? {
        switch dtype {
        case .float32: return CKPT_FORMAT_F32
        case .float64: return CKPT_FORMAT_F64
        case .bfloat16: return CKPT_FORMAT_BF16
        case .float16: return CKPT_FORMAT_F16
        default: return nil
        }
    }

    /// Pairs with a complex side, one by one: `|a - b|` and `|b|` are moduli.
    private static func complexCloseness(
        _ a: UnsafeRawPointer, _ aType: DType, _ b: UnsafeRawPointer, _ bType: DType, count: Int, tolerance: StateDiff.Tolerance
    ) -> Closeness {
        var result = Closeness()
        let bytesA = UnsafeRawBufferPointer(start: a, count: count * aType.itemSize)
        let bytesB = UnsafeRawBufferPointer(start: b, count: count * bType.itemSize)
        for index in 0..<count {
            let (x, xi) = parts(Tensor.element(bytesA, at: index, of: aType))
            let (y, yi) = parts(Tensor.element(bytesB, at: index, of: bType))
            let aIsNaN = x.isNaN || xi.isNaN
            let bIsNaN = y.isNaN || yi.isNaN
            if aIsNaN || bIsNaN {
                if aIsNaN && bIsNaN && (tolerance.equalNaN || sameBits(bytesA, aType, bytesB, bType, at: index)) { continue }
                result.nanMismatches += 1
                result.mismatched += 1
                continue
            }
            if x == y && xi == yi { continue }
            let difference = hypot(x - y, xi - yi)
            let magnitude = hypot(y, yi)
            // An infinity on either side that is not equal to the other side is never close, and
            // counts as an infinite difference.
            let isInfinite = x.isInfinite || xi.isInfinite || y.isInfinite || yi.isInfinite
            result.maxAbsolute = max(result.maxAbsolute, isInfinite ? .infinity : difference)
            result.maxRelative = max(result.maxRelative, isInfinite || magnitude == 0 ? .infinity : difference / magnitude)
            if isInfinite || !(difference <= tolerance.absolute + tolerance.relative * magnitude) { result.mismatched += 1 }
        }
        return result
    }

    /// Real and imaginary parts; integers beyond 2⁵³ are rounded to the nearest Double.
    private static func parts(_ element: ConversionElement) -> (Double, Double) {
        switch element {
        case .signed(let value): return (Double(value), 0)
        case .unsigned(let value): return (Double(value), 0)
        case .real(let value): return (value, 0)
        case .complex(let real, let imaginary): return (real, imaginary)
        }
    }
}
