import Checkpoint
import OrderedCollections

/// A tree after renaming, with what the renaming did.
public struct RenamedStateDict: Sendable {
    /// The renamed tree.
    public var value: StateValue
    /// What happened to the model's keys, or nil when the tree holds no model state dict.
    public var model: RenameReport?
    /// What happened to the optimizer's `param_names`, or nil when the tree holds no optimizer state dict.
    public var optimizer: RenameReport?
}

extension RenameMap {
    /// The keys under which a checkpoint holds its model and optimizer state dicts
    /// (`{"model": ..., "optimizer": ...}`, or the PyTorch tutorial's `*_state_dict` spelling).
    public static let modelKeys = ["model", "model_state_dict", "state_dict"]
    /// See ``modelKeys``.
    public static let optimizerKeys = ["optimizer", "optimizer_state_dict"]

    /// Renames a checkpoint: the keys of its model state dict and the `param_names` of its
    /// optimizer state dict, with one map, so both stay consistent.
    ///
    /// The tree is a dict holding a model state dict under one of ``modelKeys`` and/or an optimizer
    /// state dict under one of ``optimizerKeys``; or an optimizer state dict itself (a dict with
    /// `state` and `param_groups`); or a model state dict itself (string keys). A strict map fails
    /// only for a rule that applies to neither the model's keys nor the optimizer's names.
    ///
    /// - Parameter tree: The checkpoint's tree.
    /// - Returns: The renamed tree and a report for each part found.
    /// - Throws: ``RenameError``: a collision or unmatched strict rule naming the rule;
    ///   `.malformedStateDict` for a tree that is not a dict, a model part with a non-string key, or
    ///   an optimizer part not shaped like torch's.
    public func renameCheckpoint(_ tree: StateValue) throws -> RenamedStateDict {
        guard case .dict(var root) = tree else {
            throw RenameError(
                .malformedStateDict, "a checkpoint to rename must be a dict, found \(tree.pythonTypeName)")
        }
        if RenameMap.isOptimizerStateDict(tree) {
            let (value, report, outcomes) = try renameOptimizer(tree, checkStrict: false)
            try checkStrictRules(used: outcomes)
            return RenamedStateDict(value: value, model: nil, optimizer: report)
        }
        let modelKey = RenameMap.modelKeys.first { root[.string($0)] != nil }
        let optimizerKey = RenameMap.optimizerKeys.first {
            root[.string($0)].map(RenameMap.isOptimizerStateDict) ?? false
        }
        guard modelKey != nil || optimizerKey != nil else {
            let (value, report, outcomes) = try renameModel(tree, checkStrict: false, path: "")
            try checkStrictRules(used: outcomes)
            return RenamedStateDict(value: value, model: report, optimizer: nil)
        }
        var result = RenamedStateDict(value: tree, model: nil, optimizer: nil)
        var used: [Outcome] = []
        if let modelKey, let model = root[.string(modelKey)] {
            let (value, report, outcomes) = try renameModel(model, checkStrict: false, path: modelKey)
            root[.string(modelKey)] = value
            result.model = report
            used += outcomes
        }
        if let optimizerKey, let optimizer = root[.string(optimizerKey)] {
            let (value, report, outcomes) = try renameOptimizer(optimizer, checkStrict: false, path: optimizerKey)
            root[.string(optimizerKey)] = value
            result.optimizer = report
            used += outcomes
        }
        try checkStrictRules(used: used)
        result.value = .dict(root)
        return result
    }

    /// Renames the keys of a model state dict (`model.state_dict()`), keeping its order, its
    /// OrderedDict-ness and its `_metadata`, whose module prefixes follow their keys (see
    /// docs/RENAME.md).
    ///
    /// - Parameter stateDict: A dict with string keys.
    /// - Returns: The renamed dict and the report.
    /// - Throws: ``RenameError`` for a collision, an unmatched rule of a strict map, or a non-string key.
    public func renameModelStateDict(_ stateDict: StateValue) throws -> (value: StateValue, report: RenameReport) {
        let (value, report, _) = try renameModel(stateDict, checkStrict: true, path: "")
        return (value, report)
    }

