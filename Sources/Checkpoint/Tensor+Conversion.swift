import Foundation

/// Element codecs for every dtype, and `Tensor.cast(to:)`, which casts as `tensor.to(dtype)` does.
///
/// The rounding rules are PyTorch's (c10/util/Half.h, BFloat16.h, Float8_e4m3fn.h, Float8_e5m2.h):
/// a narrower float is reached from `float` (a `double` or `int64` is first rounded to `float`,
/// as c10's constructors take a `float`), ties go to even, float16, bfloat16 and float8_e5m2
/// overflow to infinity, and float8_e4m3fn (which has no infinity) saturates at ±448.
package enum ElementCodec {
    /// The exact value of IEEE half-precision bits.
    package static func float(fromFloat16Bits bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        if exponent == 0 {
            // Subnormal (or zero): mantissa × 2⁻²⁴, exact in Float.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
    }

    /// Half-precision bits of a Float, rounded to nearest even; overflow gives infinity and NaN
    /// becomes a quiet NaN with the sign kept (c10's `fp16_ieee_from_fp32_value`).
    package static func float16Bits(from value: Float) -> UInt16 {
        let scaleToInfinity: Float = 0x1p112
        let scaleToZero: Float = 0x1p-110
        var base = (abs(value) * scaleToInfinity) * scaleToZero
        let word = value.bitPattern
        let shiftedWord = word &+ word
        let sign = word & 0x8000_0000
        var bias = shiftedWord & 0xFF00_0000
        if bias < 0x7100_0000 { bias = 0x7100_0000 }
        base = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + base
        let bits = base.bitPattern
        let exponentBits = (bits >> 13) & 0x0000_7C00
        let mantissaBits = bits & 0x0000_0FFF
        let nonsign = exponentBits &+ mantissaBits
        return UInt16(truncatingIfNeeded: (sign >> 16) | (shiftedWord > 0xFF00_0000 ? 0x7E00 : nonsign))
    }

    /// The exact value of float8_e4m3fn bits (bias 7, no infinities, `S.1111.111` is NaN).
    package static func float(fromFloat8E4M3FNBits bits: UInt8) -> Float {
        let negative = bits & 0x80 != 0
        let exponent = Int(bits >> 3) & 0xF
        let mantissa = Int(bits & 0x7)
        let magnitude: Float
        if exponent == 0xF && mantissa == 0x7 {
            // c10's decoder moves the bits into place: a quiet NaN with mantissa 0x700000.
            return Float(bitPattern: (negative ? 0x8000_0000 : 0) | 0x7FF0_0000)
        } else if exponent == 0 {
            magnitude = Float(mantissa) * 0x1p-9
        } else {
            magnitude = Float(8 + mantissa) * Float(sign: .plus, exponent: exponent - 10, significand: 1)
        }
        return negative ? -magnitude : magnitude
    }

    /// float8_e4m3fn bits of a Float, rounded to nearest even and saturating: a finite or
    /// infinite value beyond ±448 becomes ±448 (`0x7E`/`0xFE`), NaN becomes NaN (`0x7F`, sign
    /// kept). PyTorch 2.15 casts this way (checked against torch; older c10 turned |x| ≥ 480 into NaN).
    static func float8E4M3FNBits(from value: Float) -> UInt8 {
        var bits = value.bitPattern
        let sign = UInt8(truncatingIfNeeded: (bits & 0x8000_0000) >> 24)
        if value.isNaN { return 0x7F | sign }
        bits &= 0x7FFF_FFFF
        let result: UInt8
        if bits >= UInt32(1087) << 20 {
            result = 0x7E
        } else if bits < UInt32(121) << 23 {
            // Below the smallest normal: adding 2⁻⁶·2³ lets the FPU round the subnormal bits.
            let denormMask = UInt32(141) << 23
            let shifted = Float(bitPattern: bits) + Float(bitPattern: denormMask)
            result = UInt8(truncatingIfNeeded: shifted.bitPattern &- denormMask)
        } else {
            let mantissaOdd = (bits >> 20) & 1
            bits = bits &+ (UInt32(bitPattern: Int32(7 - 127)) << 23) &+ 0x7FFFF
            bits = bits &+ mantissaOdd
            // Rounding up from [464, 480) lands on the NaN pattern; saturate instead.
            result = Swift.min(UInt8(truncatingIfNeeded: bits >> 20), 0x7E)
        }
        return result | sign
    }

    /// The exact value of float8_e5m2 bits (bias 15, IEEE-like infinities and NaNs).
    package static func float(fromFloat8E5M2Bits bits: UInt8) -> Float {
        // e5m2 is the top byte of a float16.
        float(fromFloat16Bits: UInt16(bits) << 8)
    }

    /// float8_e5m2 bits of a Float, rounded to nearest even; overflow gives infinity, NaN gives
    /// `0x7F` (sign kept), as c10's `fp8e5m2_from_fp32_value`.
    static func float8E5M2Bits(from value: Float) -> UInt8 {
        var bits = value.bitPattern
        let sign = UInt8(truncatingIfNeeded: (bits & 0x8000_0000) >> 24)
        bits &= 0x7FFF_FFFF
        let result: UInt8
        if bits >= UInt32(143) << 23 {
            result = bits > UInt32(255) << 23 ? 0x7F : 0x7C
        } else if bits < UInt32(113) << 23 {
            let denormMask = UInt32(134) << 23
            let shifted = Float(bitPattern: bits) + Float(bitPattern: denormMask)
            result = UInt8(truncatingIfNeeded: shifted.bitPattern &- denormMask)
        } else {
            let mantissaOdd = (bits >> 21) & 1
            bits = bits &+ (UInt32(bitPattern: Int32(15 - 127)) << 23) &+ 0xFFFFF
            bits = bits &+ mantissaOdd
            result = UInt8(truncatingIfNeeded: bits >> 21)
        }
        return result | sign
    }

    /// bfloat16 bits of a Float, rounded to nearest even (NaN stays a quiet NaN).
    static func bfloat16Bits(from value: Float) -> UInt16 { BFloat16(value).bitPattern }

    /// The exact value of bfloat16 bits.
    static func float(fromBFloat16Bits bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}

/// One element on its way between dtypes, keeping integers exact (an int64 does not pass
/// through a double, which would round it before a cast to int32 or float).
package enum ConversionElement {
    case signed(Int64)
    case unsigned(UInt64)
    case real(Double)
    case complex(Double, Double)
}

extension DType {
    /// True for the integer dtypes and bool.
    public var isIntegral: Bool { !isFloatingPoint && !isComplex }
}

extension Tensor {
    /// The elements as Doubles in row-major order, each exactly as stored (integers beyond 2⁵³
    /// are rounded; bool is 0 or 1).
    ///
    /// - Returns: One Double per element.
    /// - Throws: ``CheckpointError`` `.typeMismatch` for a complex tensor; a failed storage verification.
    public func doubleValues() throws -> [Double] {
        guard !dtype.isComplex else {
            throw CheckpointError(.typeMismatch, "complex elements have no single real value", expected: "a real dtype", found: "\(dtype)")
        }
        return try map { element in
            switch element {
            case .signed(let value): return Double(value)
            case .unsigned(let value): return Double(value)
            case .real(let value): return value
            case .complex(let real, _): return real
            }
        }
    }

    /// A copy with every element cast to `target`, bit for bit as `tensor.to(target)` in PyTorch.
    ///
    /// Floating to floating rounds to nearest even (via float for float16, bfloat16 and float8,
    /// as c10 does); integers wrap as C++ casts do; bool is `x != 0`; complex to real keeps the
    /// real part (torch warns and does the same); real to complex has a zero imaginary part.
    /// The result is contiguous; `requiresGrad` is kept when the target is floating or complex.
    /// Checked bit for bit against torch 2.15 (Tests/Fixtures/numeric/casts.pt), NaNs included;
    /// a NaN with a payload other than the default quiet NaN may differ from torch in its payload bits.
    ///
    /// - Parameter target: The dtype of the copy.
    /// - Returns: A new tensor in owned storage.
    /// - Throws: ``CheckpointError`` `.invalidArgument` when a floating value (NaN, infinite, or
    ///   out of range after truncation) has no defined integer value in C++ and torch's result
    ///   would depend on the CPU; `.outOfBounds` when the copy (or the row-major copy of a
    ///   broadcast view) would not fit in memory; a failed storage verification.
    public func cast(to target: DType) throws -> Tensor {
        let count = numel
        let storage = Storage(byteCount: try Tensor.checkedAllocationSize(count, target, byteCount: byteCount))
        if count > 0 {
            let source = try contiguousBytes()
            try source.withUnsafeBytes { input in
                try storage.withUnsafeMutableBytes { output in
                    try Tensor.convert(input, from: dtype, into: output, as: target, count: count)
                }
            }
        }
        var result = try Tensor(storage: storage, dtype: target, shape: shape)
        result.isParameter = isParameter
        result.requiresGrad = requiresGrad && !target.isIntegral
        // A numpy value stays one where numpy has the target type.
        result.numpyOrigin = target.numpyTypeCode == nil ? nil : numpyOrigin
        return result
    }

    /// Bytes for `count` elements of `dtype`, refused when the source's row-major bytes
    /// (`byteCount`) or the result would overflow or exceed physical memory, where an allocation
    /// would trap instead of throwing.
    package static func checkedAllocationSize(_ count: Int, _ dtype: DType, byteCount: Int) throws -> Int {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        let memory = ProcessInfo.processInfo.physicalMemory
        guard !overflow, UInt64(bytes) <= memory, UInt64(byteCount) <= memory else {
            throw CheckpointError(
                .outOfBounds, "tensor is too large to copy into memory", expected: "at most \(memory) bytes",
                found: "\(count) elements of \(dtype.rawValue)")
        }
        return bytes
    }

    /// Calls `transform` on each element in row-major order.
    func map<T>(_ transform: (ConversionElement) throws -> T) throws -> [T] {
        let bytes = try contiguousBytes()
        return try bytes.withUnsafeBytes { raw in
            try (0..<numel).map { try transform(Tensor.element(raw, at: $0, of: dtype)) }
        }
    }

    static func convert(
        _ input: UnsafeRawBufferPointer, from source: DType, into output: UnsafeMutableRawBufferPointer, as target: DType, count: Int
    ) throws {
        if source == target {
            output.copyMemory(from: input)
            return
        }
        if source == .float32 {
            let floats = input.bindMemory(to: Float.self)
            switch target {
            case .bfloat16:
                let out = output.bindMemory(to: UInt16.self)
                for index in 0..<count {
                    let value = floats[index]
                    out[index] = value.isNaN ? 0xFFFF : ElementCodec.bfloat16Bits(from: value)
                }
                return
            case .float16:
                let out = output.bindMemory(to: UInt16.self)
                for index in 0..<count { out[index] = ElementCodec.float16Bits(from: floats[index]) }
                return
            case .float64:
                let out = output.bindMemory(to: Double.self)
                for index in 0..<count { out[index] = Double(floats[index]) }
                return
            default: break
            }
        }
        if source == .float64, target == .float32 {
            let doubles = input.bindMemory(to: Double.self)
            let out = output.bindMemory(to: Float.self)
            for index in 0..<count { out[index] = Float(doubles[index]) }
            return
        }
        if target == .float32, source == .bfloat16 || source == .float16 {
            // Bit-level widening: torch keeps a bfloat16 signaling NaN signaling but quiets a
            // float16 one (a trip through Double would quiet both).
            let bits = input.bindMemory(to: UInt16.self)
            let out = output.bindMemory(to: Float.self)
            for index in 0..<count {
                if source == .bfloat16 {
                    out[index] = ElementCodec.float(fromBFloat16Bits: bits[index])
                } else {
                    let value = ElementCodec.float(fromFloat16Bits: bits[index])
                    out[index] = value.isNaN ? Float(bitPattern: value.bitPattern | 0x0040_0000) : value
                }
            }
            return
        }
        for index in 0..<count {
            try store(element(input, at: index, of: source), into: output, at: index, as: target, from: source)
        }
    }

    /// Element `index` of packed bytes of `dtype`, decoded exactly.
    package static func element(_ raw: UnsafeRawBufferPointer, at index: Int, of dtype: DType) -> ConversionElement {
        let offset = index * dtype.itemSize
        switch dtype {
        case .float64: return .real(raw.loadUnaligned(fromByteOffset: offset, as: Double.self))
        case .float32: return .real(Double(raw.loadUnaligned(fromByteOffset: offset, as: Float.self)))
        case .float16:
            return .real(Double(ElementCodec.float(fromFloat16Bits: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
        case .bfloat16:
            return .real(Double(ElementCodec.float(fromBFloat16Bits: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
        case .float8_e4m3fn: return .real(Double(ElementCodec.float(fromFloat8E4M3FNBits: raw[offset])))
        case .float8_e5m2: return .real(quieted(ElementCodec.float(fromFloat8E5M2Bits: raw[offset])))
        case .complex64:
            return .complex(
                Double(raw.loadUnaligned(fromByteOffset: offset, as: Float.self)),
                Double(raw.loadUnaligned(fromByteOffset: offset + 4, as: Float.self)))
        case .complex128:
            return .complex(
                raw.loadUnaligned(fromByteOffset: offset, as: Double.self), raw.loadUnaligned(fromByteOffset: offset + 8, as: Double.self))
        case .int64: return .signed(raw.loadUnaligned(fromByteOffset: offset, as: Int64.self))
        case .int32: return .signed(Int64(raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
        case .int16: return .signed(Int64(raw.loadUnaligned(fromByteOffset: offset, as: Int16.self)))
        case .int8: return .signed(Int64(Int8(bitPattern: raw[offset])))
        case .uint8: return .unsigned(UInt64(raw[offset]))
        case .bool: return .unsigned(raw[offset] != 0 ? 1 : 0)
        case .uint16: return .unsigned(UInt64(raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
        case .uint32: return .unsigned(UInt64(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        case .uint64: return .unsigned(raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
    }

    /// A decoded NaN with its quiet bit set, as torch's float8_e5m2 casts give it.
    private static func quieted(_ value: Float) -> Double {
        Double(value.isNaN ? Float(bitPattern: value.bitPattern | 0x0040_0000) : value)
    }

    /// Writes one element as `target`, with C++'s and c10's cast rules.
    ///
    /// A NaN cast to bfloat16 is `0xFFFF` from float32 (ATen's vectorized conversion) and `0x7FC0`
    /// from other dtypes (c10's scalar `round_to_nearest_even`); torch's bits depend on which loop
    /// it takes, and these are the ones it takes for those sources.
    static func store(
        _ element: ConversionElement, into raw: UnsafeMutableRawBufferPointer, at index: Int, as target: DType, from source: DType
    ) throws {
        let offset = index * target.itemSize
        // Complex to anything real drops the imaginary part, as torch does (with a warning).
        var element = element
        if case .complex(let real, _) = element, !target.isComplex { element = .real(real) }
        switch target {
        case .float64: raw.storeBytes(of: real(element), toByteOffset: offset, as: Double.self)
        case .float32: raw.storeBytes(of: float(element), toByteOffset: offset, as: Float.self)
        case .float16: raw.storeBytes(of: ElementCodec.float16Bits(from: float(element)), toByteOffset: offset, as: UInt16.self)
        case .bfloat16:
            let value = float(element)
            let bits: UInt16 = value.isNaN ? (source == .float32 ? 0xFFFF : 0x7FC0) : ElementCodec.bfloat16Bits(from: value)
            raw.storeBytes(of: bits, toByteOffset: offset, as: UInt16.self)
        case .float8_e4m3fn: raw[offset] = ElementCodec.float8E4M3FNBits(from: float(element))
        case .float8_e5m2: raw[offset] = ElementCodec.float8E5M2Bits(from: float(element))
        case .complex64, .complex128:
            let (re, im): (Double, Double)
            if case .complex(let r, let i) = element { (re, im) = (r, i) } else { (re, im) = (real(element), 0) }
            if target == .complex64 {
                raw.storeBytes(of: float(.real(re)), toByteOffset: offset, as: Float.self)
                raw.storeBytes(of: float(.real(im)), toByteOffset: offset + 4, as: Float.self)
            } else {
                raw.storeBytes(of: re, toByteOffset: offset, as: Double.self)
                raw.storeBytes(of: im, toByteOffset: offset + 8, as: Double.self)
            }
        case .bool:
            let nonzero: Bool
            switch element {
            case .signed(let v): nonzero = v != 0
            case .unsigned(let v): nonzero = v != 0
            case .real(let v): nonzero = v != 0
            case .complex(let r, let i): nonzero = r != 0 || i != 0
            }
            raw[offset] = nonzero ? 1 : 0
        case .int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64:
            let bits = try integerBits(element, target: target)
            switch target.itemSize {
            case 8: raw.storeBytes(of: bits, toByteOffset: offset, as: UInt64.self)
            case 4: raw.storeBytes(of: UInt32(truncatingIfNeeded: bits), toByteOffset: offset, as: UInt32.self)
            case 2: raw.storeBytes(of: UInt16(truncatingIfNeeded: bits), toByteOffset: offset, as: UInt16.self)
            default: raw[offset] = UInt8(truncatingIfNeeded: bits)
            }
        }
    }

    private static func real(_ element: ConversionElement) -> Double {
        switch element {
        case .signed(let v): return Double(v)
        case .unsigned(let v): return Double(v)
        case .real(let v), .complex(let v, _): return v
        }
    }

    /// The Float a c10 constructor sees: integers convert to float directly (one rounding).
    private static func float(_ element: ConversionElement) -> Float {
        switch element {
        case .signed(let v): return Float(v)
        case .unsigned(let v): return Float(v)
        case .real(let v), .complex(let v, _): return Float(v)
        }
    }

    /// Two's-complement bits of an integer cast; integers wrap, floats truncate toward zero.
    private static func integerBits(_ element: ConversionElement, target: DType) throws -> UInt64 {
        switch element {
        case .signed(let v): return UInt64(bitPattern: v)
        case .unsigned(let v): return v
        case .real(let v), .complex(let v, _):
            let truncated = v.rounded(.towardZero)
            // C++ leaves float-to-int casts out of range undefined. torch goes through int64 for
            // uint8 (c10/util/TypeCast.h) and, on x86, through int32 for int8 and int16, wrapping
            // the low bits; those are defined here, and anything outside them throws.
            let (low, high): (Double, Double)
            switch target {
            case .uint8, .int64: (low, high) = (-0x1p63, 0x1p63)
            case .int32, .int16, .int8: (low, high) = (-0x1p31, 0x1p31)
            case .uint16: (low, high) = (0, 0x1p16)
            case .uint32: (low, high) = (0, 0x1p32)
            default: (low, high) = (0, 0x1p64)
            }
            guard truncated >= low, truncated < high else {
                throw CheckpointError(
                    .invalidArgument, "value has no defined \(target.rawValue) value (C++ leaves the cast undefined)",
                    expected: "a finite value in \(target.rawValue)'s range", found: "\(v)")
            }
            if target == .uint64 || target == .uint32 || target == .uint16 { return UInt64(truncated) }
            return UInt64(bitPattern: Int64(truncated))
        }
    }
}

extension StateValue {
    /// The tree with every tensor whose dtype passes `shouldCast` cast to `target`
    /// (ckpt-tool's `convert --dtype`), keeping shared storages shared and views as views.
    ///
    /// A storage is cast as a whole when all its tensors have one dtype, so tied weights stay tied
    /// and a view keeps its strides and offset; a storage viewed under several dtypes is cast
    /// tensor by tensor into separate contiguous copies.
    ///
    /// - Parameters:
    ///   - target: The dtype to cast to.
    ///   - shouldCast: Which source dtypes to cast (for example, `\.isFloatingPoint`).
    /// - Returns: The new tree; tensors not cast keep their storages.
    /// - Throws: What ``Tensor/cast(to:)`` throws.
    public func castingTensors(to target: DType, where shouldCast: (DType) -> Bool) throws -> StateValue {
        var dtypesByStorage: [ObjectIdentifier: Set<DType>] = [:]
        forEachTensor { _, tensor in dtypesByStorage[ObjectIdentifier(tensor.storage), default: []].insert(tensor.dtype) }
        var castStorages: [ObjectIdentifier: Storage] = [:]
        return try mapTensors { tensor in
            guard shouldCast(tensor.dtype), tensor.dtype != target else { return tensor }
            let id = ObjectIdentifier(tensor.storage)
            guard dtypesByStorage[id]?.count == 1, tensor.storage.byteCount % tensor.dtype.itemSize == 0 else {
                return try tensor.cast(to: target)
            }
            let storage: Storage
            if let done = castStorages[id] {
                storage = done
            } else {
                let whole = try Tensor(
                    storage: tensor.storage, dtype: tensor.dtype, shape: [tensor.storage.byteCount / tensor.dtype.itemSize])
                storage = try whole.cast(to: target).storage
                castStorages[id] = storage
            }
            var cast = try Tensor(
                storage: storage, dtype: target, shape: tensor.shape, strides: tensor.strides, storageOffset: tensor.storageOffset,
                requiresGrad: tensor.requiresGrad && !target.isIntegral, isParameter: tensor.isParameter)
            cast.numpyOrigin = target.numpyTypeCode == nil ? nil : tensor.numpyOrigin
            return cast
        }
    }

    /// The tree with each tensor replaced by `transform(tensor)`, in ``forEachTensor(_:)`` order.
    func mapTensors(_ transform: (Tensor) throws -> Tensor) rethrows -> StateValue {
        switch self {
        case .tensor(let tensor):
            return .tensor(try transform(tensor))
        case .dict(var dict):
            for key in dict.items.keys { dict.items[key] = try dict.items[key]!.mapTensors(transform) }
            for key in dict.attributes.keys { dict.attributes[key] = try dict.attributes[key]!.mapTensors(transform) }
            return .dict(dict)
        case .list(let elements): return .list(try elements.map { try $0.mapTensors(transform) })
        case .tuple(let elements): return .tuple(try elements.map { try $0.mapTensors(transform) })
        case .set(let elements): return .set(try elements.map { try $0.mapTensors(transform) })
        case .object(let object): return .object(try object.mapParts { _, part in try part.mapTensors(transform) })
        case .record(var record):
            for key in record.attributes.keys { record.attributes[key] = try record.attributes[key]!.mapTensors(transform) }
            return .record(record)
        default: return self
        }
    }
}
