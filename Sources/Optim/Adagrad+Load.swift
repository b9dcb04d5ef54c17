import Checkpoint
import OrderedCollections

extension Adagrad {
    /// Torch's `Adagrad.__setstate__`: groups saved before an option existed get its default
    /// (`foreach` None, `maximize` False, `differentiable` False, `fused` None, appended in that
    /// order), and a numeric `step` from an old checkpoint becomes a float32 0-dim tensor.
    func upgradeLoadedState(_ groups: inout [ParamGroup], state: inout OrderedDictionary<StateSlot, StateValue>) throws {
        let added: [(String, StateValue)] = [("foreach", .none), ("maximize", .bool(false)),
                                             ("differentiable", .bool(false)), ("fused", .none)]
        for index in groups.indices {
            for (key, value) in added where groups[index].options[key] == nil {
                groups[index].options[key] = value
            }
        }
        for (slot, value) in state {
            guard case .dict(var entry) = value, let step = entry["step"] else { continue }
            let number: Double
            switch step {
            case .int(let count): number = Double(count)
            case .float(let count): number = count
            case .bool(let flag): number = flag ? 1 : 0
            default: continue
            }
            entry["step"] = .tensor(try Tensor([Float(number)], shape: []))
            state[slot] = .dict(entry)
        }
    }
}
