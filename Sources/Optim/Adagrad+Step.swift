import Checkpoint

extension Adagrad {
    /// One parameter's share of a step: its tensors, checked before anything is updated.
    private struct Work {
        let parameter: Parameter
        let grad: Gradient
        let step: Tensor
        let sum: Tensor
    }

    /// Torch's `Adagrad.step` after the closure: per group, collect the parameters with a
    /// gradient, check the configuration, then update each through the path torch would take.
    func performAdagradStep() throws {
        for index in paramGroups.indices {
            let group = paramGroups[index]
            let options = try AdagradGroupOptions(group, index: index)
            let work = try parametersWithGradients(in: group, index: index, fused: options.fused).map { parameter, grad in
                try prepare(parameter, grad, group: group, groupIndex: index)
            }
            guard !work.isEmpty else { continue }
            let hasSparse = work.contains { $0.grad.isSparse }
            let hasComplex = work.contains { $0.parameter.data.dtype.isComplex }
            if options.fused {
                if hasSparse || hasComplex {
                    throw OptimizerError(.unsupported, "`fused` does not support sparse grad or complex param")
                }
                if options.differentiable {
                    throw OptimizerError(.unsupported, "adagrad with fused=True does not support differentiable=True")
                }
            }
            if options.differentiable { throw OptimizerError.differentiableUnsupported }
            if hasSparse && options.weightDecay != 0 {
                throw OptimizerError(.unsupported, "weight_decay option is not compatible with sparse gradients")
            }
            // The foreach path sends a whole dtype bucket to the single-tensor path when any
            // gradient in it is sparse.
            let sparseDTypes = Set(work.filter { $0.grad.isSparse }.map { $0.parameter.data.dtype })
            let implementations = work.map { item -> OptimizerImplementation in
                options.fused ? .fused
                    : options.foreach && !sparseDTypes.contains(item.parameter.data.dtype) ? .forEach : .singleTensor
            }
            // Checked before any `step` moves, so a rejected operand leaves the state as it was.
            // (Indices, not `for item in work`: copying a Work retains ten references.)
            for index in work.indices {
                if case .dense(let grad) = work[index].grad {
                    try AdagradKernels.checkOperands(
                        param: work[index].parameter.data, grad: grad, sum: work[index].sum, implementation: implementations[index])
                }
            }
            // Dense parameters are updated together, so small tensors share the cores; sparse
            // ones touch no dense parameter's memory and run on their own.
            var denseUpdates: [AdagradKernels.DenseUpdate] = []
            denseUpdates.reserveCapacity(work.count)
            for index in work.indices {
                let step = try work[index].step.incrementSingleValue()
                let hyper = try options.hyperparameters(step: step, implementation: implementations[index])
                switch work[index].grad {
                case .dense(let grad):
                    denseUpdates.append(AdagradKernels.DenseUpdate(
                        param: work[index].parameter.data, grad: grad, sum: work[index].sum, step: Float(step),
                        hyper: hyper, implementation: implementations[index]))
                case .sparse(let grad):
                    try AdagradSparseUpdate.apply(
                        param: work[index].parameter.data, grad: grad, sum: work[index].sum, step: step, hyper: hyper)
                }
            }
            try AdagradKernels.denseUpdates(denseUpdates)
        }
    }

    /// Checks one parameter's state against it, giving fresh state to a parameter that has none
    /// (torch 2.15 would create it lazily here too).
    private func prepare(_ parameter: Parameter, _ grad: Gradient, group: ParamGroup, groupIndex: Int) throws -> Work {
        let path = "param_groups/\(groupIndex)"
        if state(for: parameter) == nil, let fresh = try initialState(for: parameter, in: group) {
            try setState(fresh, for: parameter)
        }
        guard case .dict(let entry)? = state(for: parameter),
              case .tensor(let step)? = entry["step"], case .tensor(let sum)? = entry["sum"] else {
            throw OptimizerError(.malformedStateDict, "Adagrad state must hold tensors `step` and `sum`", path: path)
        }
        guard step.numel == 1 else {
            throw CheckpointError(.typeMismatch, "state `step` must hold one element", path: "\(path)/step",
                                  expected: "shape []", found: "\(step.shape)")
        }
        let packed = try packedStateTensor(sum, key: "sum", in: entry, of: parameter, path: path)
        return Work(parameter: parameter, grad: grad, step: step, sum: packed)
    }
}

/// A group's Adagrad options read from its `StateValue`s (torch's `group["lr"]`, ...).
struct AdagradGroupOptions {
    var lr: StateValue
    var lrDecay: Double
    var weightDecay: Double
    var eps: Double
    var foreach: Bool
    var maximize: Bool
    var differentiable: Bool
    var fused: Bool

    init(_ group: ParamGroup, index: Int) throws {
        func number(_ key: String) throws -> Double { try group.number(key, optimizer: "Adagrad", index: index) }
        lr = group["lr"] ?? .none
        _ = try number("lr")
        lrDecay = try number("lr_decay")
        weightDecay = try number("weight_decay")
        eps = try number("eps")
        foreach = group["foreach"]?.isTruthy ?? false
        maximize = group["maximize"]?.isTruthy ?? false
        differentiable = group["differentiable"]?.isTruthy ?? false
        fused = group["fused"]?.isTruthy ?? false
    }

    /// The kernel's options for one parameter at `step` (already incremented).
    ///
    /// A tensor learning rate makes torch compute the decayed rate as tensor arithmetic in the
    /// tensor's dtype on the unfused paths; that rate is passed with no further decay so the
    /// kernel uses it as is. The fused kernel reads the tensor as a double.
    func hyperparameters(step: Double, implementation: OptimizerImplementation) throws -> AdagradHyperparameters {
        var hyper = AdagradHyperparameters(lr: 0, lrDecay: lrDecay, weightDecay: weightDecay, eps: eps, maximize: maximize)
        switch lr {
        case .tensor(let tensor):
            let rate = try tensor.singleValue()
            if implementation == .fused || tensor.dtype == .float64 {
                hyper.lr = rate
            } else {
                hyper.lr = Double(Float(rate) / Float(1 + (step - 1) * lrDecay))
                hyper.lrDecay = 0
            }
        case .float(let value): hyper.lr = value
        case .int(let value): hyper.lr = Double(value)
        default: hyper.lr = 0
        }
        return hyper
    }
}
