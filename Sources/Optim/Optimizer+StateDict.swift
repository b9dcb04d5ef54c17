import Checkpoint
import OrderedCollections

extension Optimizer {
    /// The optimizer's state as torch's `Optimizer.state_dict()` shapes it:
    /// `["state": {int id: per-parameter dict}, "param_groups": [group dicts with "params": [ids]]]`.
    ///
    /// Ids are positions counted across groups in order; group keys keep their order with `params`
    /// last; tensors share storage with the optimizer (as torch returns references, not copies).
    /// State-dict pre-hooks run first; post-hooks may replace the result.
    ///
    /// - Returns: A `.dict` ready for ``Checkpoint/StateValue/write(to:format:options:)``.
    public func stateDict() -> StateValue {
        for hook in Array(stateDictPreHooks.hooks.values) { hook(self) }

        var ids: [ObjectIdentifier: Int64] = [:]
        var start: Int64 = 0
        var packedGroups: [StateValue] = []
        for group in paramGroups {
            // Within one group a repeated parameter takes its last position, as torch's dict
            // comprehension does; one already numbered by an earlier group keeps its id.
            var groupIDs: [ObjectIdentifier: Int64] = [:]
            for (offset, parameter) in group.params.enumerated() where ids[ObjectIdentifier(parameter)] == nil {
                groupIDs[ObjectIdentifier(parameter)] = start + Int64(offset)
            }
            ids.merge(groupIDs) { current, _ in current }
            var packed = StateDict()
            for (key, value) in group.options { packed[.string(key)] = value }
            packed["params"] = .list(group.params.compactMap { ids[ObjectIdentifier($0)].map(StateValue.int) })
            packedGroups.append(.dict(packed))
            start += Int64(group.params.count)
        }
        var packedState = StateDict()
        for (slot, value) in stateEntries {
            switch slot {
            case .parameter(let identity):
                if let id = ids[identity] { packedState[.int(id)] = value }
            case .unmatched(let key):
                packedState[key] = value
            }
        }
        var result: StateValue = .dict(["state": .dict(packedState), "param_groups": .list(packedGroups)])
        for hook in Array(stateDictPostHooks.hooks.values) {
            if let replacement = hook(self, result) { result = replacement }
        }
        return result
    }

