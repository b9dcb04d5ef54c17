extension DType {
    /// numpy's type string for the dtype (`dtype.str`: `'<f4'`, `'|b1'`), or nil where numpy has
    /// no such type (bfloat16 and the float8 types).
    public var numpyDescriptor: String? {
        guard let code = numpyTypeCode else { return nil }
        return (itemSize == 1 ? "|" : "<") + code
    }

    /// The kind and size numpy pickles a dtype as (`'f4'`), nil where numpy has no such type.
    var numpyTypeCode: String? {
        switch self {
        case .float64: return "f8"
        case .float32: return "f4"
        case .float16: return "f2"
        case .complex64: return "c8"
        case .complex128: return "c16"
        case .int64: return "i8"
        case .int32: return "i4"
        case .int16: return "i2"
        case .int8: return "i1"
        case .uint8: return "u1"
        case .bool: return "b1"
        case .uint16: return "u2"
        case .uint32: return "u4"
        case .uint64: return "u8"
        case .bfloat16, .float8_e4m3fn, .float8_e5m2: return nil
        }
    }

    /// The dtype numpy's kind and size (`'f4'`) names, or nil for one with no ``DType``.
    init?(numpyTypeCode code: String) {
        guard let match = DType.allCases.first(where: { $0.numpyTypeCode == code }) else { return nil }
        self = match
    }

    /// The class of numpy's dtype object (`Float32DType`, in `numpy.dtypes`), which
    /// `torch.load(weights_only=True)` wants allow-listed to rebuild one.
    var numpyDTypeClass: String? {
        switch self {
        case .float64: return "Float64DType"
        case .float32: return "Float32DType"
        case .float16: return "Float16DType"
        case .complex64: return "Complex64DType"
        case .complex128: return "Complex128DType"
        case .int64: return "Int64DType"
        case .int32: return "Int32DType"
        case .int16: return "Int16DType"
        case .int8: return "Int8DType"
        case .uint8: return "UInt8DType"
        case .bool: return "BoolDType"
        case .uint16: return "UInt16DType"
        case .uint32: return "UInt32DType"
        case .uint64: return "UInt64DType"
        case .bfloat16, .float8_e4m3fn, .float8_e5m2: return nil
        }
    }

    /// numpy's name for the scalar type (`float32`, `bool`), as `type(numpy.float32(0)).__name__`.
    var numpyScalarName: String? {
        numpyTypeCode == nil ? nil : self == .bool ? "bool" : rawValue
    }
}
