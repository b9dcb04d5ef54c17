import Checkpoint
import OrderedCollections

/// What name-based loading does with saved state that does not fit its parameter.
public enum StateMismatchPolicy: Sendable, Equatable {
    /// Throw ``RenameError`` `.stateMismatch` naming the parameter.
    case error
    /// Give the parameter fresh state and list it in ``RenameReport/reinitialized``.
    case reinitialize
}

extension Optimizer {
    /// Registers a load-state-dict pre-hook that renames the saved groups' `param_names` with a
    /// map (dropping a name drops its id and state), so a later name-based pre-hook matches the new
    /// names. Ids are kept as saved, so errors about `state/<id>` point into the caller's dict.
    ///
    /// - Parameters:
    ///   - map: The renames, old names to new.
    ///   - prepend: Run before the pre-hooks already registered.
    ///   - onReport: Receives what was renamed and dropped, at each load.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public func registerRenamePreHook(
        _ map: RenameMap, prepend: Bool = false, onReport: ((RenameReport) -> Void)? = nil
    ) -> HookHandle {
        registerLoadStateDictPreHook(
            { _, stateDict in
                let (renamed, report, _) = try map.renameOptimizer(stateDict, checkStrict: true, renumber: false)
                onReport?(report)
                return renamed
            }, prepend: prepend)
    }

    /// Registers a load-state-dict pre-hook that matches saved state to the current parameters by
    /// `param_names` instead of position.
    ///
    /// The hook rewrites the dict into the current optimizer's layout, which the positional loader
    /// then loads: ids are the current positions; each current group takes the options of the saved
    /// group that held most of its matched parameters (the earliest on a tie; its own options when
    /// none matched) and the current `param_names`; saved state moves to its parameter's new id;
    /// state of unexpected names is left out; parameters without saved state get fresh state.
    /// When the saved groups or the current parameters have no names, the dict is left to torch's
    /// positional rule and the report says so.
    ///
    /// - Parameters:
    ///   - strict: Fail on current parameters without saved state or saved names without a parameter.
    ///   - onMismatch: What to do with saved state whose tensors (other than `step`) have another
    ///     shape or dtype than the parameter.
    ///   - prepend: Run before the pre-hooks already registered.
    ///   - onReport: Receives matched, missing, unexpected and re-initialized names, at each load.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public func registerNameBasedLoadPreHook(
        strict: Bool = true, onMismatch: StateMismatchPolicy = .error, prepend: Bool = false,
        onReport: ((RenameReport) -> Void)? = nil
    ) -> HookHandle {
        registerLoadStateDictPreHook(
            { optimizer, stateDict in
                let (rewritten, report) = try optimizer.matchingSavedStateByName(
                    stateDict, strict: strict, onMismatch: onMismatch)
                onReport?(report)
                return rewritten
            }, prepend: prepend)
    }

    /// Loads a state dict saved for another version of the model: renames its `param_names` with
    /// `map`, then matches state to parameters by name (both as pre-hooks, after any already registered).
    ///
    /// - Parameters:
    ///   - stateDict: A dict as ``stateDict()`` or torch's `state_dict()` returns.
    ///   - map: Renames from the saved names to the current ones.
    ///   - strict: Fail on missing or unexpected names (default); false loads what matches.
    ///   - onMismatch: Fail on a shape or dtype mismatch (default), or re-initialize that parameter's state.
    /// - Returns: The combined report.
    /// - Throws: ``RenameError`` naming the rule or parameter; what ``loadStateDict(_:)`` throws.
    ///   Nothing changes if loading throws.
    @discardableResult
    public func loadStateDict(
        _ stateDict: StateValue, renaming map: RenameMap, strict: Bool = true, onMismatch: StateMismatchPolicy = .error
    ) throws -> RenameReport {
        var renames = RenameReport()
        var matches = RenameReport()
        let handles = [
            registerRenamePreHook(map) { renames = $0 },
            registerNameBasedLoadPreHook(strict: strict, onMismatch: onMismatch) { matches = $0 },
        ]
        defer { for handle in handles { handle.remove() } }
        try loadStateDict(stateDict)
        matches.renamed = renames.renamed
        matches.dropped = renames.dropped
        matches.notes = renames.notes + matches.notes
        return matches
    }

    /// The name-based rewrite behind ``registerNameBasedLoadPreHook(strict:onMismatch:prepend:onReport:)``.
    func matchingSavedStateByName(
        _ stateDict: StateValue, strict: Bool, onMismatch: StateMismatchPolicy
    ) throws -> (StateValue?, RenameReport) {
        var report = RenameReport()
        let saved = try SavedOptimizerState(stateDict, path: "")
        guard saved.hasNames else {
            report.matching = .positional(reason: "the saved parameter groups carry no param_names")
            return (nil, report)
        }
        let currentNames = paramGroups.map(\.paramNames)
        guard currentNames.allSatisfy({ $0 != nil }) else {
            report.matching = .positional(reason: "the optimizer's parameters have no names")
            return (nil, report)
        }

        var savedByName: [String: (group: Int, id: StateKey)] = [:]
        for (groupIndex, group) in saved.groups.enumerated() {
            for (name, id) in zip(group.names ?? [], group.ids) {
                guard savedByName.updateValue((groupIndex, id), forKey: name) == nil else {
                    throw RenameError(
                        .duplicateName, "the saved parameter name \"\(name)\" occurs twice",
                        path: "param_groups/\(groupIndex)/param_names")
                }
            }
        }
        var currentSet = Set<String>()
        for (groupIndex, names) in currentNames.enumerated() {
            for name in names ?? [] where !currentSet.insert(name).inserted {
                throw RenameError(
                    .duplicateName, "the optimizer has two parameters named \"\(name)\"",
                    path: "param_groups/\(groupIndex)/param_names")
            }
        }

        for name in currentNames.flatMap({ $0 ?? [] }) {
            if savedByName[name] != nil { report.matched.append(name) } else { report.missing.append(name) }
        }
        let savedNames = saved.groups.flatMap { $0.names ?? [] }
        report.unexpected = savedNames.filter { !currentSet.contains($0) }
        if strict, !report.missing.isEmpty || !report.unexpected.isEmpty {
            var parts: [String] = []
            if !report.missing.isEmpty { parts.append("no saved state for \(quoted(report.missing))") }
            if !report.unexpected.isEmpty { parts.append("saved state for unknown names \(quoted(report.unexpected))") }
            throw RenameError(
                report.missing.isEmpty ? .unexpectedNames : .missingNames,
                "strict name-based loading: " + parts.joined(separator: "; ")
                    + " (load with strict: false to skip them)")
        }

        var state = StateDict()
        var packedGroups: [StateValue] = []
        var nextID: Int64 = 0
        for group in paramGroups {
            let names = group.paramNames ?? []
            var ids: [StateValue] = []
            var votes: [Int: Int] = [:]
            for (parameter, name) in zip(group.params, names) {
                let id = nextID
                nextID += 1
                ids.append(.int(id))
                guard let source = savedByName[name] else { continue }
                votes[source.group, default: 0] += 1
                guard let entry = saved.state[source.id] else { continue }
                if let mismatch = Optimizer.mismatch(entry, parameter: parameter) {
                    switch onMismatch {
                    case .error:
                        throw RenameError(
                            .stateMismatch, "the saved state of parameter \"\(name)\" does not fit it: \(mismatch)",
                            path: "state/\(source.id)")
                    case .reinitialize:
                        report.reinitialized.append(name)
                        continue
                    }
                }
                state[.int(id)] = entry
            }
            let chosen = votes.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key
            var options: StateDict
            if let chosen {
                options = saved.groups[chosen].options
            } else {
                options = StateDict()
                for (key, value) in group.options { options[.string(key)] = value }
            }
            options["params"] = nil
            options["param_names"] = .list(names.map(StateValue.string))
            options["params"] = .list(ids)
            packedGroups.append(.dict(options))
        }
        var root = saved.root
        root["state"] = .dict(state)
        root["param_groups"] = .list(packedGroups)
        let reinitialized = Set(report.reinitialized)
        report.matched.removeAll { reinitialized.contains($0) }
        return (.dict(root), report)
    }

    /// Why saved per-parameter state cannot belong to `parameter`, or nil: a tensor (other than
    /// `step`) with another shape or dtype.
    static func mismatch(_ entry: StateValue, parameter: Parameter, key: String? = nil, path: String = "") -> String? {
        switch entry {
        case .tensor(let tensor):
            guard key != "step" else { return nil }
            if tensor.shape != parameter.data.shape {
                return
                    "\(path.isEmpty ? "a tensor" : path) has shape \(tensor.shape), the parameter \(parameter.data.shape)"
            }
            if tensor.dtype != parameter.data.dtype {
                return
                    "\(path.isEmpty ? "a tensor" : path) has dtype \(tensor.dtype.rawValue), the parameter \(parameter.data.dtype.rawValue)"
            }
            return nil
        case .dict(let dict):
            for (childKey, child) in dict.items {
                let name: String? = if case .string(let text) = childKey { text } else { nil }
                if let found = mismatch(
                    child, parameter: parameter, key: name, path: path.isEmpty ? "\(childKey)" : "\(path)/\(childKey)")
                {
                    return found
                }
            }
            return nil
        case .list(let items), .tuple(let items):
            for (index, item) in items.enumerated() {
                if let found = mismatch(item, parameter: parameter, path: "\(path)/\(index)") { return found }
            }
            return nil
        default:
            return nil
        }
    }

    private func quoted(_ names: [String]) -> String {
        names.map { "\"\($0)\"" }.joined(separator: ", ")
    }
}
