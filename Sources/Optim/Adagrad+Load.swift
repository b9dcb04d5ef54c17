import Checkpoint

extension Adagrad {
    /// Torch's `Adagrad.__setstate__`: groups saved before an option existed get its default
    /// (`foreach` None, `maximize` False, `differentiable` False, `fused` None, appended in that
    /// order), and a numeric `step` from an old checkpoint becomes a float32 0-dim tensor. As in
    /// torch, which walks `self.state.values()`, state kept for saved ids without a parameter is
    /// upgraded too.
    func addNewerOptionsAndTensorSteps() throws {
        let added: [(String, StateValue)] = [("foreach", .none), ("maximize", .bool(false)),
                                             ("differentiable", .bool(false)), ("fused", .none)]
        for index in paramGroups.indices {
            for (key, value) in added where paramGroups[index].options[key] == nil {
                paramGroups[index].options[key] = value
            }
        }
        for (slot, value) in stateEntries {
            guard case .dict(var entry) = value, let step = entry["step"] else { continue }
            let number: Double
            switch step {
            case .int(let count): number = Double(count)
            case .float(let count): number = count
            case .bool(let flag): number = flag ? 1 : 0
            default: continue
            }
            entry["step"] = .tensor(try Tensor([Float(number)], shape: []))
            stateEntries[slot] = .dict(entry)
        }
    }
}
