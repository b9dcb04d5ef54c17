/// What REDUCE, NEWOBJ and BUILD do with each allow-listed global: the effect torch's loader
/// would have, computed without running any Python.
extension PickleMachine {
    /// REDUCE: `callable(*arguments)`.
    mutating func call(_ callable: PickleObject, arguments: [PickleObject]) throws -> PickleObject {
        guard case .global(let function) = callable else {
            if let object = node(callable), object.kind == .object {
                throw failure(
                    .unsupported, "calling an object the pickle built (not a global) is not supported",
                    found: typeName(callable))
            }
            throw failure(
                .malformedPickle, "REDUCE on a non-callable", expected: "an allowed global", found: typeName(callable))
        }
        switch function {
        case .foreign(let module, let name):
            return newObject(module: module, name: name, construction: .reduce, arguments: arguments)
        case .orderedDict:
            let dict = newNode(.dict(ordered: true))
            switch arguments.count {
            case 0: break
            // Python 2 pickled an OrderedDict as `OrderedDict([[key, value], ...])` (lpips' weights).
            case 1: try setItems(try orderedDictPairs(arguments[0]), into: dict)
            default: throw argumentCount(function, expected: "0 or 1", found: arguments.count)
            }
            return dict
        case .builtinSet:
            switch arguments.count {
            case 0: return newNode(.set)
            case 1:
                guard let source = node(arguments[0]), [.list, .tuple, .set].contains(source.kind) else {
                    throw failure(.malformedPickle, "set() needs a list or tuple", found: typeName(arguments[0]))
                }
                return newNode(.set, elements: source.elements)
            default:
                throw argumentCount(function, expected: "0 or 1", found: arguments.count)
            }
        case .builtinComplex:
            return .value(try complexValue(arguments))
        case .builtinBytearray:
            return .value(.bytearray(try bytearrayValue(arguments)))
        case .builtinBytes:
            guard arguments.isEmpty else {
                throw failure(.unsupported, "bytes() with arguments (only the empty form pickle writes is read)")
            }
            return .value(.bytes([]))
        case .codecsEncode:
            return .value(.bytes(try codecsEncode(arguments)))
        case .torchSize:
            switch arguments.count {
            case 0: return .value(.size([]))
            case 1: return .value(.size(try integers(arguments[0], role: "torch.Size").map(Int64.init)))
            default: throw argumentCount(function, expected: "1", found: arguments.count)
            }
        case .torchDevice:
            return .value(.device(try deviceName(arguments)))
        case .parameterClass:
            return .value(.tensor(try parameter(arguments)))
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3, .rebuildParameter, .rebuildParameterWithState:
            return .value(.tensor(try rebuild(function, arguments)))
        case .rebuildFromTypeV2:
            return .value(.tensor(try rebuildFromType(arguments)))
        case .torchTensor, .dtype, .storageType:
            throw failure(
                .malformedPickle, "REDUCE on a non-callable", expected: "a function", found: function.qualifiedName)
        }
    }

    /// NEWOBJ: `cls.__new__(cls, *arguments)`, which for the builtin containers ignores the
    /// arguments (their contents come from `__init__`, which NEWOBJ does not run).
    mutating func construct(
        _ cls: PickleObject, arguments: [PickleObject], keywords: PickleObject? = nil
    ) throws -> PickleObject {
        guard case .global(let type) = cls else {
            throw failure(.malformedPickle, "NEWOBJ on a non-class", expected: "an allowed class", found: typeName(cls))
        }
        switch type {
        case .foreign(let module, let name):
            return newObject(module: module, name: name, construction: .newObject, arguments: arguments, keywords: keywords)
        case .orderedDict: return newNode(.dict(ordered: true))
        case .builtinSet: return newNode(.set)
        case .builtinBytearray: return .value(.bytearray([]))
        case .builtinComplex, .torchSize, .torchDevice, .parameterClass: return try call(cls, arguments: arguments)
        default:
            throw failure(.unsupported, "NEWOBJ of \(type.qualifiedName) is not supported", found: type.qualifiedName)
        }
    }

