import Checkpoint

extension TrainingState {
    /// Restores a saved training state into the objects this one holds: the model's weights, and
    /// in torch's documented order each scheduler's state, then the optimizer's (last, so that its
    /// loaded learning rates are the ones the run continues with).
    ///
    /// The tree is checked before anything changes: every key this state saves must be there, and
    /// a scheduler state saved by a run with schedulers must have a scheduler to go into (ignoring
    /// it would continue on another schedule). Extra keys (`epoch`, ...) are left to the caller.
    /// Each weight is copied into new storage, cast to its parameter's dtype (as torch's
    /// `param.copy_` casts), and replaces the parameter's ``Parameter/data``; the optimizer keeps
    /// its parameters, so their state follows. Nothing changes when it throws (unless one of the
    /// optimizer's load-state-dict post-hooks throws, after its state is in).
    ///
    /// - Parameters:
    ///   - state: A tree as ``stateDict(adding:)`` builds it, or as a torch user saves it.
    ///   - strict: As torch's `load_state_dict(strict:)` for the model: true requires the saved
    ///     weights and the model's parameters to have the same names; false loads the names both
    ///     have and skips the rest (a checkpoint with buffers, or a model with new layers).
    /// - Throws: ``OptimizerError`` `.malformedStateDict` whose ``OptimizerError/path`` names the
    ///   key (`scheduler`, `model/fc1.weight`, `optimizer/param_groups/0/params`,
    ///   `schedulers/1/_schedulers/0/last_epoch`), with what was expected and found: a key missing,
    ///   a state for a scheduler this state does not have, a weight of another shape; otherwise what
    ///   the schedulers' or the optimizer's `loadStateDict(_:)` throws (torch's messages), its key
    ///   path prefixed the same way; ``Checkpoint/CheckpointError`` when a weight cannot be read or cast.
    public func loadStateDict(_ state: StateValue, strict: Bool = true) throws {
        guard case .dict(let tree) = state else {
            throw OptimizerError(.malformedStateDict, "a training state must be a dict, found \(state.pythonTypeName)")
        }
        let weights = try savedWeights(tree, strict: strict)
        let schedulerStates = try savedSchedulerStates(tree)
        let optimizerState = try entry(Self.optimizerKey, of: tree, holding: "the optimizer's state dict")

        // Scheduler states load all or nothing each, and the optimizer's puts back its own groups
        // and state when it fails; what is left to undo is a scheduler loaded before a failure.
        let previous = schedulers.map { $0.stateDict() }
        do {
            for (index, (scheduler, saved)) in zip(schedulers, schedulerStates).enumerated() {
                try Self.prefixingPaths(schedulerPath(index)) { try scheduler.loadStateDict(saved) }
            }
            try Self.prefixingPaths(Self.optimizerKey) { try optimizer.loadStateDict(optimizerState) }
        } catch {
            for (scheduler, state) in zip(schedulers, previous) { try? scheduler.loadStateDict(state) }
            throw error
        }
        for (parameter, tensor) in weights { parameter.data = tensor }
    }

    /// The key path of scheduler `index` in the tree.
    private func schedulerPath(_ index: Int) -> String {
        schedulerEntry == Self.schedulersKey ? "\(Self.schedulersKey)/\(index)" : Self.schedulerKey
    }

    /// `tree[key]`, or an error naming the key, what it should hold and the keys there are.
    private func entry(_ key: String, of tree: StateDict, holding expected: String) throws -> StateValue {
        guard let value = tree[.string(key)] else {
            let keys = tree.map { "'\($0.key)'" }.joined(separator: ", ")
            throw OptimizerError(
                .malformedStateDict, "missing: expected \(expected), found only \(keys.isEmpty ? "no keys" : keys)", path: key)
        }
        return value
    }

