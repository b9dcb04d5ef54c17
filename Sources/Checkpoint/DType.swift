/// The element type of a tensor, named as PyTorch names it (`torch.float32` is `.float32`).
///
/// Every dtype here can be stored and loaded. Arithmetic is offered elsewhere only for the
/// floating and complex types the optimizers use.
public enum DType: String, CaseIterable, Hashable, Sendable, Codable, CustomStringConvertible, BitwiseCopyable {
    case float64, float32, float16, bfloat16
    case complex64, complex128
    case int64, int32, int16, int8, uint8, bool
    case uint16, uint32, uint64
    case float8_e4m3fn, float8_e5m2

    /// Bytes per element.
    public var itemSize: Int {
        switch self {
        case .float64, .int64, .uint64, .complex64: return 8
        case .complex128: return 16
        case .float32, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool, .float8_e4m3fn, .float8_e5m2: return 1
        }
    }

    /// The name after `torch.` (`"float32"`), which is also the pickle GLOBAL name of the dtype.
    public var torchName: String { rawValue }

    /// `torch.float32`.
    public var description: String { "torch.\(rawValue)" }

    /// True for real floating-point types (float8 included), as `torch.is_floating_point`.
    public var isFloatingPoint: Bool {
        switch self {
        case .float64, .float32, .float16, .bfloat16, .float8_e4m3fn, .float8_e5m2: return true
        default: return false
        }
    }

    /// True for `complex64` and `complex128`.
    public var isComplex: Bool { self == .complex64 || self == .complex128 }

    /// The legacy typed-storage class torch.save names in a tensor's persistent id
    /// (`FloatStorage`), or nil for the dtypes torch saves through `_rebuild_tensor_v3` with an
    /// `UntypedStorage` (unsigned 16/32/64-bit and float8).
    public var legacyStorageName: String? {
        switch self {
        case .float64: return "DoubleStorage"
        case .float32: return "FloatStorage"
        case .float16: return "HalfStorage"
        case .bfloat16: return "BFloat16Storage"
        case .complex64: return "ComplexFloatStorage"
        case .complex128: return "ComplexDoubleStorage"
        case .int64: return "LongStorage"
        case .int32: return "IntStorage"
        case .int16: return "ShortStorage"
        case .int8: return "CharStorage"
        case .uint8: return "ByteStorage"
        case .bool: return "BoolStorage"
        case .uint16, .uint32, .uint64, .float8_e4m3fn, .float8_e5m2: return nil
        }
    }

    /// The dtype of a legacy storage class name (`"FloatStorage"` → `.float32`).
    public init?(legacyStorageName name: String) {
        guard let match = DType.allCases.first(where: { $0.legacyStorageName == name }) else { return nil }
        self = match
    }

    /// The safetensors dtype tag (`"F32"`, `"BF16"`, `"F8_E4M3"`), or nil where the format has none.
    public var safetensorsName: String? {
        switch self {
        case .float64: return "F64"
        case .float32: return "F32"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .complex64: return "C64"
        case .complex128: return nil
        case .int64: return "I64"
        case .int32: return "I32"
        case .int16: return "I16"
        case .int8: return "I8"
        case .uint8: return "U8"
        case .bool: return "BOOL"
        case .uint16: return "U16"
        case .uint32: return "U32"
        case .uint64: return "U64"
        case .float8_e4m3fn: return "F8_E4M3"
        case .float8_e5m2: return "F8_E5M2"
        }
    }

    /// The dtype of a safetensors tag.
    public init?(safetensorsName name: String) {
        guard let match = DType.allCases.first(where: { $0.safetensorsName == name }) else { return nil }
        self = match
    }

    /// The dtype of a torch name (`"float32"`), accepting torch's aliases (`"float"`, `"half"`, `"long"`, ...).
    public init?(torchName name: String) {
        if let exact = DType(rawValue: name) { self = exact; return }
        let aliases: [String: DType] = [
            "float": .float32, "double": .float64, "half": .float16, "cfloat": .complex64,
            "cdouble": .complex128, "long": .int64, "int": .int32, "short": .int16,
        ]
        guard let alias = aliases[name] else { return nil }
        self = alias
    }
}