    /// Renames the `param_names` of an optimizer state dict; a dropped name takes its id out of
    /// its group and its state out of `state`, and ids are renumbered by position, as torch numbers them.
    ///
    /// - Parameter stateDict: A dict as `optimizer.state_dict()` returns.
    /// - Returns: The renamed dict and the report (positional, unchanged, when no group has `param_names`).
    /// - Throws: ``RenameError`` for a collision, an unmatched rule of a strict map, or a dict not
    ///   shaped like an optimizer's.
    public func renameOptimizerStateDict(_ stateDict: StateValue) throws -> (value: StateValue, report: RenameReport) {
        let (value, report, _) = try renameOptimizer(stateDict, checkStrict: true)
        return (value, report)
    }

    static func isOptimizerStateDict(_ value: StateValue) -> Bool {
        guard case .dict(let dict) = value else { return false }
        return dict["state"] != nil && dict["param_groups"] != nil
    }

    /// Fails for the first rule of a strict map that no outcome used.
    func checkStrictRules(used outcomes: [Outcome]) throws {
        let used = Set(outcomes.flatMap(\.rules))
        for (stageIndex, stage) in stages.enumerated() where stage.strict {
            for index in stage.rules.indices where !used.contains(reference(stage: stageIndex, rule: index)) {
                let rule = reference(stage: stageIndex, rule: index)
                throw RenameError(.unmatchedRule, "\(rule) matches no name (the map is strict)", rule: rule)
            }
        }
    }

    func renameModel(_ stateDict: StateValue, checkStrict: Bool, path: String) throws -> (
        StateValue, RenameReport, [Outcome]
    ) {
        guard case .dict(let dict) = stateDict else {
            throw RenameError(
                .malformedStateDict, "a model state dict must be a dict, found \(stateDict.pythonTypeName)",
                path: path.isEmpty ? nil : path)
        }
        var names: [String] = []
        for key in dict.items.keys {
            guard case .string(let name) = key else {
                throw RenameError(
                    .malformedStateDict, "a model state dict key must be a string, found the int \(key)",
                    path: path.isEmpty ? nil : path)
            }
            names.append(name)
        }
        let outcomes = try checkStrict ? apply(to: names) : apply(to: names, checkingStrictRules: false)
        var report = RenameReport()
        report.record(outcomes)
        var renamed = StateDict(isOrderedDict: dict.isOrderedDict, attributes: dict.attributes)
        for (outcome, value) in zip(outcomes, dict.items.values) {
            if let result = outcome.result { renamed[.string(result)] = value }
        }
        if case .dict(let metadata)? = dict.attributes["_metadata"] {
            renamed.attributes["_metadata"] = .dict(renameMetadata(metadata, outcomes: outcomes, report: &report))
        }
        return (.dict(renamed), report, outcomes)
    }