    /// The saved weights, each checked against its parameter and copied, ready to install.
    private func savedWeights(_ tree: StateDict, strict: Bool) throws -> [(Parameter, Tensor)] {
        guard !model.isEmpty else { return [] }
        let value = try entry(Self.modelKey, of: tree, holding: "the model's weights (name → tensor)")
        guard case .dict(let saved) = value else {
            throw OptimizerError(.malformedStateDict, "expected a dict of name → tensor, found \(value.pythonTypeName)", path: Self.modelKey)
        }
        var weights: [(Parameter, Tensor)] = []
        for parameter in model {
            let key = StateKey.string(parameter.name!)
            let path = "\(Self.modelKey)/\(key.pathComponent)"
            guard let value = saved[key] else {
                if !strict { continue }
                throw OptimizerError(
                    .malformedStateDict, "missing from the saved model (it has \(saved.count) weights); load with strict: false to skip it",
                    path: path)
            }
            guard case .tensor(let tensor) = value else {
                throw OptimizerError(.malformedStateDict, "expected a tensor, found \(value.pythonTypeName)", path: path)
            }
            let current = parameter.data
            guard tensor.shape == current.shape else {
                throw OptimizerError(
                    .malformedStateDict,
                    "size mismatch for \(parameter.name!): copying a param with shape torch.Size(\(tensor.shape)) from checkpoint, "
                        + "the shape in current model is torch.Size(\(current.shape)).", path: path)
            }
            var copy: Tensor
            do {
                copy = tensor.dtype == current.dtype ? try tensor.contiguousCopy() : try tensor.cast(to: current.dtype)
            } catch var error as CheckpointError {
                error.path = error.path ?? path
                throw error
            }
            copy.requiresGrad = current.requiresGrad
            copy.isParameter = current.isParameter
            weights.append((parameter, copy))
        }
        if strict {
            let names = Set(model.map { StateKey.string($0.name!) })
            if let unexpected = saved.first(where: { !names.contains($0.key) }) {
                throw OptimizerError(
                    .malformedStateDict, "unexpected: no model parameter has this name; load with strict: false to skip it",
                    path: "\(Self.modelKey)/\(unexpected.key.pathComponent)")
            }
        }
        return weights
    }

    /// One saved state per scheduler, in order, from the entry this state saves them under.
    private func savedSchedulerStates(_ tree: StateDict) throws -> [StateValue] {
        let single = tree[.string(Self.schedulerKey)], list = tree[.string(Self.schedulersKey)]
        switch schedulerEntry {
        case nil:
            // A torch user without a scheduler may save `"scheduler": None`.
            for (key, value) in [(Self.schedulerKey, single), (Self.schedulersKey, list)] {
                guard let value, value != StateValue.none else { continue }
                throw OptimizerError(
                    .malformedStateDict,
                    "the saved run had a learning-rate schedule, and this training state has no scheduler to restore it into; "
                        + "build the scheduler as the saved run did and pass it, or the run continues on another schedule",
                    path: key)
            }
            return []
        case Self.schedulerKey?:
            if single == nil, case .list(let states)? = list {
                throw OptimizerError(
                    .malformedStateDict,
                    "missing: the state saves its schedulers as '\(Self.schedulersKey)' (a list of \(states.count)); "
                        + "build the training state with schedulers: [...]", path: Self.schedulerKey)
            }
            return [try entry(Self.schedulerKey, of: tree, holding: "the scheduler's state dict")]
        default:
            if list == nil, single != nil {
                throw OptimizerError(
                    .malformedStateDict,
                    "missing: the state saves one scheduler as '\(Self.schedulerKey)'; build the training state with scheduler:",
                    path: Self.schedulersKey)
            }
            let value = try entry(Self.schedulersKey, of: tree, holding: "a list of the schedulers' state dicts")
            guard case .list(let states) = value else {
                throw OptimizerError(.malformedStateDict, "expected a list, found \(value.pythonTypeName)", path: Self.schedulersKey)
            }
            guard states.count == schedulers.count else {
                throw OptimizerError(
                    .malformedStateDict,
                    "expected \(schedulers.count) scheduler states (one per scheduler, in order), found \(states.count)",
                    path: Self.schedulersKey)
            }
            return states
        }
    }

    /// Runs `body`, putting `prefix` in front of the key path of an error it throws.
    private static func prefixingPaths(_ prefix: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch var error as OptimizerError {
            error.path = error.path.map { "\(prefix)/\($0)" } ?? prefix
            throw error
        } catch var error as CheckpointError {
            error.path = error.path.map { "\(prefix)/\($0)" } ?? prefix
            throw error
        }
    }
}
