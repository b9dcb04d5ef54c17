import Foundation
import OrderedCollections

/// The JSON form of a state tree, shared by the ckpt manifest (`root`) and the safetensors
/// `ckpt.tree` record; docs/FORMAT.md specifies it. Each format says only how a tensor node
/// refers to its data.
///
/// Every node is an object whose `type` is the Python type name (a record's and a numpy value's
/// qualified: `argparse.Namespace`, `numpy.ndarray`). Dict items are `[key, node]`
/// pairs (a key is a JSON string or integer), so order and key types survive; finite floats are
/// shortest round-trip decimals, and NaN and infinities (which JSON cannot write) are their bit
/// pattern in `bits`, so even a NaN's payload survives.
enum StateTreeJSON {
    /// Tree levels allowed, so that writing and reading stay inside ``OrderedJSON/maximumDepth``
    /// (each tree level is up to three JSON levels: node, items array, key/value pair).
    static let maximumDepth = (OrderedJSON.maximumDepth - 4) / 3

    // MARK: Encoding

    /// Encodes a tree.
    ///
    /// - Parameters:
    ///   - value: The tree.
    ///   - objects: Describe each ``PickledObject`` as an `object` node (the ckpt manifest's root);
    ///     false refuses them (safetensors, manifest metadata).
    ///   - tensor: The fields that locate a tensor's data (the caller's format), given its key path;
    ///     `type` and `requires_grad` are added here.
    /// - Throws: ``CheckpointError`` `.unsupported` for a tree deeper than ``maximumDepth``, or for
    ///   an object when `objects` is false; what `tensor` throws.
    static func encode(
        _ value: StateValue, objects: Bool = false,
        tensor: (Tensor, [StateKey]) throws -> [(key: String, value: OrderedJSON)]
    ) throws -> OrderedJSON {
        var path: [StateKey] = []
        return try encode(value, path: &path, objects: objects, tensor: tensor)
    }

    private static func node(_ type: String, _ fields: [(key: String, value: OrderedJSON)] = []) -> OrderedJSON {
        .object([("type", .string(type))] + fields)
    }

    private static func keyJSON(_ key: StateKey) -> OrderedJSON {
        switch key {
        case .string(let text): return .string(text)
        case .int(let value): return .integer(value)
        }
    }

    private static func floatFields(_ number: Double) -> [(key: String, value: OrderedJSON)] {
        if number.isFinite { return [("value", .number("\(number)"))] }
        return [("bits", .string("0x" + String(number.bitPattern, radix: 16)))]
    }