    /// Renames `_metadata`'s module prefixes after their keys: a prefix whose surviving keys all
    /// moved under one new module path takes that path; one whose keys were all dropped is dropped;
    /// a module without keys is renamed as the name `prefix.`; otherwise it is kept, with a note.
    private func renameMetadata(_ metadata: StateDict, outcomes: [Outcome], report: inout RenameReport) -> StateDict {
        // The keys below each module prefix, found in one pass over the keys' dotted prefixes.
        var keysBelow: [String: [Int]] = [:]
        for (index, outcome) in outcomes.enumerated() {
            let name = outcome.name
            var start = name.startIndex
            while let dot = name[start...].firstIndex(of: ".") {
                keysBelow[String(name[..<dot]), default: []].append(index)
                start = name.index(after: dot)
            }
        }
        var renamed = StateDict(isOrderedDict: metadata.isOrderedDict, attributes: metadata.attributes)
        for (key, value) in metadata.items {
            guard case .string(let prefix) = key, !prefix.isEmpty else {
                renamed[key] = value
                continue
            }
            let below = (keysBelow[prefix] ?? []).map { outcomes[$0] }
            var target: String? = prefix
            if below.isEmpty {
                let moved = outcome(for: prefix + ".")
                target = moved.result.map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 }
            } else if below.allSatisfy({ $0.result == nil }) {
                target = nil
            } else {
                var candidates = Set<String>()
                for item in below {
                    guard let result = item.result else { continue }
                    let depth = item.name.utf8.count - prefix.utf8.count - 1
                    let tail = String(decoding: item.name.utf8.suffix(depth), as: UTF8.self).split(
                        separator: ".", omittingEmptySubsequences: false
                    ).count
                    let parts = result.split(separator: ".", omittingEmptySubsequences: false)
                    candidates.insert(parts.count > tail ? parts.dropLast(tail).joined(separator: ".") : "")
                }
                if candidates.count == 1, let only = candidates.first, !only.isEmpty {
                    target = only
                } else {
                    report.notes.append(
                        "_metadata: kept the module prefix \"\(prefix)\": its keys moved to different modules")
                }
            }
            guard let target else {
                report.notes.append("_metadata: dropped the module prefix \"\(prefix)\" with its keys")
                continue
            }
            if renamed[.string(target)] != nil {
                report.notes.append(
                    "_metadata: kept the first entry for \"\(target)\"; \"\(prefix)\" would have replaced it")
                continue
            }
            if target != prefix { report.notes.append("_metadata: \"\(prefix)\" -> \"\(target)\"") }
            renamed[.string(target)] = value
        }
        return renamed
    }

    /// `renumber`: after drops, make ids positions again (a file to save); a load hook keeps them.
    func renameOptimizer(
        _ stateDict: StateValue, checkStrict: Bool, renumber: Bool = true, path: String = ""
    ) throws -> (StateValue, RenameReport, [Outcome]) {
        let base = path.isEmpty ? "" : path + "/"
        var saved = try SavedOptimizerState(stateDict, path: path)
        var report = RenameReport()
        guard saved.hasNames else {
            report.matching = .positional(reason: "the saved parameter groups carry no param_names; nothing to rename")
            return (stateDict, report, [])
        }
        let names = saved.groups.flatMap { $0.names ?? [] }
        let outcomes: [Outcome]
        do {
            outcomes = try checkStrict ? apply(to: names) : apply(to: names, checkingStrictRules: false)
        } catch var error as RenameError {
            error.path = error.path ?? "\(base)param_groups"
            throw error
        }
        report.record(outcomes)
        var next = outcomes.makeIterator()
        var droppedIDs = Set<StateKey>()
        for index in saved.groups.indices {
            var ids: [StateKey] = []
            var renamedNames: [String] = []
            for id in saved.groups[index].ids {
                guard let outcome = next.next() else { continue }
                if let result = outcome.result {
                    ids.append(id)
                    renamedNames.append(result)
                } else {
                    droppedIDs.insert(id)
                }
            }
            saved.groups[index].ids = ids
            saved.groups[index].names = renamedNames
        }
        for id in droppedIDs { saved.state[id] = nil }
        if renumber, !droppedIDs.isEmpty { saved.renumber() }
        return (saved.packed(), report, outcomes)
    }
}

extension RenameMap {
    /// ``apply(to:)`` with the strict-rule check left to the caller (a checkpoint checks the union
    /// of its model's and optimizer's names).
    func apply(to names: [String], checkingStrictRules: Bool) throws -> [Outcome] {
        guard !checkingStrictRules else { return try apply(to: names) }
        let relaxed = RenameMap(stages: stages.map { Stage(rules: $0.rules, strict: false) })
        return try relaxed.apply(to: names)
    }
}

/// An optimizer state dict taken apart: its groups (options, ids, names) and its state.
struct SavedOptimizerState {
    struct Group {
        var options: StateDict
        var ids: [StateKey]
        var names: [String]?
    }

    var root: StateDict
    var groups: [Group]
    var state: OrderedDictionary<StateKey, StateValue>

    /// True when every group has `param_names`.
    var hasNames: Bool { groups.allSatisfy { $0.names != nil } }

