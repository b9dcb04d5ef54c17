import Checkpoint

// The momentum CyclicLR and OneCycleLR cycle against the learning rate: an optimizer's `momentum`,
// or the first of Adam's `betas`.

extension Optimizer {
    /// torch's check before cycling momentum: the optimizer's defaults must have `momentum` or `betas`.
    ///
    /// - Returns: True when beta1 is the momentum (`betas` in the defaults).
    /// - Throws: ``OptimizerError`` with torch's message when it has neither.
    func cyclesBeta1() throws -> Bool {
        guard defaults["momentum"] != nil || defaults["betas"] != nil else {
            throw OptimizerError(.invalidValue, "optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
        }
        return defaults["betas"] != nil
    }
}

extension ParamGroup {
    /// Sets the momentum a scheduler cycles: `momentum`, or the first of Adam's `betas`.
    mutating func setMomentum(_ value: Double, beta1: Bool, group index: Int) throws {
        guard beta1 else {
            options["momentum"] = .float(value)
            return
        }
        switch options["betas"] {
        case .tuple(let betas)?: options["betas"] = .tuple([.float(value)] + betas.dropFirst())
        case .list(let betas)?: options["betas"] = .list([.float(value)] + betas.dropFirst())
        case nil:
            throw OptimizerError(.invalidValue, "param_groups[\(index)] has no 'betas'", path: "param_groups/\(index)/betas")
        case let other?:
            throw OptimizerError(.invalidType, "'betas' must be a tuple, found \(other.pythonTypeName)", path: "param_groups/\(index)/betas")
        }
    }
}

extension [ParamGroup] {
    /// What constructing a momentum-cycling scheduler writes into each group: the momentum set to
    /// its maximum, and `max_momentum` and `base_momentum` entries.
    mutating func startMomentumCycle(max: [Double], base: [Double], beta1: Bool) throws {
        for index in indices {
            try self[index].setMomentum(max[index], beta1: beta1, group: index)
            self[index].options["max_momentum"] = .float(max[index])
            self[index].options["base_momentum"] = .float(base[index])
        }
    }
}
