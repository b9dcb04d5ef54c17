import Checkpoint
import Foundation

/// The `--json` output of `ckpt-tool inspect` (schema `ckpt-tool/inspect`, version 1; see docs/CLI.md).
enum InspectJSON {
    static let schema = "ckpt-tool/inspect"
    static let schemaVersion = 1

    static func render(_ tree: StateValue, summary: TreeSummary, file: String, fileBytes: Int?, format: CheckpointFormat?) throws -> String {
        var tensors: [[String: Any]] = []
        tree.forEachTensor { path, tensor in
            var entry = tensorFields(tensor, summary: summary, isParameter: tensor.isParameter)
            entry["path"] = path.pathString
            entry["key_path"] = path.map(keyJSON)
            tensors.append(entry)
        }
        let document: [String: Any] = [
            "schema": schema,
            "schema_version": schemaVersion,
            "file": file,
            "file_bytes": fileBytes.map { $0 as Any } ?? NSNull(),
            "format": format.map { $0.rawValue as Any } ?? NSNull(),
            "root": node(tree, summary: summary),
            "tensors": tensors,
            "totals": [
                "tensors": summary.tensorCount,
                "storages": summary.storageIndex.count,
                "tensor_bytes": summary.tensorBytes,
                "storage_bytes": summary.storageBytes,
            ],
        ]
        let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private static func keyJSON(_ key: StateKey) -> Any {
        switch key {
        case .string(let text): return text
        case .int(let value): return value
        }
    }

    private static func floatJSON(_ number: Double) -> Any {
        if number.isNaN { return "nan" }
        if number.isInfinite { return number < 0 ? "-inf" : "inf" }
        return number
    }

    private static func tensorFields(_ tensor: Tensor, summary: TreeSummary, isParameter: Bool) -> [String: Any] {
        [
            "type": isParameter ? "Parameter" : "Tensor",
            "dtype": tensor.dtype.rawValue,
            "shape": tensor.shape,
            "strides": tensor.strides,
            "storage_offset": tensor.storageOffset,
            "bytes": tensor.byteCount,
            "requires_grad": tensor.requiresGrad,
            "storage": summary.storageIndex[ObjectIdentifier(tensor.storage)] ?? -1,
            "storage_bytes": tensor.storage.byteCount,
        ]
    }

    private static func node(_ value: StateValue, summary: TreeSummary) -> [String: Any] {
        var result: [String: Any] = ["type": value.pythonTypeName]
        switch value {
        case .dict(let dict):
            result["items"] = dict.items.map { ["key": keyJSON($0.key), "value": node($0.value, summary: summary)] as [String: Any] }
            if dict.isOrderedDict {
                result["attributes"] = dict.attributes.map { ["name": $0.key, "value": node($0.value, summary: summary)] as [String: Any] }
            }
        case .list(let elements), .tuple(let elements), .set(let elements):
            result["items"] = elements.map { node($0, summary: summary) }
        case .tensor(let tensor):
            result = tensorFields(tensor, summary: summary, isParameter: tensor.isParameter)
        case .string(let text): result["value"] = text
        case .int(let integer): result["value"] = integer
        case .float(let number): result["value"] = floatJSON(number)
        case .bool(let flag): result["value"] = flag
        case .none: break
        case .bytes(let bytes), .bytearray(let bytes): result["length"] = bytes.count
        case .size(let dims): result["value"] = dims
        case .device(let name): result["value"] = name
        case .dtype(let dtype): result["value"] = dtype.rawValue
        case .complex(let real, let imaginary):
            result["real"] = floatJSON(real)
            result["imag"] = floatJSON(imaginary)
        }
        return result
    }
}
