import Checkpoint
import CheckpointTools
import Foundation

/// The `--json` document of `ckpt-tool inspect` (schema `ckpt-tool/inspect`, version 2; see docs/CLI.md),
/// written by ``write(_:asArray:to:)``.
struct InspectDocument {
    /// Version 2: `format` is the contents' format (version 1 took it from the extension).
    static let version = 2

    /// A tensor's fields, as a tensor NODE and each `tensors` entry have them.
    struct TensorFields {
        let type: String
        let dtype: String
        let shape: [Int]
        let strides: [Int]
        let storageOffset: Int
        let bytes: Int
        let requiresGrad: Bool
        /// The storage's index among the distinct storages, -1 for one the summary did not count.
        let storage: Int
        let storageBytes: Int
        /// Where torch.save says the storage was (`cpu`, `mps`); nil when the file does not say.
        var device: String?
        /// The chunks a DCP checkpoint saved it in; nil for other formats.
        var chunks: Int?
        /// The Hugging Face shard that holds it; nil for other formats.
        var shard: String?

        init(_ tensor: Tensor, path: [StateKey], summary: TreeSummary, contents: CheckpointContents, sharding: InspectSharding?) {
            type = tensor.isParameter ? "Parameter" : "Tensor"
            dtype = tensor.dtype.rawValue
            shape = tensor.shape
            strides = tensor.strides
            storageOffset = tensor.storageOffset
            bytes = tensor.byteCount
            requiresGrad = tensor.requiresGrad
            storage = summary.storageIndex[ObjectIdentifier(tensor.storage)] ?? -1
            storageBytes = tensor.storage.byteCount
            device = contents.device(of: tensor)
            chunks = sharding?.chunks[path]
            shard = sharding?.shards[path]
        }
    }

    /// An entry of `tensors`: the tensor's fields and where it is.
    struct TensorEntry {
        let path: [StateKey]
        let fields: TensorFields
    }

    /// A NODE: `type`, Python's type name, and the fields of its kind.
    struct Node {
        enum Content {
            case dict(items: [Item], attributes: [Attribute]?)
            case sequence([Node])
            /// A container below `--depth`: its number of children instead of them.
            case omitted(Int)
            /// A tensor's fields, its `type` among them.
            case tensor(TensorFields)
            case value(PlainValue)
            case none
            case length(Int)
            case complex(real: Double, imaginary: Double)
            /// A placeholder: how it is made, and its parts as items keyed by part name (nil at the `--depth` cut).
            case object(construction: String, parts: [Item]?, omitted: Int)
        }

        /// A dict item.
        struct Item {
            let key: StateKeyJSON
            let value: Node
        }

        /// An OrderedDict attribute (`_metadata`).
        struct Attribute {
            let name: String
            let value: Node
        }

        let type: String
        let content: Content
        /// Children not shown because `--max-lines` ran out (the trailing ones).
        var cut = 0
    }

    /// A scalar or hyperparameter as plain JSON.
    enum PlainValue: Encodable {
        case string(String)
        case int(Int64)
        case float(Double)
        case bool(Bool)
        case null
        case array([PlainValue])