    /// A placeholder for `module.name` called or instantiated with `arguments`.
    private mutating func newObject(
        module: String, name: String, construction: PickledObject.Construction, arguments: [PickleObject],
        keywords: PickleObject? = nil
    ) -> PickleObject {
        let argumentsIndex = newNodeIndex(.tuple, elements: arguments)
        let object = newNodeIndex(.object)
        nodes[object].object = PickleObjectParts(
            module: module, name: name, construction: construction, arguments: argumentsIndex, keywords: keywords)
        return .node(object)
    }

    /// The items of `OrderedDict(pairs)`'s argument, flattened key, value, key, value: a list or
    /// tuple of two-element lists or tuples.
    private func orderedDictPairs(_ argument: PickleObject) throws -> [PickleObject] {
        guard let source = node(argument), [.list, .tuple].contains(source.kind) else {
            throw failure(.malformedPickle, "OrderedDict() needs a list of pairs", found: typeName(argument))
        }
        var items: [PickleObject] = []
        items.reserveCapacity(source.elements.count * 2)
        for element in source.elements {
            guard let pair = node(element), [.list, .tuple].contains(pair.kind), pair.elements.count == 2 else {
                throw failure(
                    .malformedPickle, "OrderedDict() needs a list of pairs", expected: "a [key, value] pair",
                    found: typeName(element))
            }
            items += pair.elements
        }
        return items
    }

    /// BUILD: an OrderedDict's attributes (`_metadata`), or the state of an object outside the
    /// allow-list (kept, not applied).
    func build(_ instance: PickleObject, state: PickleObject) throws {
        if let target = node(instance), target.kind == .object {
            guard target.object?.state == nil else {
                throw failure(.unsupported, "a second BUILD on one object is not supported", found: typeName(instance))
            }
            target.object?.state = state
            return
        }
        if let target = node(instance), target.kind == .dict(ordered: true) {
            guard let source = node(state), source.kind == .dict(ordered: false) || source.kind == .dict(ordered: true),
                source.invalidKeyType == nil
            else {
                throw failure(
                    .malformedPickle, "an OrderedDict's state must be a dict with str keys", found: typeName(state))
            }
            for (key, value) in source.items {
                guard case .string(let name) = key else {
                    throw failure(.malformedPickle, "attribute names must be str", found: "int \(key)")
                }
                target.attributes[name] = value
            }
            return
        }
        if case .value(.tensor) = instance {
            throw failure(.unsupported, "legacy BUILD on a tensor is not supported")
        }
        throw failure(
            .malformedPickle, "BUILD on a \(typeName(instance))", expected: "an OrderedDict", found: typeName(instance))
    }

    // MARK: Arguments

    func argumentCount(_ function: PickleGlobal, expected: String, found: Int) -> CheckpointError {
        failure(
            .malformedPickle, "wrong number of arguments to \(function.qualifiedName)", expected: expected,
            found: "\(found)")
    }

    private func integer(_ object: PickleObject, role: String) throws -> Int {
        guard case .int(let value) = object else {
            throw failure(.malformedPickle, "\(role) must be an int", found: describe(object))
        }
        return Int(value)
    }

    private func boolean(_ object: PickleObject, role: String) throws -> Bool {
        guard case .bool(let value) = object else {
            throw failure(.malformedPickle, "\(role) must be a bool", found: describe(object))
        }
        return value
    }

    private func string(_ object: PickleObject, role: String) throws -> String {
        guard case .string(let value) = object else {
            throw failure(.malformedPickle, "\(role) must be a str", found: describe(object))
        }
        return value
    }

    /// A tuple or list of ints, or a torch.Size.
    private func integers(_ object: PickleObject, role: String) throws -> [Int] {
        if case .value(.size(let dims)) = object { return dims.map { Int($0) } }
        guard let sequence = node(object), sequence.kind == .tuple || sequence.kind == .list else {
            throw failure(.malformedPickle, "\(role) must be a tuple of ints", found: typeName(object))
        }
        return try sequence.elements.map { try integer($0, role: "every element of \(role)") }
    }