    private static func encode(
        _ value: StateValue, path: inout [StateKey], objects: Bool,
        tensor: (Tensor, [StateKey]) throws -> [(key: String, value: OrderedJSON)]
    ) throws -> OrderedJSON {
        guard path.count < maximumDepth else {
            throw CheckpointError(
                .unsupported, "tree too deep to describe in JSON", path: path.pathString,
                expected: "at most \(maximumDepth) levels")
        }
        func child(_ key: StateKey, _ item: StateValue) throws -> OrderedJSON {
            try child([key], item)
        }
        func child(_ keys: [StateKey], _ item: StateValue) throws -> OrderedJSON {
            path += keys
            defer { path.removeLast(keys.count) }
            return try encode(item, path: &path, objects: objects, tensor: tensor)
        }
        switch value {
        case .dict(let dict):
            var fields: [(key: String, value: OrderedJSON)] = [
                ("items", .array(try dict.items.map { key, item in .array([keyJSON(key), try child(key, item)]) })),
            ]
            if dict.isOrderedDict || !dict.attributes.isEmpty {
                fields.append(("attributes", .array(try dict.attributes.map { name, item in
                    .array([.string(name), try child(.string(name), item)])
                })))
            }
            if let factory = dict.defaultFactory { fields.append(("default_factory", .string(factory))) }
            return node(value.pythonTypeName, fields)
        case .record(let record):
            return node(record.qualifiedName, [("attributes", .array(try record.attributes.map { name, item in
                .array([.string(name), try child(.string(name), item)])
            }))])
        case .list(let elements), .tuple(let elements), .set(let elements):
            let items = try elements.enumerated().map { try child(.int(Int64($0)), $1) }
            return node(value.pythonTypeName, [("items", .array(items))])
        case .tensor(let t):
            let numpy: [(key: String, value: OrderedJSON)] = t.numpyOrigin.map { [("numpy_module", .string($0.module))] } ?? []
            return node(value.pythonTypeName, try tensor(t, path) + [("requires_grad", .bool(t.requiresGrad))] + numpy)
        case .string(let text): return node("str", [("value", .string(text))])
        case .int(let integer): return node("int", [("value", .integer(integer))])
        case .float(let number): return node("float", floatFields(number))
        case .bool(let flag): return node("bool", [("value", .bool(flag))])
        case .none: return node("NoneType")
        case .bytes(let bytes), .bytearray(let bytes):
            return node(value.pythonTypeName, [("base64", .string(Data(bytes).base64EncodedString()))])
        case .size(let dims): return node("Size", [("value", .array(dims.map { .integer($0) }))])
        case .device(let name): return node("device", [("value", .string(name))])
        case .dtype(let dtype): return node("dtype", [("value", .string(dtype.rawValue))])
        case .complex(let real, let imaginary):
            return node("complex", [("real", .object(floatFields(real))), ("imag", .object(floatFields(imaginary)))])
        case .object(let object):
            guard objects else {
                throw CheckpointError(
                    .unsupported, "\(object.summary) is a Python object, which this format cannot hold",
                    path: path.isEmpty ? "(root)" : path.pathString, expected: "tensors and plain values (or .pt/.ckpt)",
                    found: object.qualifiedName)
            }
            // The parts as children of the object, at the key paths forEachTensor gives them.
            var fields: [(key: String, value: OrderedJSON)] = [
                ("module", .string(object.module)), ("name", .string(object.name)),
                ("construction", .string(object.construction.rawValue)),
            ]
            func elements(_ part: String, _ items: [StateValue]) throws {
                guard !items.isEmpty else { return }
                fields.append((part, .array(try items.enumerated().map { try child([.string(part), .int(Int64($0))], $1) })))
            }
            func pairs(_ part: String, _ items: [(StateKey, StateValue)]) throws {
                guard !items.isEmpty else { return }
                fields.append((part, .array(try items.map { key, item in .array([keyJSON(key), try child([.string(part), key], item)]) })))
            }
            try elements("args", object.args)
            try pairs("kwargs", object.kwargs.map { (.string($0.key), $0.value) })
            try elements("listitems", object.listItems)
            try pairs("dictitems", object.dictItems.map { ($0.key, $0.value) })
            if let state = object.state { fields.append(("state", try child(.string("state"), state))) }
            return node("object", fields)
        }
    }

    // MARK: Decoding

    /// Decodes and validates a tree.
    struct Decoder {
        /// The file, for errors.
        var file: String?
        /// Where the tree lives in the file (`archive/manifest.json#root`, `ckpt.tree`), for errors.
        var location: String
        /// Accept `object` nodes (a ckpt manifest's root); elsewhere they are an unknown node type.
        var objects = false

        /// An error naming the node's key path.
        func failure(_ message: String, _ path: [StateKey], code: CheckpointError.Code = .corrupt, expected: String? = nil, found: String? = nil) -> CheckpointError {
            CheckpointError(
                code, message, file: file, path: path.isEmpty ? location : "\(location):\(path.pathString)",
                expected: expected, found: found)
        }

        func field(_ node: OrderedJSON, _ key: String, _ path: [StateKey]) throws -> OrderedJSON {
            guard let value = node[key] else { throw failure("node lacks \"\(key)\"", path, expected: "field \(key)") }
            return value
        }

        func string(_ node: OrderedJSON, _ key: String, _ path: [StateKey]) throws -> String {
            let value = try field(node, key, path)
            guard case .string(let text) = value else { throw failure("\"\(key)\" is not a string", path, found: value.kindName) }
            return text
        }

        func array(_ node: OrderedJSON, _ key: String, _ path: [StateKey]) throws -> [OrderedJSON] {
            let value = try field(node, key, path)
            guard case .array(let elements) = value else { throw failure("\"\(key)\" is not an array", path, found: value.kindName) }
            return elements
        }

        func bool(_ node: OrderedJSON, _ key: String, _ path: [StateKey]) throws -> Bool {
            let value = try field(node, key, path)
            guard case .bool(let flag) = value else { throw failure("\"\(key)\" is not a boolean", path, found: value.kindName) }
            return flag
        }

        func int64(_ value: OrderedJSON, _ path: [StateKey]) throws -> Int64 {
            guard let integer = value.int64 else {
                throw failure("integer expected", path, expected: "64-bit integer", found: value.kindName)
            }
            return integer
        }

        /// A non-negative integer that fits in `Int` (sizes, offsets, indices).
        func count(_ value: OrderedJSON, _ path: [StateKey]) throws -> Int {
            guard let integer = value.nonNegativeInt else {
                throw failure("non-negative integer expected", path, expected: "0 ... \(Int.max)", found: value.kindName)
            }
            return integer
        }

        func counts(_ node: OrderedJSON, _ key: String, _ path: [StateKey]) throws -> [Int] {
            try array(node, key, path).map { try count($0, path) }
        }

