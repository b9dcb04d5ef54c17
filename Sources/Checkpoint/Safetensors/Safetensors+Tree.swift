import Foundation
import OrderedCollections

extension Safetensors {
    /// The `__metadata__` key that holds a tree's structure (see ``Safetensors``).
    public static let treeMetadataKey = "ckpt.tree"

    /// Version of the `ckpt.tree` record this library writes and reads.
    static let treeVersion = 1

    /// A tensor as the file stores it, under its safetensors name.
    struct NamedTensor {
        var name: String
        var tensor: Tensor
    }

    /// Splits a tree into the tensors to store and, unless the tree is a plain `dict` of plain
    /// tensors, the JSON record of its structure.
    static func flatten(_ value: StateValue) throws -> (tensors: [NamedTensor], tree: OrderedJSON?) {
        if case .dict(let dict) = value, !dict.isOrderedDict, dict.attributes.isEmpty {
            var tensors: [NamedTensor] = []
            var isPlain = true
            for (key, item) in dict.items {
                guard case .string(let name) = key, name != metadataKey, case .tensor(let tensor) = item,
                      !tensor.requiresGrad, !tensor.isParameter, tensor.dtype.safetensorsName != nil
                else { isPlain = false; break }
                tensors.append(NamedTensor(name: name, tensor: tensor))
            }
            if isPlain { return (tensors, nil) }
        }
        var encoder = TreeEncoder()
        var path: [StateKey] = []
        let root = try encoder.encode(value, path: &path, depth: 0)
        let record = OrderedJSON.object([("version", .integer(treeVersion)), ("root", root)])
        return (encoder.tensors, record)
    }

    /// Rebuilds a tree from a `ckpt.tree` record and the file's tensors.
    ///
    /// - Throws: ``CheckpointError`` `.corrupt` for a malformed record, a missing tensor, a tensor
    ///   referenced twice, or a tensor the record does not mention.
    static func unflatten(record: String, tensors: OrderedDictionary<String, Tensor>, file: String) throws -> StateValue {
        let json = try OrderedJSON.parse(record, file: file, what: "\(metadataKey)/\(treeMetadataKey)")
        var decoder = TreeDecoder(tensors: tensors, file: file)
        guard let version = json["version"]?.int64 else {
            throw decoder.failure("record lacks an integer \"version\"", [], found: json.kindName)
        }
        guard version == Int64(treeVersion) else {
            throw CheckpointError(
                .unsupported, "ckpt.tree record version not supported", file: file, path: "\(metadataKey)/\(treeMetadataKey)",
                expected: "\(treeVersion)", found: "\(version)")
        }
        guard let root = json["root"] else { throw decoder.failure("record lacks \"root\"", []) }
        var path: [StateKey] = []
        let value = try decoder.decode(root, path: &path, depth: 0)
        if let unused = tensors.keys.first(where: { !decoder.used.contains($0) }) {
            throw CheckpointError(
                .corrupt, "tensor is not part of the ckpt.tree record", file: file, path: unused,
                expected: "every tensor referenced by \(treeMetadataKey)")
        }
        return value
    }
}

/// The depth limit of trees, so that both writing and reading stay well inside the JSON nesting limit
/// (each tree level is at most 3 JSON levels: node, items array, key/value pair).
private let maximumTreeDepth = (OrderedJSON.maximumDepth - 4) / 3

/// Encodes a tree node by node. Tensors are named by their key path joined with `/`; a name
/// already taken (a key containing `/`, or `0` next to `"0"`), or safetensors' reserved
/// `__metadata__`, gets a `#2`, `#3`, ... suffix.
private struct TreeEncoder {
    var tensors: [Safetensors.NamedTensor] = []
    var names: Set<String> = [Safetensors.metadataKey]

    func node(_ type: String, _ fields: [(key: String, value: OrderedJSON)] = []) -> OrderedJSON {
        .object([("type", .string(type))] + fields)
    }

    func keyJSON(_ key: StateKey) -> OrderedJSON {
        switch key {
        case .string(let text): return .string(text)
        case .int(let value): return .integer(value)
        }
    }

    mutating func uniqueName(for path: [StateKey]) -> String {
        let base = path.pathString
        var name = base
        var suffix = 2
        while names.contains(name) {
            name = "\(base)#\(suffix)"
            suffix += 1
        }
        names.insert(name)
        return name
    }