    /// Loads a state dict with torch's `load_state_dict` rules.
    ///
    /// Saved ids are matched to parameters purely by position; `step` is kept as saved (cast to
    /// float32 only when the saved group is fused or capturable); other tensors are cast to a
    /// floating parameter's dtype; the saved groups' options replace the current ones; current
    /// `param_names` survive only when the saved groups have none; then the subclass's
    /// ``upgradeLoadedState()`` runs (torch's `__setstate__`). Unlike torch, a parameter without
    /// saved state gets fresh state instead of none. Nothing changes if loading throws before the
    /// post-hooks. Load-state-dict pre-hooks may replace the dict first; post-hooks run after.
    /// Until the next ``step()`` the loaded group options are remembered, so that a learning-rate
    /// scheduler built in between reports overwriting them (``LoadOrderCheck``).
    ///
    /// - Parameter stateDict: A dict as ``stateDict()`` or torch's `state_dict()` returns.
    /// - Throws: ``OptimizerError`` with torch's message when the group count or a group's size
    ///   differs; `.malformedStateDict` (with the key path) when the dict is not shaped like an
    ///   optimizer's; what ``upgradeLoadedState()`` or a hook throws; ``CheckpointError`` (with the
    ///   key path) when a saved tensor cannot be read or cast.
    public func loadStateDict(_ stateDict: StateValue) throws {
        var stateDict = stateDict
        for hook in Array(loadStateDictPreHooks.hooks.values) {
            if let replacement = try hook(self, stateDict) { stateDict = replacement }
        }
        guard case .dict(let root) = stateDict else {
            throw OptimizerError(.malformedStateDict, "an optimizer state dict must be a dict, found \(stateDict.pythonTypeName)")
        }
        guard case .list(let savedGroupValues)? = root["param_groups"] else {
            throw OptimizerError(.malformedStateDict, "missing or not a list", path: "param_groups")
        }
        guard case .dict(let savedState)? = root["state"] else {
            throw OptimizerError(.malformedStateDict, "missing or not a dict", path: "state")
        }
        var savedGroups: [(options: OrderedDictionary<StateKey, StateValue>, ids: [StateKey])] = []
        for (index, value) in savedGroupValues.enumerated() {
            guard case .dict(let group) = value else {
                throw OptimizerError(.malformedStateDict, "a parameter group must be a dict", path: "param_groups/\(index)")
            }
            guard case .list(let idValues)? = group["params"] else {
                throw OptimizerError(.malformedStateDict, "missing or not a list", path: "param_groups/\(index)/params")
            }
            let ids = try idValues.map { value -> StateKey in
                switch value {
                case .int(let id): return .int(id)
                case .string(let id): return .string(id)
                default:
                    throw OptimizerError(.malformedStateDict, "a parameter id must be an int, found \(value.pythonTypeName)",
                                         path: "param_groups/\(index)/params")
                }
            }
            savedGroups.append((group.items, ids))
        }

        guard paramGroups.count == savedGroups.count else {
            throw OptimizerError(.invalidValue, "loaded state dict has a different number of parameter groups")
        }
        guard zip(paramGroups, savedGroups).allSatisfy({ $0.params.count == $1.ids.count }) else {
            throw OptimizerError(.invalidValue, "loaded state dict contains a parameter group that doesn't match the size of optimizer's group")
        }

        var parameterForID: [StateKey: Parameter] = [:]
        for (saved, current) in zip(savedGroups, paramGroups) {
            for (id, parameter) in zip(saved.ids, current.params) { parameterForID[id] = parameter }
        }
        var newState: OrderedDictionary<StateSlot, StateValue> = [:]
        for (key, value) in savedState.items {
            guard let parameter = parameterForID[key] else {
                newState[.unmatched(key)] = value
                continue
            }
            let stepPolicy = stepCastPolicy(forID: key, in: savedGroups)
            newState[.parameter(ObjectIdentifier(parameter))] = try Optimizer.cast(
                value, to: parameter, stepToFloat32: stepPolicy, key: nil, path: "state/\(key)")
        }

        var newGroups: [ParamGroup] = []
        for (current, saved) in zip(paramGroups, savedGroups) {
            var options = OrderedMap<String, StateValue>()
            for (key, value) in saved.options where key != "params" {
                guard case .string(let name) = key else {
                    throw OptimizerError(.malformedStateDict, "a parameter group key must be a string, found \(key)", path: "param_groups")
                }
                // torch deep-copies the saved groups: a tensor `lr` must not stay tied to the caller's dict.
                options[name] = try Optimizer.deepCopy(value)
            }
            if options["param_names"] == nil, let names = current.options["param_names"] {
                options["param_names"] = names
            }
            newGroups.append(ParamGroup(params: current.params, options: options))
        }
        let replaced = (paramGroups, stateEntries)
        paramGroups = newGroups
        stateEntries = newState
        do {
            try upgradeLoadedState()
            for group in paramGroups {
                for parameter in group.params where stateEntries[.parameter(ObjectIdentifier(parameter))] == nil {
                    if let fresh = try initialState(for: parameter, in: group) {
                        stateEntries[.parameter(ObjectIdentifier(parameter))] = fresh
                    }
                }
            }
        } catch {
            (paramGroups, stateEntries) = replaced
            throw error
        }

        for hook in Array(loadStateDictPostHooks.hooks.values) { try hook(self) }
        loadedOptions = paramGroups.map(\.options)
    }