    private func complexValue(_ arguments: [PickleObject]) throws -> StateValue {
        guard arguments.count <= 2 else {
            throw argumentCount(.builtinComplex, expected: "at most 2", found: arguments.count)
        }
        let parts = try arguments.map { argument -> Double in
            switch argument {
            case .float(let value): return value
            case .int(let value): return Double(value)
            case .bool(let value): return value ? 1 : 0
            default: throw failure(.malformedPickle, "complex() parts must be numbers", found: describe(argument))
            }
        }
        return .complex(real: parts.first ?? 0, imaginary: parts.count > 1 ? parts[1] : 0)
    }

    private func bytearrayValue(_ arguments: [PickleObject]) throws -> [UInt8] {
        switch arguments.count {
        case 0:
            return []
        case 1:
            guard case .value(.bytes(let raw)) = arguments[0] else {
                throw failure(.malformedPickle, "bytearray() needs bytes", found: describe(arguments[0]))
            }
            return raw
        case 2:
            return try encode(
                try string(arguments[0], role: "bytearray()'s text"),
                encoding: try string(arguments[1], role: "bytearray()'s encoding"))
        default:
            throw argumentCount(.builtinBytearray, expected: "0 to 2", found: arguments.count)
        }
    }

    private func codecsEncode(_ arguments: [PickleObject]) throws -> [UInt8] {
        guard (1...3).contains(arguments.count) else {
            throw argumentCount(.codecsEncode, expected: "1 to 3", found: arguments.count)
        }
        let text = try string(arguments[0], role: "encode()'s text")
        let encoding = arguments.count > 1 ? try string(arguments[1], role: "encode()'s encoding") : "utf-8"
        if arguments.count > 2, try string(arguments[2], role: "encode()'s errors") != "strict" {
            throw failure(.unsupported, "encode() error handlers other than 'strict' are not supported")
        }
        return try encode(text, encoding: encoding)
    }

