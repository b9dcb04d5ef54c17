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
        var tensors: [NamedTensor] = []
        var names: Set<String> = [metadataKey]
        let root = try StateTreeJSON.encode(value) { tensor, path in
            var stored = tensor
            var fields: [(key: String, value: OrderedJSON)] = []
            if tensor.dtype == .complex128 {
                // safetensors has no C128: store torch.view_as_real's F64 layout [..., 2] (same bytes).
                let packed = tensor.isContiguous ? tensor : try tensor.contiguousCopy()
                stored = try Tensor(
                    storage: packed.storage, dtype: .float64, shape: packed.shape + [2], storageOffset: packed.storageOffset * 2)
                fields.append(("dtype", .string(DType.complex128.rawValue)))
            }
            let name = uniqueName(for: path, taken: &names)
            tensors.append(NamedTensor(name: name, tensor: stored))
            return [("name", .string(name))] + fields
        }
        let record = OrderedJSON.object([("version", .integer(treeVersion)), ("root", root)])
        return (tensors, record)
    }

    /// Rebuilds a tree from a `ckpt.tree` record and the file's tensors.
    ///
    /// - Throws: ``CheckpointError`` `.corrupt` for a malformed record, a missing tensor, a tensor
    ///   referenced twice, or a tensor the record does not mention.
    static func unflatten(
        record: String, tensors: OrderedDictionary<String, Tensor>, file: String, limits: ResourceLimits = .default
    ) throws -> StateValue {
        let json = try OrderedJSON.parse(record, file: file, what: "\(metadataKey)/\(treeMetadataKey)", limits: limits)
        let decoder = StateTreeJSON.Decoder(file: file, location: treeMetadataKey)
        guard let version = json["version"]?.int64 else {
            throw decoder.failure("record lacks an integer \"version\"", [], found: json.kindName)
        }
        guard version == Int64(treeVersion) else {
            throw decoder.failure("ckpt.tree record version not supported", [], code: .unsupported, expected: "\(treeVersion)", found: "\(version)")
        }
        guard let root = json["root"] else { throw decoder.failure("record lacks \"root\"", []) }
        var used = Set<String>()
        let value = try decoder.decode(root) { node, path in
            let name = try decoder.string(node, "name", path)
            guard let tensor = tensors[name] else {
                throw decoder.failure(
                    "ckpt.tree names a tensor the file does not hold", path, code: .missingEntry, expected: "tensor \"\(name)\"")
            }
            guard used.insert(name).inserted else { throw decoder.failure("tensor referenced twice", path, found: name) }
            guard node["dtype"] != nil else { return tensor }
            let dtypeName = try decoder.string(node, "dtype", path)
            guard dtypeName == DType.complex128.rawValue, tensor.dtype == .float64, tensor.shape.last == 2 else {
                throw decoder.failure(
                    "dtype override does not match the stored tensor", path,
                    expected: "complex128 over F64 [..., 2]", found: "\(dtypeName) over \(tensor.dtype) \(tensor.shape)")
            }
            return try Tensor(storage: tensor.storage, dtype: .complex128, shape: Array(tensor.shape.dropLast()))
        }
        if let unused = tensors.keys.first(where: { !used.contains($0) }) {
            throw CheckpointError(
                .corrupt, "tensor is not part of the ckpt.tree record", file: file, path: unused,
                expected: "every tensor referenced by \(treeMetadataKey)")
        }
        return value
    }

    /// A tensor's safetensors name: its key path joined with `/`; a name already taken (a key
    /// containing `/`, or `0` next to `"0"`), or safetensors' reserved `__metadata__`, gets a `#2`,
    /// `#3`, ... suffix. The keys are joined as they are, not escaped as printed key paths are:
    /// other tools read these names (`model/fc.weight`), and the tree metadata maps them back.
    private static func uniqueName(for path: [StateKey], taken names: inout Set<String>) -> String {
        let base = path.map(\.description).joined(separator: "/")
        var name = base
        var suffix = 2
        while names.contains(name) {
            name = "\(base)#\(suffix)"
            suffix += 1
        }
        names.insert(name)
        return name
    }
}
