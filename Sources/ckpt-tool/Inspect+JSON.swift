import Checkpoint
import CheckpointTools
import Foundation

/// The `--json` output of `ckpt-tool inspect` (schema `ckpt-tool/inspect`, version 1; see docs/CLI.md).
struct InspectJSON {
    static let schema = "ckpt-tool/inspect"
    static let schemaVersion = 1

    let summary: TreeSummary
    let selection: InspectSelection
    let optimizers: [OptimizerSummary]

    func render(_ tree: StateValue, file: String, fileBytes: Int?, format: CheckpointFormat?) -> String {
        var tensors: [[String: Any]] = []
        tree.forEachTensor { path, tensor in
            guard selection.selects(path) else { return }
            var entry = Self.tensorFields(tensor, summary: summary, isParameter: tensor.isParameter)
            entry["path"] = path.pathString
            entry["key_path"] = path.map(Self.keyJSON)
            tensors.append(entry)
        }
        var document: [String: Any] = [
            "schema": Self.schema,
            "schema_version": Self.schemaVersion,
            "file": file,
            "file_bytes": fileBytes.map { $0 as Any } ?? NSNull(),
            "format": format.map { $0.rawValue as Any } ?? NSNull(),
            "tensors": tensors,
            "optimizers": optimizers.map(Self.optimizerJSON),
            "totals": [
                "tensors": summary.tensorCount,
                "storages": summary.storageCount,
                "tensor_bytes": summary.tensorBytes,
                "storage_bytes": summary.storageBytes,
            ],
        ]
        var path: [StateKey] = []
        if let glob = selection.glob {
            // A filtered tree would renumber list elements; each topmost match is given with its own path instead.
            document["root"] = NSNull()
            document["filter"] = glob.pattern
            var matches: [[String: Any]] = []
            collectMatches(tree, path: &path, into: &matches)
            document["matches"] = matches
        } else {
            document["root"] = node(tree, path: &path)
        }
        return JSONOutput.render(document)
    }

    /// The topmost values whose key paths match the filter, in tree order.
    private func collectMatches(_ value: StateValue, path: inout [StateKey], into matches: inout [[String: Any]]) {
        if !path.isEmpty, selection.glob?.matches(path) == true {
            var nodePath = path
            matches.append(["path": path.pathString, "key_path": path.map(Self.keyJSON), "node": node(value, path: &nodePath)])
            return
        }
        guard selection.glob?.couldMatchBelow(path) ?? false else { return }
        for (key, child) in InspectSelection.children(of: value) {
            path.append(key)
            collectMatches(child, path: &path, into: &matches)
            path.removeLast()
        }
    }

    private static func optimizerJSON(_ optimizer: OptimizerSummary) -> [String: Any] {
        [
            "path": optimizer.path.pathString,
            "key_path": optimizer.path.map(keyJSON),
            "groups": optimizer.groups.map { group -> [String: Any] in
                [
                    "params": group.parameterIDs,
                    "param_names": group.parameterNames.map { $0 as Any } ?? NSNull(),
                    "hyperparameters": Dictionary(uniqueKeysWithValues: group.hyperparameters.map { ($0.key, optionJSON($0.value)) }),
                ]
            },
            "parameters": optimizer.parameterCount,
            "parameters_with_state": optimizer.parametersWithState,
            "state_keys": Dictionary(uniqueKeysWithValues: optimizer.stateKeys.map { ($0.key, $0.value) }),
            "step": optimizer.stepRange.map { ["min": floatJSON($0.lowerBound), "max": floatJSON($0.upperBound)] as Any } ?? NSNull(),
            "unread_steps": optimizer.unreadSteps,
            "state_tensors": optimizer.stateTensorCount,
            "state_tensor_bytes": optimizer.stateTensorBytes,
        ]
    }

    /// A hyperparameter as a plain JSON value; types JSON lacks become their short description.
    private static func optionJSON(_ value: StateValue) -> Any {
        switch value {
        case .float(let number): return floatJSON(number)
        case .int(let integer): return integer
        case .bool(let flag): return flag
        case .none: return NSNull()
        case .string(let text): return text
        case .list(let elements), .tuple(let elements): return elements.map(optionJSON)
        default: return StateDiff.describe(value)
        }
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

    /// A NODE; containers below `--depth` get `items_omitted` (their child count) instead of `items`.
    private func node(_ value: StateValue, path: inout [StateKey]) -> [String: Any] {
        var result: [String: Any] = ["type": value.pythonTypeName]
        let expanded = selection.expands(path)
        func child(_ key: StateKey, _ value: StateValue) -> [String: Any] {
            path.append(key)
            defer { path.removeLast() }
            return node(value, path: &path)
        }
        switch value {
        case .dict(let dict):
            guard expanded else {
                result["items_omitted"] = dict.items.count + dict.attributes.count
                break
            }
            result["items"] = dict.items.map { ["key": Self.keyJSON($0.key), "value": child($0.key, $0.value)] as [String: Any] }
            if dict.isOrderedDict {
                result["attributes"] = dict.attributes.map { ["name": $0.key, "value": child(.string($0.key), $0.value)] as [String: Any] }
            }
        case .list(let elements), .tuple(let elements), .set(let elements):
            if expanded {
                result["items"] = elements.enumerated().map { child(.int(Int64($0.offset)), $0.element) }
            } else {
                result["items_omitted"] = elements.count
            }
        case .tensor(let tensor):
            result = Self.tensorFields(tensor, summary: summary, isParameter: tensor.isParameter)
        case .string(let text): result["value"] = text
        case .int(let integer): result["value"] = integer
        case .float(let number): result["value"] = Self.floatJSON(number)
        case .bool(let flag): result["value"] = flag
        case .none: break
        case .bytes(let bytes), .bytearray(let bytes): result["length"] = bytes.count
        case .size(let dims): result["value"] = dims
        case .device(let name): result["value"] = name
        case .dtype(let dtype): result["value"] = dtype.rawValue
        case .complex(let real, let imaginary):
            result["real"] = Self.floatJSON(real)
            result["imag"] = Self.floatJSON(imaginary)
        }
        return result
    }
}