    /// `str.encode(encoding)` for the codecs pickles use (latin-1 for bytes, per Python's pickler).
    private func encode(_ text: String, encoding: String) throws -> [UInt8] {
        let normalized = String(encoding.lowercased().map { $0 == "-" || $0 == " " ? "_" : $0 })
        let limit: UInt32
        switch normalized {
        case "latin1", "latin_1", "iso8859_1", "iso_8859_1", "l1", "8859", "cp819", "latin": limit = 0xFF
        case "ascii", "us_ascii", "646": limit = 0x7F
        case "utf8", "utf_8", "u8", "utf": return Array(text.utf8)
        default: throw failure(.unsupported, "encoding '\(encoding)' is not supported", found: encoding)
        }
        var raw: [UInt8] = []
        raw.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            guard scalar.value <= limit else {
                throw failure(
                    .malformedPickle, "character U+\(String(scalar.value, radix: 16)) cannot be encoded as \(encoding)")
            }
            raw.append(UInt8(scalar.value))
        }
        return raw
    }

    private func deviceName(_ arguments: [PickleObject]) throws -> String {
        guard (1...2).contains(arguments.count) else {
            throw argumentCount(.torchDevice, expected: "1 or 2", found: arguments.count)
        }
        let type = try string(arguments[0], role: "torch.device's type")
        guard !type.isEmpty else { throw failure(.malformedPickle, "empty device type") }
        if arguments.count == 2, case .none = arguments[1] { return type }
        guard arguments.count == 2 else { return type }
        let index = try integer(arguments[1], role: "torch.device's index")
        guard index >= 0, !type.contains(":") else {
            throw failure(.malformedPickle, "bad device index", found: "\(type), \(index)")
        }
        return "\(type):\(index)"
    }

    // MARK: Tensors

    /// The `_rebuild_tensor*` and `_rebuild_parameter*` functions of `torch._utils`.
    private func rebuild(_ function: PickleGlobal, _ arguments: [PickleObject]) throws -> Tensor {
        switch function {
        case .rebuildTensor:
            guard arguments.count == 4 else { throw argumentCount(function, expected: "4", found: arguments.count) }
            return try view(arguments, dtype: nil, requiresGrad: false)
        case .rebuildTensorV2:
            guard arguments.count == 6 || arguments.count == 7 else {
                throw argumentCount(function, expected: "6 or 7", found: arguments.count)
            }
            try checkHooks(arguments[5])
            if arguments.count == 7 { try checkMetadata(arguments[6]) }
            return try view(arguments, dtype: nil, requiresGrad: try boolean(arguments[4], role: "requires_grad"))
        case .rebuildTensorV3:
            guard arguments.count == 7 || arguments.count == 8 else {
                throw argumentCount(function, expected: "7 or 8", found: arguments.count)
            }
            try checkHooks(arguments[5])
            guard case .global(.dtype(let dtype)) = arguments[6] else {
                throw failure(
                    .malformedPickle, "_rebuild_tensor_v3's dtype must be a torch dtype", found: typeName(arguments[6]))
            }
            if arguments.count == 8 { try checkMetadata(arguments[7]) }
            return try view(arguments, dtype: dtype, requiresGrad: try boolean(arguments[4], role: "requires_grad"))
        case .rebuildParameter, .rebuildParameterWithState:
            let expectedCount = function == .rebuildParameter ? 3 : 4
            guard arguments.count == expectedCount else {
                throw argumentCount(function, expected: "\(expectedCount)", found: arguments.count)
            }
            try checkHooks(arguments[2])
            if expectedCount == 4 { try checkNoState(arguments[3], of: "a Parameter") }
            guard case .value(.tensor(var tensor)) = arguments[0] else {
                throw failure(.malformedPickle, "a Parameter's data must be a tensor", found: typeName(arguments[0]))
            }
            tensor.requiresGrad = try boolean(arguments[1], role: "requires_grad")
            tensor.isParameter = true
            try checkGradient(tensor)
            return tensor
        default:
            throw failure(.malformedPickle, "\(function.qualifiedName) does not rebuild a tensor")
        }
    }

    /// `storage, storage_offset, size, stride` → a bounds-checked view.
    private func view(_ arguments: [PickleObject], dtype: DType?, requiresGrad: Bool) throws -> Tensor {
        guard case .storage(let source) = arguments[0] else {
            throw failure(
                .malformedPickle, "a tensor's storage must come from a persistent id", found: typeName(arguments[0]))
        }
        let offset = try integer(arguments[1], role: "storage_offset")
        let shape = try integers(arguments[2], role: "size")
        let strides = try integers(arguments[3], role: "stride")
        guard shape.count == strides.count else {
            throw failure(
                .malformedPickle, "size and stride differ in length", expected: "\(shape.count) strides",
                found: "\(strides.count)")
        }
        guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw failure(
                .malformedPickle, "negative size, stride or storage offset",
                found: "size \(shape), stride \(strides), offset \(offset)")
        }
        let elementType = dtype ?? source.dtype ?? .uint8
        var storageOffset = offset
        if let view = source.view {
            // A tensor on a pre-1.6 storage view: its offset counts from the view's start, and it
            // must stay inside the view, not only inside the root storage.
            let needed: Int
            do {
                needed = try Tensor.requiredStorageBytes(
                    shape: shape, strides: strides, storageOffset: offset, itemSize: elementType.itemSize)
            } catch let error as CheckpointError {
                throw located(error)
            }
            guard needed <= view.byteCount, view.byteOffset % elementType.itemSize == 0 else {
                throw failure(
                    .outOfBounds, "tensor reaches past its storage view", expected: "at most \(view.byteCount) bytes",
                    found: "\(needed) bytes needed")
            }
            storageOffset += view.byteOffset / elementType.itemSize
        }
        let tensor: Tensor
        do {
            tensor = try Tensor(
                storage: source.storage, dtype: elementType, shape: shape, strides: strides,
                storageOffset: storageOffset, requiresGrad: requiresGrad)
        } catch let error as CheckpointError {
            throw located(error)
        }
        try checkGradient(tensor)
        return tensor
    }

    /// torch refuses `requires_grad` on integer and bool tensors, so such a pickle does not load
    /// there either.
    private func checkGradient(_ tensor: Tensor) throws {
        guard !tensor.requiresGrad || tensor.dtype.isFloatingPoint || tensor.dtype.isComplex else {
            throw failure(
                .malformedPickle, "only floating-point and complex tensors can require gradients",
                found: "requires_grad on a \(tensor.dtype) tensor")
        }
    }

    private func checkHooks(_ hooks: PickleObject) throws {
        if case .none = hooks { return }
        guard let dict = node(hooks), case .dict = dict.kind else {
            throw failure(.malformedPickle, "backward_hooks must be an OrderedDict", found: typeName(hooks))
        }
        guard dict.items.isEmpty, dict.invalidKeyType == nil else {
            throw failure(
                .unsupported, "tensors with backward hooks are not supported", found: "\(dict.items.count) hooks")
        }
    }

    /// The conj/neg bits torch saves in a tensor's metadata; a set bit cannot be represented.
    private func checkMetadata(_ metadata: PickleObject) throws {
        if case .none = metadata { return }
        guard let dict = node(metadata), case .dict = dict.kind, dict.invalidKeyType == nil else {
            throw failure(.malformedPickle, "tensor metadata must be a dict", found: typeName(metadata))
        }
        for (key, value) in dict.items {
            guard case .bool(false) = value else {
                throw failure(.unsupported, "tensor metadata '\(key)' (a conjugate or negative view) is not supported")
            }
        }
    }

    /// Python attributes on a tensor (`__dict__`, slots) cannot be represented; only empty state is.
    private func checkNoState(_ state: PickleObject, of owner: String) throws {
        func isEmpty(_ object: PickleObject) -> Bool {
            if case .none = object { return true }
            if let dict = node(object), case .dict = dict.kind {
                return dict.items.isEmpty && dict.invalidKeyType == nil
            }
            return false
        }
        if isEmpty(state) { return }
        if let tuple = node(state), tuple.kind == .tuple, tuple.elements.count == 2, tuple.elements.allSatisfy(isEmpty)
        {
            return
        }
        throw failure(.unsupported, "\(owner) with Python attributes is not supported", found: typeName(state))
    }

    private func parameter(_ arguments: [PickleObject]) throws -> Tensor {
        guard (1...2).contains(arguments.count) else {
            throw argumentCount(.parameterClass, expected: "1 or 2", found: arguments.count)
        }
        guard case .value(.tensor(var tensor)) = arguments[0] else {
            throw failure(.malformedPickle, "a Parameter's data must be a tensor", found: typeName(arguments[0]))
        }
        tensor.requiresGrad = arguments.count == 2 ? try boolean(arguments[1], role: "requires_grad") : true
        tensor.isParameter = true
        try checkGradient(tensor)
        return tensor
    }

    /// `_rebuild_from_type_v2(func, new_type, args, state)`, accepted only when it wraps a plain
    /// Tensor or Parameter with no Python attributes.
    private func rebuildFromType(_ arguments: [PickleObject]) throws -> Tensor {
        guard arguments.count == 4 else {
            throw argumentCount(.rebuildFromTypeV2, expected: "4", found: arguments.count)
        }
        guard case .global(let function) = arguments[0], function.isTensorRebuild else {
            throw failure(
                .malformedPickle, "_rebuild_from_type_v2 must wrap a tensor rebuild function",
                found: typeName(arguments[0]))
        }
        let isParameter: Bool
        switch arguments[1] {
        case .global(.torchTensor): isParameter = false
        case .global(.parameterClass): isParameter = true
        default:
            throw failure(
                .unsupported, "tensor subclass \(typeName(arguments[1])) is not supported",
                expected: "torch.Tensor or torch.nn.parameter.Parameter", found: typeName(arguments[1]))
        }
        try checkNoState(arguments[3], of: "a tensor")
        var tensor = try rebuild(function, try tupleElements(arguments[2], role: "_rebuild_from_type_v2's args"))
        tensor.isParameter = isParameter
        return tensor
    }
}