    /// A copy of a tree whose tensors own their bytes (Python's `deepcopy`).
    static func deepCopy(_ value: StateValue) throws -> StateValue {
        switch value {
        case .tensor(let tensor): return .tensor(try tensor.contiguousCopy())
        case .dict(var dict):
            for (key, child) in dict.items { dict.items[key] = try deepCopy(child) }
            return .dict(dict)
        case .list(let items): return .list(try items.map(deepCopy))
        case .tuple(let items): return .tuple(try items.map(deepCopy))
        case .set(let items): return .set(try items.map(deepCopy))
        default: return value
        }
    }

    /// True when the saved group holding `id` is fused or capturable: then torch casts `step`
    /// to float32 on load (PR #102619); otherwise `step` keeps its saved dtype (issue #74424).
    private func stepCastPolicy(
        forID id: StateKey, in groups: [(options: OrderedDictionary<StateKey, StateValue>, ids: [StateKey])]
    ) -> Bool {
        guard let group = groups.first(where: { $0.ids.contains(id) }) else { return false }
        return (group.options["fused"]?.isTruthy ?? false) || (group.options["capturable"]?.isTruthy ?? false)
    }

    /// Torch's `_cast`: tensors follow the parameter policy, dicts recurse with their keys,
    /// lists, tuples and sets recurse without a key; other values are kept (strings included,
    /// which torch would mangle).
    static func cast(_ value: StateValue, to parameter: Parameter, stepToFloat32: Bool, key: String?, path: String) throws -> StateValue {
        switch value {
        case .tensor(let tensor):
            let target: DType? = if key == "step" {
                stepToFloat32 ? .float32 : nil
            } else {
                parameter.data.dtype.isFloatingPoint ? parameter.data.dtype : nil
            }
            // `Tensor.to` returns the tensor itself when the dtype already matches: storage stays shared.
            guard let target, target != tensor.dtype else { return value }
            do {
                return .tensor(try tensor.cast(to: target))
            } catch var error as CheckpointError {
                error.path = error.path ?? path
                throw error
            }
        case .dict(var dict):
            for (childKey, child) in dict.items {
                let name: String? = if case .string(let text) = childKey { text } else { nil }
                dict.items[childKey] = try cast(child, to: parameter, stepToFloat32: stepToFloat32, key: name, path: "\(path)/\(childKey)")
            }
            return .dict(dict)
        case .list(let items):
            return .list(try castElements(items, parameter, stepToFloat32, path))
        case .tuple(let items):
            return .tuple(try castElements(items, parameter, stepToFloat32, path))
        case .set(let items):
            return .set(try castElements(items, parameter, stepToFloat32, path))
        default:
            return value
        }
    }

    private static func castElements(_ items: [StateValue], _ parameter: Parameter, _ stepToFloat32: Bool, _ path: String) throws -> [StateValue] {
        try items.enumerated().map { index, item in
            try cast(item, to: parameter, stepToFloat32: stepToFloat32, key: nil, path: "\(path)/\(index)")
        }
    }
}

extension StateValue {
    /// Python's truth value (`bool(v)`).
    var isTruthy: Bool {
        switch self {
        case .bool(let flag): return flag
        case .int(let number): return number != 0
        case .float(let number): return number != 0
        case .none: return false
        case .string(let text): return !text.isEmpty
        case .list(let items), .tuple(let items), .set(let items): return !items.isEmpty
        case .dict(let dict): return !dict.items.isEmpty
        case .bytes(let bytes), .bytearray(let bytes): return !bytes.isEmpty
        case .size(let dims): return !dims.isEmpty
        case .complex(let real, let imaginary): return real != 0 || imaginary != 0
        case .tensor, .device, .dtype: return true
        // A Python object is true unless its class says otherwise, which a placeholder cannot ask.
        case .object: return true
        // Namespace, paths, dates and dtypes have no __bool__ or __len__; a zero timedelta is false.
        case .record(let record):
            return record.kind != .timedelta || record.attributes.contains { $0.value != .int(0) }
        }
    }
}