        func dtype(_ node: OrderedJSON, _ key: String, _ path: [StateKey]) throws -> DType {
            let name = try string(node, key, path)
            guard let dtype = DType(rawValue: name) else {
                throw failure("unknown dtype", path, code: .unknownDType, expected: "a torch dtype name", found: name)
            }
            return dtype
        }

        func float(_ node: OrderedJSON, _ path: [StateKey]) throws -> Double {
            if let value = node["value"] {
                guard case .number(let text) = value, let number = Double(text) else {
                    throw failure("float value is not a number", path, found: value.kindName)
                }
                return number
            }
            let bits = try string(node, "bits", path)
            guard bits.hasPrefix("0x"), let pattern = UInt64(bits.dropFirst(2), radix: 16) else {
                throw failure("float bits are not 0x-prefixed hex", path, found: bits)
            }
            return Double(bitPattern: pattern)
        }

        /// Decodes a tree.
        ///
        /// - Parameters:
        ///   - json: The root node.
        ///   - tensor: Builds a tensor from its node (the caller's format); `requires_grad` and
        ///     Parameter-ness are applied here.
        /// - Throws: ``CheckpointError`` naming the key path of the first problem.
        func decode(_ json: OrderedJSON, tensor: (OrderedJSON, [StateKey]) throws -> Tensor) throws -> StateValue {
            var path: [StateKey] = []
            return try decode(json, path: &path, tensor: tensor)
        }

        private func decode(
            _ node: OrderedJSON, path: inout [StateKey], tensor: (OrderedJSON, [StateKey]) throws -> Tensor
        ) throws -> StateValue {
            guard path.count < StateTreeJSON.maximumDepth else {
                throw failure("tree too deep", path, expected: "at most \(StateTreeJSON.maximumDepth) levels")
            }
            guard case .object = node else { throw failure("node is not an object", path, found: node.kindName) }
            func child(_ key: StateKey, _ json: OrderedJSON) throws -> StateValue {
                path.append(key)
                defer { path.removeLast() }
                return try decode(json, path: &path, tensor: tensor)
            }
            let type = try string(node, "type", path)
            if let kind = PythonRecord.Kind(rawValue: type) {
                var record = PythonRecord(kind)
                for pair in try array(node, "attributes", path) {
                    guard case .array(let parts) = pair, parts.count == 2, case .string(let name) = parts[0] else {
                        throw failure("attribute is not a [name, value] pair", path, found: pair.kindName)
                    }
                    guard record[name] == nil else { throw failure("duplicate attribute", path + [.string(name)], expected: "unique names") }
                    record[name] = try child(.string(name), parts[1])
                }
                return .record(record)
            }
            if type.hasPrefix("numpy."), node["numpy_module"] != nil {
                var built = try tensor(node, path)
                built.requiresGrad = try bool(node, "requires_grad", path)
                built.numpyOrigin = NumpyOrigin(type == "numpy.ndarray" ? .array : .scalar, module: try string(node, "numpy_module", path))
                return .tensor(built)
            }
            switch type {
            case "dict", "OrderedDict", "defaultdict":
                var dict = StateDict(isOrderedDict: type == "OrderedDict")
                if type == "defaultdict" { dict.defaultFactory = try string(node, "default_factory", path) }
                for pair in try array(node, "items", path) {
                    guard case .array(let parts) = pair, parts.count == 2 else {
                        throw failure("dict item is not a [key, value] pair", path, found: pair.kindName)
                    }
                    let key: StateKey
                    switch parts[0] {
                    case .string(let text): key = .string(text)
                    case .number: key = .int(try int64(parts[0], path))
                    default: throw failure("dict key is neither a string nor an integer", path, found: parts[0].kindName)
                    }
                    guard dict.items[key] == nil else { throw failure("duplicate dict key", path + [key], expected: "unique keys") }
                    dict.items[key] = try child(key, parts[1])
                }
                if node["attributes"] != nil {
                    for pair in try array(node, "attributes", path) {
                        guard case .array(let parts) = pair, parts.count == 2, case .string(let name) = parts[0] else {
                            throw failure("attribute is not a [name, value] pair", path, found: pair.kindName)
                        }
                        guard dict.attributes[name] == nil else {
                            throw failure("duplicate attribute", path + [.string(name)], expected: "unique names")
                        }
                        dict.attributes[name] = try child(.string(name), parts[1])
                    }
                }
                return .dict(dict)
            case "list", "tuple", "set":
                let elements = try array(node, "items", path).enumerated().map { try child(.int(Int64($0)), $1) }
                return type == "list" ? .list(elements) : type == "tuple" ? .tuple(elements) : .set(elements)
            case "Tensor", "Parameter":
                var built = try tensor(node, path)
                built.requiresGrad = try bool(node, "requires_grad", path)
                built.isParameter = type == "Parameter"
                return .tensor(built)
            case "str": return .string(try string(node, "value", path))
            case "int": return .int(try int64(try field(node, "value", path), path))
            case "float": return .float(try float(node, path))
            case "bool": return .bool(try bool(node, "value", path))
            case "NoneType": return .none
            case "bytes", "bytearray":
                let text = try string(node, "base64", path)
                guard let data = Data(base64Encoded: text) else { throw failure("bytes are not base64", path) }
                return type == "bytes" ? .bytes(Array(data)) : .bytearray(Array(data))
            case "Size": return .size(try array(node, "value", path).map { try int64($0, path) })
            case "device": return .device(try string(node, "value", path))
            case "dtype": return .dtype(try dtype(node, "value", path))
            case "complex":
                return .complex(
                    real: try float(try field(node, "real", path), path),
                    imaginary: try float(try field(node, "imag", path), path))
            case "object" where objects:
                return .object(try decodeObject(node, path: &path, tensor: tensor))
            default:
                throw failure("unknown node type", path, found: type)
            }
        }