    mutating func encode(_ value: StateValue, path: inout [StateKey], depth: Int) throws -> OrderedJSON {
        guard depth < maximumTreeDepth else {
            throw CheckpointError(
                .unsupported, "tree too deep for safetensors' header", path: path.pathString,
                expected: "at most \(maximumTreeDepth) levels")
        }
        switch value {
        case .dict(let dict):
            var items: [OrderedJSON] = []
            for (key, item) in dict.items {
                path.append(key)
                items.append(.array([keyJSON(key), try encode(item, path: &path, depth: depth + 1)]))
                path.removeLast()
            }
            var fields: [(key: String, value: OrderedJSON)] = [("items", .array(items))]
            if dict.isOrderedDict || !dict.attributes.isEmpty {
                var attributes: [OrderedJSON] = []
                for (name, item) in dict.attributes {
                    path.append(.string(name))
                    attributes.append(.array([.string(name), try encode(item, path: &path, depth: depth + 1)]))
                    path.removeLast()
                }
                fields.append(("attributes", .array(attributes)))
            }
            return node(value.pythonTypeName, fields)
        case .list(let elements), .tuple(let elements), .set(let elements):
            var items: [OrderedJSON] = []
            for (index, element) in elements.enumerated() {
                path.append(.int(Int64(index)))
                items.append(try encode(element, path: &path, depth: depth + 1))
                path.removeLast()
            }
            return node(value.pythonTypeName, [("items", .array(items))])
        case .tensor(var tensor):
            var fields: [(key: String, value: OrderedJSON)] = []
            if tensor.dtype == .complex128 {
                // safetensors has no C128: store torch.view_as_real's F64 layout [..., 2] (same bytes).
                let packed = tensor.isContiguous ? tensor : try tensor.contiguousCopy()
                tensor = try Tensor(
                    storage: packed.storage, dtype: .float64, shape: packed.shape + [2], storageOffset: packed.storageOffset * 2,
                    requiresGrad: packed.requiresGrad, isParameter: packed.isParameter)
                fields.append(("dtype", .string(DType.complex128.rawValue)))
            }
            let name = uniqueName(for: path)
            tensors.append(Safetensors.NamedTensor(name: name, tensor: tensor))
            fields.insert(("name", .string(name)), at: 0)
            fields.append(("requires_grad", .bool(tensor.requiresGrad)))
            return node(value.pythonTypeName, fields)
        case .string(let text):
            return node("str", [("value", .string(text))])
        case .int(let integer):
            return node("int", [("value", .integer(integer))])
        case .float(let number):
            return floatNode(number)
        case .bool(let flag):
            return node("bool", [("value", .bool(flag))])
        case .none:
            return node("NoneType")
        case .bytes(let bytes), .bytearray(let bytes):
            return node(value.pythonTypeName, [("base64", .string(Data(bytes).base64EncodedString()))])
        case .size(let dims):
            return node("Size", [("value", .array(dims.map { .integer($0) }))])
        case .device(let name):
            return node("device", [("value", .string(name))])
        case .dtype(let dtype):
            return node("dtype", [("value", .string(dtype.rawValue))])
        case .complex(let real, let imaginary):
            return node("complex", [("real", floatNode(real)), ("imag", floatNode(imaginary))])
        }
    }

    /// Finite values as their shortest round-trip decimal; NaN (payload kept) and infinities,
    /// which JSON cannot write, as their bit pattern.
    func floatNode(_ number: Double) -> OrderedJSON {
        if number.isFinite { return node("float", [("value", .number("\(number)"))]) }
        return node("float", [("bits", .string("0x" + String(number.bitPattern, radix: 16)))])
    }
}

private struct TreeDecoder {
    let tensors: OrderedDictionary<String, Tensor>
    let file: String
    var used = Set<String>()

    init(tensors: OrderedDictionary<String, Tensor>, file: String) {
        self.tensors = tensors
        self.file = file
    }