        /// A hyperparameter; types JSON lacks become their short description.
        init(option value: StateValue) {
            switch value {
            case .float(let number): self = .float(number)
            case .int(let integer): self = .int(integer)
            case .bool(let flag): self = .bool(flag)
            case .none: self = .null
            case .string(let text): self = .string(text)
            case .list(let elements), .tuple(let elements): self = .array(elements.map(PlainValue.init(option:)))
            default: self = .string(StateDiff.describe(value))
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let text): try container.encode(text)
            case .int(let integer): try container.encode(integer)
            case .float(let number): try container.encode(number)
            case .bool(let flag): try container.encode(flag)
            case .null: try container.encodeNil()
            case .array(let elements): try container.encode(elements)
            }
        }
    }

    /// A topmost value that matches `--filter`.
    struct Match {
        let path: String
        let keyPath: [StateKeyJSON]
        let node: Node
    }

    /// An optimizer state_dict found in the tree.
    struct Optimizer: Encodable {
        struct Group: Encodable {
            let params: [Int64]
            @Nullable var paramNames: [String]?
            let hyperparameters: [String: PlainValue]

            enum CodingKeys: String, CodingKey {
                case params, paramNames = "param_names", hyperparameters
            }
        }

        struct StepRange: Encodable {
            let min: Double
            let max: Double
        }

        let path: String
        let keyPath: [StateKeyJSON]
        let groups: [Group]
        let parameters: Int
        let parametersWithState: Int
        let stateKeys: [String: Int]
        @Nullable var step: StepRange?
        let unreadSteps: Int
        let stateTensors: Int
        let stateTensorBytes: Int

        enum CodingKeys: String, CodingKey {
            case path, keyPath = "key_path", groups, parameters, parametersWithState = "parameters_with_state"
            case stateKeys = "state_keys", step, unreadSteps = "unread_steps", stateTensors = "state_tensors"
            case stateTensorBytes = "state_tensor_bytes"
        }

        init(_ optimizer: OptimizerSummary) {
            path = optimizer.path.pathString
            keyPath = StateKeyJSON.path(optimizer.path)
            groups = optimizer.groups.map { group in
                Group(
                    params: group.parameterIDs, paramNames: group.parameterNames,
                    hyperparameters: Dictionary(uniqueKeysWithValues: group.hyperparameters.map { ($0.key, PlainValue(option: $0.value)) }))
            }
            parameters = optimizer.parameterCount
            parametersWithState = optimizer.parametersWithState
            stateKeys = Dictionary(uniqueKeysWithValues: optimizer.stateKeys.map { ($0.key, $0.value) })
            step = optimizer.stepRange.map { StepRange(min: $0.lowerBound, max: $0.upperBound) }
            unreadSteps = optimizer.unreadSteps
            stateTensors = optimizer.stateTensorCount
            stateTensorBytes = optimizer.stateTensorBytes
        }
    }

    struct Totals: Encodable {
        let tensors: Int
        let elements: Int
        let parameters: Int
        let storages: Int
        let tensorBytes: Int
        let storageBytes: Int

        enum CodingKeys: String, CodingKey {
            case tensors, elements, parameters, storages, tensorBytes = "tensor_bytes", storageBytes = "storage_bytes"
        }
    }

    let schema = "ckpt-tool/inspect"
    let schemaVersion = InspectDocument.version
    let file: String
    var fileBytes: Int?
    /// From the contents.
    let format: String
    /// From the file name's extension; nil for an extension that names none.
    var extensionFormat: String?
    /// The storages' distinct devices.
    let devices: [String]
    /// A safetensors file's `__metadata__` pairs (an object: the document's keys are sorted anyway).
    var metadata: [String: String]?
    /// A DCP or Hugging Face sharded checkpoint's files; null for one file.
    var sharding: InspectSharding?
    /// The tree; null with `--filter`, whose `matches` stand for it.
    var root: Node?
    /// Only with `--filter`.
    let filter: String?
    /// Only with `--filter`.
    let matches: [Match]?
    /// The NODEs left out because `--max-lines` ran out; only when some were.
    let nodesOmitted: Int?
    let tensors: [TensorEntry]
    let optimizers: [Optimizer]
    let totals: Totals

    /// Describes a file's tree as `--depth` and `--filter` select it, in at most `maxNodes` NODEs
    /// (0: all).
    init(_ inspected: InspectedFile, selection: InspectSelection, maxNodes: Int = 0) {
        let tree = inspected.tree
        let summary = inspected.summary
        let builder = NodeBuilder(
            summary: summary, selection: selection, contents: inspected.contents, sharding: inspected.sharding, maxNodes: maxNodes)
        file = inspected.file
        fileBytes = inspected.fileBytes
        format = inspected.contents.format.rawValue
        extensionFormat = inspected.extensionFormat?.rawValue
        devices = inspected.contents.devices
        metadata = inspected.contents.metadata?.jsonObject
        sharding = inspected.sharding
        var tensors: [TensorEntry] = []
        tree.forEachTensor { path, tensor in
            guard selection.selects(path) else { return }
            tensors.append(TensorEntry(
                path: path, fields: TensorFields(tensor, path: path, summary: summary, contents: inspected.contents, sharding: inspected.sharding)))
        }
        self.tensors = tensors
        optimizers = inspected.optimizers.map(Optimizer.init)
        totals = Totals(
            tensors: summary.tensorCount, elements: summary.elements, parameters: summary.parameters,
            storages: summary.storageCount, tensorBytes: summary.tensorBytes, storageBytes: summary.storageBytes)
        var path: [StateKey] = []
        if let glob = selection.glob {
            // A filtered tree would renumber list elements; each topmost match is given with its own path instead.
            root = nil
            filter = glob.pattern
            var matches: [Match] = []
            builder.collectMatches(tree, path: &path, into: &matches)
            self.matches = matches
        } else {
            root = builder.node(tree, path: &path)
            filter = nil
            matches = nil
        }
        nodesOmitted = builder.skipped > 0 ? builder.skipped : nil
    }
}

