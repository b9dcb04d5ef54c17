import Checkpoint
import OrderedCollections

/// A summary of a `torch.optim` state_dict found in a tree: its parameter groups and
/// hyperparameters, which per-parameter state it holds, and the range of the `step` counters.
///
/// It reads the state_dict's shape only (`{"state": {id: {...}}, "param_groups": [{"params": [...], ...}]}`),
/// so it works for any torch optimizer without knowing its class. Tensor data is never read except
/// for `step` values stored as tensors of at most ``maximumStepStorageBytes`` bytes (torch keeps
/// `step` as a 0-dim float32 tensor): a few bytes each, so a summary stays instant on large files.
public struct OptimizerSummary: Sendable {
    /// One entry of `param_groups`.
    public struct Group: Sendable {
        /// Every option of the group except `params` and `param_names`, in stored order.
        public var hyperparameters: OrderedMap<String, StateValue>
        /// The parameter ids in `params`.
        public var parameterIDs: [Int64]
        /// `param_names`, present when the optimizer was built from `named_parameters()`.
        public var parameterNames: [String]?
    }

    /// Where the state_dict sits in the tree (empty when it is the root).
    public var path: [StateKey]
    /// `param_groups`, in order.
    public var groups: [Group]
    /// Every key seen in a parameter's state (`sum`, `step`, `exp_avg`), with how many parameters have it.
    public var stateKeys: OrderedMap<String, Int>
    /// Parameters with an entry in `state` (a parameter that never had a gradient has none).
    public var parametersWithState: Int
    /// The smallest and largest `step` over all parameters, nil when no `step` could be read.
    public var stepRange: ClosedRange<Double>?
    /// `step` values not counted: NaN, complex, tensors with storage over ``maximumStepStorageBytes``, or not a number at all.
    public var unreadSteps: Int
    /// Tensors in `state`.
    public var stateTensorCount: Int
    /// The logical bytes (numel × item size) of the tensors in `state`.
    public var stateTensorBytes: Int

    /// Total parameters over all groups.
    public var parameterCount: Int { groups.reduce(0) { $0 + $1.parameterIDs.count } }

    /// The largest storage a `step` tensor may have to be read; larger ones are counted in ``unreadSteps``.
    public static let maximumStepStorageBytes = 64

    /// Every optimizer state_dict in a tree, depth first (the root itself, `optimizer`, `optimizers/0`, ...).
    ///
    /// A dict counts as one when it has exactly a `state` dict and a `param_groups` list of dicts that
    /// each hold a `params` list of ints; anything else is treated as ordinary data.
    ///
    /// - Parameter tree: The loaded checkpoint.
    /// - Returns: The summaries, in tree order.
    /// - Throws: ``CheckpointError`` (`.checksumMismatch`) if a `step` tensor's bytes fail their CRC-32.
    public static func find(in tree: StateValue) throws -> [OptimizerSummary] {
        var found: [OptimizerSummary] = []
        var path: [StateKey] = []
        try collect(tree, path: &path, into: &found)
        return found
    }

    private static func collect(_ value: StateValue, path: inout [StateKey], into found: inout [OptimizerSummary]) throws {
        switch value {
        case .dict(let dict):
            if let summary = try OptimizerSummary(dict, path: path) {
                found.append(summary)
                return
            }
            for (key, child) in dict.items {
                path.append(key)
                try collect(child, path: &path, into: &found)
                path.removeLast()
            }
        case .list(let elements), .tuple(let elements):
            for (index, child) in elements.enumerated() {
                path.append(.int(Int64(index)))
                try collect(child, path: &path, into: &found)
                path.removeLast()
            }
        case .object, .record:
            for (key, child) in value.children {
                path.append(key)
                try collect(child, path: &path, into: &found)
                path.removeLast()
            }
        default:
            break
        }
    }

    /// The summary of a dict shaped like an optimizer state_dict, or nil.
    init?(_ dict: StateDict, path: [StateKey]) throws {
        guard dict.items.count == 2, case .dict(let state)? = dict["state"], case .list(let rawGroups)? = dict["param_groups"]
        else { return nil }
        var groups: [Group] = []
        for rawGroup in rawGroups {
            guard case .dict(let group) = rawGroup, case .list(let params)? = group["params"] else { return nil }
            var ids: [Int64] = []
            for param in params {
                guard case .int(let id) = param else { return nil }
                ids.append(id)
            }
            var names: [String]?
            if case .list(let rawNames)? = group["param_names"] {
                names = rawNames.compactMap { if case .string(let name) = $0 { name } else { nil } }
            }
            var hyperparameters = OrderedMap<String, StateValue>()
            for (key, option) in group.items where key != "params" && key != "param_names" {
                hyperparameters[key.description] = option
            }
            groups.append(Group(hyperparameters: hyperparameters, parameterIDs: ids, parameterNames: names))
        }
        self.path = path
        self.groups = groups
        stateKeys = [:]
        parametersWithState = 0
        stepRange = nil
        unreadSteps = 0
        stateTensorCount = 0
        stateTensorBytes = 0
        for (_, entry) in state.items {
            guard case .dict(let perParameter) = entry else { continue }
            parametersWithState += 1
            for (key, value) in perParameter.items {
                stateKeys[key.description, default: 0] += 1
                if key == "step" { try include(step: value) }
            }
            entry.forEachTensor { _, tensor in
                stateTensorCount += 1
                stateTensorBytes += tensor.byteCount
            }
        }
    }

    private mutating func include(step value: StateValue) throws {
        let step: Double
        switch value {
        case .int(let integer): step = Double(integer)
        case .float(let number): step = number
        case .tensor(let tensor) where tensor.numel == 1 && tensor.storage.byteCount <= Self.maximumStepStorageBytes:
            guard let number = try Self.stepValue(tensor) else {
                unreadSteps += 1
                return
            }
            step = number
        default:
            unreadSteps += 1
            return
        }
        guard !step.isNaN else {
            unreadSteps += 1
            return
        }
        if let range = stepRange {
            stepRange = min(range.lowerBound, step)...max(range.upperBound, step)
        } else {
            stepRange = step...step
        }
    }

    /// The one element of a `step` tensor, or nil for a complex one.
    private static func stepValue(_ tensor: Tensor) throws -> Double? {
        try tensor.withPackedBytes { bytes -> Double? in
            switch Tensor.element(bytes, at: 0, of: tensor.dtype) {
            case .signed(let value): return Double(value)
            case .unsigned(let value): return Double(value)
            case .real(let value): return value
            case .complex: return nil
            }
        }
    }
}

extension Tensor {
    /// Calls `body` with the logical elements packed row-major: the storage itself for a contiguous
    /// tensor, a gathered copy for a strided view.
    func withPackedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if isContiguous {
            let start = storageOffset * dtype.itemSize
            return try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<start + byteCount])) }
        }
        return try contiguousBytes().withUnsafeBytes(body)
    }
}