    /// - Throws: ``RenameError`` `.malformedStateDict` naming the key path, or `.duplicateName`.
    init(_ value: StateValue, path: String) throws {
        let base = path.isEmpty ? "" : path + "/"
        guard case .dict(let root) = value else {
            throw RenameError(
                .malformedStateDict, "an optimizer state dict must be a dict, found \(value.pythonTypeName)",
                path: path.isEmpty ? nil : path)
        }
        guard case .list(let groupValues)? = root["param_groups"] else {
            throw RenameError(.malformedStateDict, "missing or not a list", path: "\(base)param_groups")
        }
        guard case .dict(let state)? = root["state"] else {
            throw RenameError(.malformedStateDict, "missing or not a dict", path: "\(base)state")
        }
        self.root = root
        self.state = state.items
        groups = []
        for (index, groupValue) in groupValues.enumerated() {
            let groupPath = "\(base)param_groups/\(index)"
            guard case .dict(let options) = groupValue else {
                throw RenameError(.malformedStateDict, "a parameter group must be a dict", path: groupPath)
            }
            guard case .list(let idValues)? = options["params"] else {
                throw RenameError(.malformedStateDict, "missing or not a list", path: "\(groupPath)/params")
            }
            let ids = try idValues.map { value -> StateKey in
                switch value {
                case .int(let id): return .int(id)
                case .string(let id): return .string(id)
                default:
                    throw RenameError(
                        .malformedStateDict, "a parameter id must be an int, found \(value.pythonTypeName)",
                        path: "\(groupPath)/params")
                }
            }
            var names: [String]?
            if let nameValue = options["param_names"] {
                guard case .list(let items) = nameValue else {
                    throw RenameError(
                        .malformedStateDict, "param_names must be a list, found \(nameValue.pythonTypeName)",
                        path: "\(groupPath)/param_names")
                }
                names = try items.map { item in
                    guard case .string(let name) = item else {
                        throw RenameError(
                            .malformedStateDict, "a parameter name must be a str, found \(item.pythonTypeName)",
                            path: "\(groupPath)/param_names")
                    }
                    return name
                }
                guard names?.count == ids.count else {
                    throw RenameError(
                        .malformedStateDict, "\(items.count) param_names for \(ids.count) params",
                        path: "\(groupPath)/param_names")
                }
            }
            groups.append(Group(options: options, ids: ids, names: names))
        }
        if groups.contains(where: { $0.names != nil }) && !hasNames {
            throw RenameError(
                .malformedStateDict, "some parameter groups have param_names and some do not",
                path: "\(base)param_groups")
        }
    }

    /// Ids become positions across groups again (after drops), the state keyed accordingly.
    mutating func renumber() {
        var newID: [StateKey: StateKey] = [:]
        var next: Int64 = 0
        for index in groups.indices {
            groups[index].ids = groups[index].ids.map { id in
                if let known = newID[id] { return known }
                defer { next += 1 }
                newID[id] = .int(next)
                return .int(next)
            }
        }
        var renumbered = OrderedDictionary<StateKey, StateValue>()
        for (key, value) in state { renumbered[newID[key] ?? key] = value }
        state = renumbered
    }

    /// The dict again, with the root's other keys and each group's other options kept in place.
    func packed() -> StateValue {
        var root = self.root
        var packedGroups: [StateValue] = []
        for group in groups {
            var options = group.options
            if let names = group.names { options["param_names"] = .list(names.map(StateValue.string)) }
            options["params"] = .list(
                group.ids.map { id in
                    switch id {
                    case .int(let number): return .int(number)
                    case .string(let text): return .string(text)
                    }
                })
            packedGroups.append(.dict(options))
        }
        root["param_groups"] = .list(packedGroups)
        var state = StateDict()
        if case .dict(let original)? = self.root["state"] {
            state = StateDict(isOrderedDict: original.isOrderedDict, attributes: original.attributes)
        }
        state.items = self.state
        root["state"] = .dict(state)
        return .dict(root)
    }
}