/// Builds the NODEs of the tree that `--depth` and `--filter` let through, as many as
/// `--max-lines` allows: a tree shared through the memo can have a million places from a few
/// bytes, and each NODE costs about a kilobyte until the document is written.
private final class NodeBuilder {
    let summary: TreeSummary
    let selection: InspectSelection
    let contents: CheckpointContents
    let sharding: InspectSharding?
    /// NODEs that may still be built.
    private var left: Int
    /// NODEs left out once none could be built.
    private(set) var skipped = 0

    init(summary: TreeSummary, selection: InspectSelection, contents: CheckpointContents, sharding: InspectSharding?, maxNodes: Int) {
        self.summary = summary
        self.selection = selection
        self.contents = contents
        self.sharding = sharding
        left = maxNodes == 0 ? .max : maxNodes
    }

    /// Spends a NODE of the budget, or counts `value` and what lies below it as left out.
    private func take(_ value: StateValue, path: inout [StateKey]) -> Bool {
        guard left > 0 else {
            skipped += count(value, path: &path)
            return false
        }
        left -= 1
        return true
    }

    /// The NODEs `value` and its children within `--depth` make.
    private func count(_ value: StateValue, path: inout [StateKey]) -> Int {
        guard selection.expands(path) else { return 1 }
        var nodes = 1
        for (key, child) in value.children {
            path.append(key)
            nodes += count(child, path: &path)
            path.removeLast()
        }
        return nodes
    }

    /// The topmost values whose key paths match the filter, in tree order.
    func collectMatches(_ value: StateValue, path: inout [StateKey], into matches: inout [InspectDocument.Match]) {
        if !path.isEmpty, selection.glob?.matches(path) == true {
            var nodePath = path
            matches.append(.init(path: path.pathString, keyPath: StateKeyJSON.path(path), node: node(value, path: &nodePath)))
            return
        }
        guard selection.glob?.couldMatchBelow(path) ?? false else { return }
        for (key, child) in InspectSelection.children(of: value) {
            path.append(key)
            collectMatches(child, path: &path, into: &matches)
            path.removeLast()
        }
    }

    /// A NODE; containers below `--depth` get `items_omitted` (their child count) instead of `items`.
    func node(_ value: StateValue, path: inout [StateKey]) -> InspectDocument.Node {
        let expanded = selection.expands(path)
        var cut = 0
        /// A child's NODE, or nil (counted in `cut`) once `--max-lines` has run out.
        func child(_ key: StateKey, _ value: StateValue) -> InspectDocument.Node? {
            path.append(key)
            defer { path.removeLast() }
            guard take(value, path: &path) else {
                cut += 1
                return nil
            }
            return node(value, path: &path)
        }
        func item(_ key: StateKey, _ value: StateValue) -> InspectDocument.Node.Item? {
            child(key, value).map { .init(key: StateKeyJSON(key: key), value: $0) }
        }
        let content: InspectDocument.Node.Content
        switch value {
        case .dict(let dict):
            guard expanded else {
                content = .omitted(dict.items.count + dict.attributes.count)
                break
            }
            content = .dict(
                items: dict.items.compactMap { item($0.key, $0.value) },
                attributes: dict.isOrderedDict
                    ? dict.attributes.compactMap { pair in child(.string(pair.key), pair.value).map { .init(name: pair.key, value: $0) } } : nil)
        case .list(let elements), .tuple(let elements), .set(let elements):
            content = expanded
                ? .sequence(elements.enumerated().compactMap { child(.int(Int64($0.offset)), $0.element) }) : .omitted(elements.count)
        case .tensor(let tensor):
            content = .tensor(InspectDocument.TensorFields(tensor, path: path, summary: summary, contents: contents, sharding: sharding))
        case .string(let text): content = .value(.string(text))
        case .int(let integer): content = .value(.int(integer))
        case .float(let number): content = .value(.float(number))
        case .bool(let flag): content = .value(.bool(flag))
        case .none: content = .none
        case .bytes(let bytes), .bytearray(let bytes): content = .length(bytes.count)
        case .size(let dims): content = .value(.array(dims.map(InspectDocument.PlainValue.int)))
        case .device(let name): content = .value(.string(name))
        case .dtype(let dtype): content = .value(.string(dtype.rawValue))
        case .complex(let real, let imaginary): content = .complex(real: real, imaginary: imaginary)
        case .record(let record):
            content = expanded
                ? .dict(items: record.attributes.compactMap { item(.string($0.key), $0.value) }, attributes: nil)
                : .omitted(record.attributes.count)
        case .object(let object):
            let parts = object.parts
            content = .object(
                construction: object.construction.rawValue,
                parts: expanded || parts.isEmpty
                    ? parts.compactMap { item(.string($0.key), $0.value) } : nil,
                omitted: parts.count)
        }
        return InspectDocument.Node(type: value.pythonTypeName, content: content, cut: cut)
    }
}