    func failure(_ message: String, _ path: [StateKey], expected: String? = nil, found: String? = nil) -> CheckpointError {
        CheckpointError(
            .corrupt, "malformed \(Safetensors.treeMetadataKey) record: \(message)", file: file,
            path: path.isEmpty ? "\(Safetensors.treeMetadataKey):<root>" : "\(Safetensors.treeMetadataKey):\(path.pathString)",
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
        guard let integer = value.int64 else { throw failure("integer expected", path, expected: "64-bit integer", found: value.kindName) }
        return integer
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

    mutating func decode(_ node: OrderedJSON, path: inout [StateKey], depth: Int) throws -> StateValue {
        guard depth < maximumTreeDepth else { throw failure("tree too deep", path, expected: "at most \(maximumTreeDepth) levels") }
        guard case .object = node else { throw failure("node is not an object", path, found: node.kindName) }
        let type = try string(node, "type", path)
        switch type {
        case "dict", "OrderedDict":
            var dict = StateDict(isOrderedDict: type == "OrderedDict")
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
                path.append(key)
                dict.items[key] = try decode(parts[1], path: &path, depth: depth + 1)
                path.removeLast()
            }
            if node["attributes"] != nil {
                for pair in try array(node, "attributes", path) {
                    guard case .array(let parts) = pair, parts.count == 2, case .string(let name) = parts[0] else {
                        throw failure("attribute is not a [name, value] pair", path, found: pair.kindName)
                    }
                    guard dict.attributes[name] == nil else {
                        throw failure("duplicate attribute", path + [.string(name)], expected: "unique names")
                    }
                    path.append(.string(name))
                    dict.attributes[name] = try decode(parts[1], path: &path, depth: depth + 1)
                    path.removeLast()
                }
            }
            return .dict(dict)
        case "list", "tuple", "set":
            var elements: [StateValue] = []
            for element in try array(node, "items", path) {
                path.append(.int(Int64(elements.count)))
                elements.append(try decode(element, path: &path, depth: depth + 1))
                path.removeLast()
            }
            return type == "list" ? .list(elements) : type == "tuple" ? .tuple(elements) : .set(elements)
        case "Tensor", "Parameter":
            return .tensor(try decodeTensor(node, isParameter: type == "Parameter", path: path))
        case "str":
            return .string(try string(node, "value", path))
        case "int":
            return .int(try int64(try field(node, "value", path), path))
        case "float":
            return .float(try float(node, path))
        case "bool":
            return .bool(try bool(node, "value", path))
        case "NoneType":
            return .none
        case "bytes", "bytearray":
            let text = try string(node, "base64", path)
            guard let data = Data(base64Encoded: text) else { throw failure("bytes are not base64", path) }
            return type == "bytes" ? .bytes(Array(data)) : .bytearray(Array(data))
        case "Size":
            return .size(try array(node, "value", path).map { try int64($0, path) })
        case "device":
            return .device(try string(node, "value", path))
        case "dtype":
            let name = try string(node, "value", path)
            guard let dtype = DType(rawValue: name) else {
                throw CheckpointError(.unknownDType, "unknown dtype in ckpt.tree", file: file, path: path.pathString, found: name)
            }
            return .dtype(dtype)
        case "complex":
            return .complex(real: try float(try field(node, "real", path), path), imaginary: try float(try field(node, "imag", path), path))
        default:
            throw failure("unknown node type", path, found: type)
        }
    }

    mutating func decodeTensor(_ node: OrderedJSON, isParameter: Bool, path: [StateKey]) throws -> Tensor {
        let name = try string(node, "name", path)
        guard var tensor = tensors[name] else {
            throw CheckpointError(
                .missingEntry, "ckpt.tree names a tensor the file does not hold", file: file, path: path.pathString,
                expected: "tensor \"\(name)\"")
        }
        guard used.insert(name).inserted else { throw failure("tensor referenced twice", path, found: name) }
        if node["dtype"] != nil {
            let dtypeName = try string(node, "dtype", path)
            guard dtypeName == DType.complex128.rawValue, tensor.dtype == .float64, tensor.shape.last == 2 else {
                throw failure(
                    "dtype override does not match the stored tensor", path,
                    expected: "complex128 over F64 [..., 2]", found: "\(dtypeName) over \(tensor.dtype) \(tensor.shape)")
            }
            tensor = try Tensor(storage: tensor.storage, dtype: .complex128, shape: Array(tensor.shape.dropLast()))
        }
        tensor.requiresGrad = try bool(node, "requires_grad", path)
        tensor.isParameter = isParameter
        return tensor
    }
}
