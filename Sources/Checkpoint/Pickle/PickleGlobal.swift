/// A global (class or function) a pickle names: the part of `torch.load(weights_only=True)`'s
/// allow-list that a ``StateValue`` can represent, each with its meaning, or any other global as a
/// ``foreign(module:name:)`` placeholder.
enum PickleGlobal: Equatable {
    case orderedDict
    case builtinSet
    case builtinComplex
    case builtinBytearray
    /// `builtins.bytes`, which Python's protocol-2 pickler emits for `b""` (torch's own
    /// weights_only loader rejects it; accepting it executes nothing).
    case builtinBytes
    case codecsEncode
    case torchSize
    case torchDevice
    case torchTensor
    case parameterClass
    case dtype(DType)
    /// A storage class: the legacy typed ones carry their dtype, `UntypedStorage` has none.
    case storageType(DType?)
    case rebuildTensor
    case rebuildTensorV2
    case rebuildTensorV3
    case rebuildParameter
    case rebuildParameterWithState
    case rebuildFromTypeV2
    /// Any other global, as the pickle spells it: a placeholder, never imported (see ``PickledObject``).
    case foreign(module: String, name: String)

    /// `module.name` as torch spells it in its allow-list.
    var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .builtinSet: return "builtins.set"
        case .builtinComplex: return "builtins.complex"
        case .builtinBytearray: return "builtins.bytearray"
        case .builtinBytes: return "builtins.bytes"
        case .codecsEncode: return "_codecs.encode"
        case .torchSize: return "torch.Size"
        case .torchDevice: return "torch.device"
        case .torchTensor: return "torch.Tensor"
        case .parameterClass: return "torch.nn.parameter.Parameter"
        case .dtype(let dtype): return "torch.\(dtype.torchName)"
        case .storageType(let dtype?): return "torch.\(dtype.legacyStorageName ?? "UntypedStorage")"
        case .storageType(nil): return "torch.storage.UntypedStorage"
        case .rebuildTensor: return "torch._utils._rebuild_tensor"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildTensorV3: return "torch._utils._rebuild_tensor_v3"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: return "torch._utils._rebuild_parameter_with_state"
        case .rebuildFromTypeV2: return "torch._tensor._rebuild_from_type_v2"
        case .foreign(let module, let name): return "\(module).\(name)"
        }
    }

    /// True for the tensor rebuild functions `_rebuild_from_type_v2` may delegate to.
    var isTensorRebuild: Bool {
        switch self {
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3, .rebuildParameter, .rebuildParameterWithState:
            return true
        default:
            return false
        }
    }

    /// torch dtypes that exist but have no ``DType`` here; naming one is an unknown-dtype error
    /// rather than a forbidden global, because torch itself would allow it.
    private static let unrepresentableDTypes: Set<String> = [
        "complex32", "chalf", "bcomplex32", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
        "float4_e2m1fn_x2", "bits1x8", "bits2x4", "bits4x2", "bits8", "bits16",
        "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
        "int1", "int2", "int3", "int4", "int5", "int6", "int7",
        "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
    ]

    /// Looks up a global by module and name, applying the renames torch's loader applies
    /// (`__builtin__` → `builtins` for Python 2 era pickles, `torch.tensor` → `torch._tensor`).
    ///
    /// - Returns: The global, or nil when it is not on the allow-list.
    /// - Throws: ``CheckpointError`` `.unknownDType` for a torch dtype or storage class with no
    ///   ``DType`` (quantized, sub-byte, complex32).
    static func resolve(module rawModule: String, name: String) throws -> PickleGlobal? {
        let module: String
        switch rawModule {
        case "__builtin__": module = "builtins"
        case "torch.tensor": module = "torch._tensor"
        default: module = rawModule
        }
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("builtins", "set"): return .builtinSet
        case ("builtins", "complex"): return .builtinComplex
        case ("builtins", "bytearray"): return .builtinBytearray
        case ("builtins", "bytes"): return .builtinBytes
        case ("_codecs", "encode"): return .codecsEncode
        case ("torch", "Size"): return .torchSize
        case ("torch", "device"): return .torchDevice
        case ("torch", "Tensor"), ("torch._tensor", "Tensor"): return .torchTensor
        case ("torch.nn.parameter", "Parameter"): return .parameterClass
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameterWithState
        case ("torch._tensor", "_rebuild_from_type_v2"): return .rebuildFromTypeV2
        case ("torch.storage", "UntypedStorage"), ("torch", "UntypedStorage"): return .storageType(nil)
        default: break
        }
        if module == "torch" || module == "torch.cuda", name.hasSuffix("Storage") {
            if let dtype = DType(legacyStorageName: name) { return .storageType(dtype) }
            if name.hasPrefix("Q") {
                throw CheckpointError(
                    .unknownDType, "quantized storage \(module).\(name) is not supported", found: "\(module).\(name)")
            }
            return nil
        }
        if module == "torch" {
            if let dtype = DType(torchName: name) { return .dtype(dtype) }
            if unrepresentableDTypes.contains(name) {
                throw CheckpointError(.unknownDType, "dtype torch.\(name) is not supported", found: "torch.\(name)")
            }
        }
        return nil
    }
}

extension PickledObject {
    /// Globals on `torch.load(weights_only=True)`'s default allow-list that have no meaning here,
    /// so a pickle naming them gets a placeholder although torch reads it as is.
    private static let torchAllowedOthers: Set<String> = [
        "collections.Counter", "torch.serialization._get_layout", "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_wrapper_subclass", "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor", "torch._utils._rebuild_nested_tensor",
        "torch.per_tensor_affine", "torch.per_channel_affine", "torch.per_tensor_symmetric",
        "torch.per_channel_symmetric", "torch.per_channel_affine_float_qparams",
    ]

    /// True when `torch.load(weights_only=True)` accepts this global without `safe_globals`: one
    /// this library reads as a value (named bare, as in `defaultdict(OrderedDict)`), or one torch
    /// allows that has no value here (`collections.Counter`, quantized tensors).
    package var isOnTorchAllowList: Bool {
        if (try? PickleGlobal.resolve(module: module, name: name)) != nil { return true }
        if module == "torch", name.hasSuffix("Tensor") { return true }
        return Self.torchAllowedOthers.contains(qualifiedName)
    }
}
