import Checkpoint

// Element-wise reads and writes the optimizer needs for its bookkeeping (state creation, step
// counters). Dtype casts on load are Checkpoint's `Tensor.cast(to:)`; the update kernels live elsewhere.
extension Tensor {
    /// Reads element `index` (counted in elements from the start of `raw`) as a Double; complex
    /// elements give their real part, as `Tensor.to(real dtype)` keeps it.
    static func readElement(_ raw: UnsafeRawPointer, _ index: Int, _ dtype: DType) throws -> Double {
        switch dtype {
        case .float64: return raw.loadUnaligned(fromByteOffset: index * 8, as: Double.self)
        case .float32: return Double(raw.loadUnaligned(fromByteOffset: index * 4, as: Float.self))
        case .float16: return Double(ElementCodec.float(fromFloat16Bits: raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        case .bfloat16: return Double(BFloat16(bitPattern: raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)).floatValue)
        case .complex64: return Double(raw.loadUnaligned(fromByteOffset: index * 8, as: Float.self))
        case .complex128: return raw.loadUnaligned(fromByteOffset: index * 16, as: Double.self)
        case .int64: return Double(raw.loadUnaligned(fromByteOffset: index * 8, as: Int64.self))
        case .int32: return Double(raw.loadUnaligned(fromByteOffset: index * 4, as: Int32.self))
        case .int16: return Double(raw.loadUnaligned(fromByteOffset: index * 2, as: Int16.self))
        case .int8: return Double(raw.loadUnaligned(fromByteOffset: index, as: Int8.self))
        case .uint8: return Double(raw.loadUnaligned(fromByteOffset: index, as: UInt8.self))
        case .bool: return raw.loadUnaligned(fromByteOffset: index, as: UInt8.self) != 0 ? 1 : 0
        case .uint16: return Double(raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
        case .uint32: return Double(raw.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))
        case .uint64: return Double(raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
        case .float8_e4m3fn, .float8_e5m2:
            throw OptimizerError(.unsupported, "optimizer state of dtype \(dtype) is not supported")
        }
    }

    /// Writes `value` into element `index` of a real floating dtype, rounding as PyTorch's casts
    /// do: f16 and bf16 go through float32 first (`c10::Half(float(double))`).
    static func writeFloatingElement(_ raw: UnsafeMutableRawPointer, _ index: Int, _ dtype: DType, _ value: Double) throws {
        switch dtype {
        case .float64: raw.storeBytes(of: value, toByteOffset: index * 8, as: Double.self)
        case .float32: raw.storeBytes(of: Float(value), toByteOffset: index * 4, as: Float.self)
        case .float16: raw.storeBytes(of: ElementCodec.float16Bits(from: Float(value)), toByteOffset: index * 2, as: UInt16.self)
        case .bfloat16: raw.storeBytes(of: BFloat16(Float(value)).bitPattern, toByteOffset: index * 2, as: UInt16.self)
        default:
            throw OptimizerError(.unsupported, "cannot store a floating-point value in a \(dtype) tensor")
        }
    }

    /// A new contiguous tensor shaped like `prototype` with every element `real` (and, for a complex
    /// prototype, imaginary part `imaginary`): torch's `full_like`.
    static func full(like prototype: Tensor, real: Double, imaginary: Double) throws -> Tensor {
        let result = try Tensor(zeros: prototype.dtype, shape: prototype.shape)
        let count = result.numel
        guard count > 0 else { return result }
        try result.storage.withUnsafeMutableBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            switch prototype.dtype {
            case .complex64:
                for i in 0..<count {
                    base.storeBytes(of: Float(real), toByteOffset: i * 8, as: Float.self)
                    base.storeBytes(of: Float(imaginary), toByteOffset: i * 8 + 4, as: Float.self)
                }
            case .complex128:
                for i in 0..<count {
                    base.storeBytes(of: real, toByteOffset: i * 16, as: Double.self)
                    base.storeBytes(of: imaginary, toByteOffset: i * 16 + 8, as: Double.self)
                }
            default:
                for i in 0..<count { try writeFloatingElement(base, i, prototype.dtype, real) }
            }
        }
        return result
    }

    /// The value of a one-element tensor (a step counter, a tensor learning rate) as a Double.
    ///
    /// - Throws: ``OptimizerError`` if the tensor does not hold exactly one element.
    func singleValue() throws -> Double {
        guard numel == 1 else {
            throw OptimizerError(.invalidValue, "expected a one-element tensor, found shape \(shape)")
        }
        let dtype = self.dtype
        return try storage.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else {
                throw OptimizerError(.malformedStateDict, "one-element tensor without storage")
            }
            return try Tensor.readElement(base, storageOffset, dtype)
        }
    }

    /// Adds one to a one-element tensor in place, in its own dtype, as `step_t += 1` does.
    ///
    /// - Returns: The new value as a Double.
    /// - Throws: ``OptimizerError`` if the tensor does not hold exactly one element or its dtype
    ///   cannot count.
    @discardableResult
    func incrementSingleValue() throws -> Double {
        guard numel == 1 else {
            throw OptimizerError(.invalidValue, "a step counter must hold one element, found shape \(shape)")
        }
        let dtype = self.dtype
        let index = storageOffset
        return try storage.withUnsafeMutableBytes { bytes in
            guard let base = bytes.baseAddress else {
                throw OptimizerError(.malformedStateDict, "step counter without storage")
            }
            switch dtype {
            case .float64, .float32, .float16, .bfloat16:
                // Float arithmetic for the 32-bit-or-narrower types, as ATen computes `add` on them.
                let current = try Tensor.readElement(base, index, dtype)
                let next = dtype == .float64 ? current + 1 : Double(Float(current) + 1)
                try Tensor.writeFloatingElement(base, index, dtype, next)
                return try Tensor.readElement(base, index, dtype)
            case .int64:
                let current = base.loadUnaligned(fromByteOffset: index * 8, as: Int64.self)
                let (next, overflow) = current.addingReportingOverflow(1)
                guard !overflow else { throw OptimizerError(.invalidValue, "step counter overflows int64") }
                base.storeBytes(of: next, toByteOffset: index * 8, as: Int64.self)
                return Double(next)
            case .int32:
                let current = base.loadUnaligned(fromByteOffset: index * 4, as: Int32.self)
                let (next, overflow) = current.addingReportingOverflow(1)
                guard !overflow else { throw OptimizerError(.invalidValue, "step counter overflows int32") }
                base.storeBytes(of: next, toByteOffset: index * 4, as: Int32.self)
                return Double(next)
            default:
                throw OptimizerError(.unsupported, "a step counter of dtype \(dtype) is not supported")
            }
        }
    }
}

extension Tensor {
    /// Sets every element this tensor views to zero, in place (`zero_()`).
    ///
    /// - Throws: A failed storage verification.
    func zeroElementsInPlace() throws {
        let item = dtype.itemSize
        let offset = storageOffset
        guard numel > 0 else { return }
        try storage.withUnsafeMutableBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            forEachElementOffset { element in
                (base + (offset + element) * item).initializeMemory(as: UInt8.self, repeating: 0, count: item)
            }
        }
    }
}