        /// An `object` node: its global, construction and parts (each part optional, empty when absent).
        private func decodeObject(
            _ node: OrderedJSON, path: inout [StateKey], tensor: (OrderedJSON, [StateKey]) throws -> Tensor
        ) throws -> PickledObject {
            let module = try string(node, "module", path)
            let name = try string(node, "name", path)
            let constructionName = try string(node, "construction", path)
            guard let construction = PickledObject.Construction(rawValue: constructionName) else {
                throw failure(
                    "unknown object construction", path, expected: "reference, reduce or newobj", found: constructionName)
            }
            guard !module.isEmpty, !name.isEmpty, !module.contains("\n"), !name.contains("\n") else {
                throw failure("an object's module and name must be non-empty lines", path, found: "\(module).\(name)")
            }
            var object = PickledObject(module: module, name: name, construction: construction)
            func child(_ key: StateKey, _ json: OrderedJSON) throws -> StateValue {
                path.append(key)
                defer { path.removeLast() }
                return try decode(json, path: &path, tensor: tensor)
            }
            func pairs(_ part: String) throws -> [(OrderedJSON, OrderedJSON)] {
                try array(node, part, path).map { pair in
                    guard case .array(let parts) = pair, parts.count == 2 else {
                        throw failure("\(part) item is not a [key, value] pair", path, found: pair.kindName)
                    }
                    return (parts[0], parts[1])
                }
            }
            path.append(.string("args"))
            defer { path.removeLast() }
            if node["args"] != nil {
                object.args = try array(node, "args", path).enumerated().map { try child(.int(Int64($0)), $1) }
            }
            path[path.count - 1] = .string("kwargs")
            if node["kwargs"] != nil {
                for (nameJSON, value) in try pairs("kwargs") {
                    guard case .string(let keyword) = nameJSON else {
                        throw failure("a keyword is not a string", path, found: nameJSON.kindName)
                    }
                    guard object.kwargs[keyword] == nil else { throw failure("duplicate keyword", path + [.string(keyword)]) }
                    object.kwargs[keyword] = try child(.string(keyword), value)
                }
            }
            path[path.count - 1] = .string("listitems")
            if node["listitems"] != nil {
                object.listItems = try array(node, "listitems", path).enumerated().map { try child(.int(Int64($0)), $1) }
            }
            path[path.count - 1] = .string("dictitems")
            if node["dictitems"] != nil {
                for (keyJSON, value) in try pairs("dictitems") {
                    let key: StateKey
                    switch keyJSON {
                    case .string(let text): key = .string(text)
                    case .number: key = .int(try int64(keyJSON, path))
                    default: throw failure("dict key is neither a string nor an integer", path, found: keyJSON.kindName)
                    }
                    guard object.dictItems[key] == nil else { throw failure("duplicate dict key", path + [key]) }
                    object.dictItems[key] = try child(key, value)
                }
            }
            path[path.count - 1] = .string("state")
            if let state = node["state"] { object.state = try decode(state, path: &path, tensor: tensor) }
            let hasParts = !object.args.isEmpty || !object.kwargs.isEmpty || object.state != nil
                || !object.listItems.isEmpty || !object.dictItems.isEmpty
            if construction == .reference && hasParts || construction == .reduce && !object.kwargs.isEmpty {
                throw failure(
                    "object parts do not fit its construction", Array(path.dropLast()), found: constructionName)
            }
            return object
        }
    }
}
