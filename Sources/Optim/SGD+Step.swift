import Checkpoint

extension SGD {
    /// One parameter's share of a step: its gradient and momentum buffer, checked before anything
    /// is updated.
    private struct Work {
        let parameter: Parameter
        let grad: Gradient
        /// The buffer in the state; nil before the first step with momentum.
        let buffer: Tensor?
    }

    /// Torch's `SGD.step` after the closure: per group, collect the parameters with a gradient,
    /// check the configuration, update each through the path torch would take, and keep the
    /// momentum buffers in the state.
    func performSGDStep() throws {
        for index in paramGroups.indices {
            let group = paramGroups[index]
            let options = try SGDGroupOptions(group, index: index)
            let work = try parametersWithGradients(in: group, index: index, fused: options.fusedFlag).map { parameter, grad in
                try prepare(parameter, grad, options: options, groupIndex: index)
            }
            guard !work.isEmpty else { continue }
            try check(work, options)
            try update(work, options)
        }
    }

    /// torch's errors for the group, raised before any parameter changes (torch raises some of
    /// them only when it reaches the offending parameter).
    private func check(_ work: [Work], _ options: SGDGroupOptions) throws {
        if options.differentiable { throw OptimizerError.differentiableUnsupported }
        let hasSparse = work.contains { $0.grad.isSparse }
        let hasMomentum = options.hyper.momentum != 0
        if options.path == .fused {
            if hasSparse { throw OptimizerError(.unsupported, "`_fused_sgd` does not support sparse gradients") }
            // `is_first_step` is decided for the whole group; a None among buffers reaches the kernel.
            if hasMomentum, work.contains(where: { $0.buffer != nil }) {
                for members in Self.byDType(work) {
                    if let position = members.firstIndex(where: { $0.buffer == nil }) {
                        throw OptimizerError(.invalidType, "expected Tensor as element \(position) in argument 2, but got NoneType")
                    }
                }
            }
        }
        guard hasSparse else { return }
        if options.hyper.weightDecay != 0 {
            throw OptimizerError(.unsupported, "add(sparse, dense) is not supported. Use add(dense, sparse) instead.")
        }
        if hasMomentum {
            throw OptimizerError(
                .unsupported,
                "unsupported: momentum with a sparse gradient makes torch keep a sparse momentum_buffer, which ckpt's state cannot hold")
        }
        for item in work where item.grad.isSparse {
            let data = item.parameter.data
            guard ScalarRounding(data.dtype) != nil else {
                throw OptimizerError(.unsupported, "sparse gradients are supported for float32, float64, float16 and bfloat16 parameters, not \(data.dtype)")
            }
            try KernelBatch.checkContiguous(data, name: "param", optimizer: "SGD")
        }
    }

    /// Runs the group's updates: dense ones as one kernel batch, sparse ones after, then stores the
    /// new momentum buffers.
    private func update(_ work: [Work], _ options: SGDGroupOptions) throws {
        let hyper = options.hyper
        let hasMomentum = hyper.momentum != 0
        // The foreach path works per dtype: buffers are scaled by `_foreach_mul_` only when every
        // parameter of the dtype has one (else each by `buf.mul_`), and a sparse gradient sends the
        // dtype's parameters through per-tensor `add_` (the same bits).
        var scaledTogether = Set<DType>()
        for members in Self.byDType(work) where members.allSatisfy({ $0.buffer != nil }) {
            scaledTogether.insert(members[0].parameter.data.dtype)
        }
        let writesGrad = options.path == .forEach && hyper.nesterov && hasMomentum && !hyper.maximize && hyper.weightDecay == 0
        var dense: [SGDKernels.DenseUpdate] = []
        var created: [(Parameter, Tensor)] = []
        dense.reserveCapacity(work.count)
        for item in work {
            guard case .dense(let grad) = item.grad else { continue }
            let implementation: OptimizerImplementation = switch options.path {
            case .forEach: scaledTogether.contains(item.parameter.data.dtype) ? .forEach : .singleTensor
            case let path: path
            }
            var buffer = item.buffer
            if hasMomentum && buffer == nil {
                let fresh = try Tensor(zeros: item.parameter.data.dtype, shape: item.parameter.data.shape)
                created.append((item.parameter, fresh))
                buffer = fresh
            }
            dense.append(SGDKernels.DenseUpdate(
                param: item.parameter.data, grad: grad, buffer: hasMomentum ? buffer : nil, firstStep: item.buffer == nil,
                writesGrad: writesGrad, hyper: hyper, implementation: implementation))
        }
        try SGDKernels.denseUpdates(dense)
        for item in work {
            if case .sparse(let grad) = item.grad { try SGDSparseUpdate.apply(param: item.parameter.data, grad: grad, hyper: hyper) }
        }
        for (parameter, buffer) in created {
            var entry: StateDict = if case .dict(let existing)? = state(for: parameter) { existing } else { StateDict() }
            entry["momentum_buffer"] = .tensor(buffer)
            try setState(.dict(entry), for: parameter)
        }
    }

    /// The group's work split by parameter dtype, in order of first appearance (torch's
    /// `_group_tensors_by_device_and_dtype` on one device).
    private static func byDType(_ work: [Work]) -> [[Work]] {
        var order: [DType] = []
        var groups: [DType: [Work]] = [:]
        for item in work {
            let dtype = item.parameter.data.dtype
            if groups[dtype] == nil { order.append(dtype) }
            groups[dtype, default: []].append(item)
        }
        return order.map { groups[$0]! }
    }

    /// The parameter's momentum buffer, checked against it (torch reads it only when the group has
    /// momentum; a None, as torch before 2.0 saved it, is no buffer yet).
    private func prepare(_ parameter: Parameter, _ grad: Gradient, options: SGDGroupOptions, groupIndex: Int) throws -> Work {
        let path = "param_groups/\(groupIndex)"
        guard options.hyper.momentum != 0, case .dict(let entry)? = state(for: parameter) else {
            return Work(parameter: parameter, grad: grad, buffer: nil)
        }
        switch entry["momentum_buffer"] {
        case nil, .none?:
            return Work(parameter: parameter, grad: grad, buffer: nil)
        case .tensor(let buffer)?:
            let packed = try packedStateTensor(buffer, key: "momentum_buffer", in: entry, of: parameter, path: path)
            return Work(parameter: parameter, grad: grad, buffer: packed)
        case let other?:
            throw OptimizerError(.malformedStateDict, "SGD state `momentum_buffer` must be a tensor or None, found \(other.pythonTypeName)",
                                 path: "\(path)/momentum_buffer")
        }
    }
}

/// A group's SGD options read from its `StateValue`s (torch's `group["lr"]`, ...).
struct SGDGroupOptions {
    var hyper: SGDHyperparameters
    /// The path torch takes: `foreach` wins over `fused` (`sgd()` tests it first).
    var path: OptimizerImplementation
    /// `group["fused"]`, which makes `_init_group` check the first parameter's dtype whatever the path.
    var fusedFlag: Bool
    var differentiable: Bool

    init(_ group: ParamGroup, index: Int) throws {
        func number(_ key: String) throws -> Double { try group.number(key, optimizer: "SGD", index: index) }
        // A tensor learning rate enters every path as its value (`_to_scalar`, then `alpha=-lr`).
        hyper = SGDHyperparameters(
            lr: try number("lr"), momentum: try number("momentum"), dampening: try number("dampening"),
            weightDecay: try number("weight_decay"), nesterov: group["nesterov"]?.isTruthy ?? false,
            maximize: group["maximize"]?.isTruthy ?? false)
        fusedFlag = group["fused"]?.isTruthy ?? false
        path = group["foreach"]?.isTruthy ?? false ? .forEach : fusedFlag ? .fused : .singleTensor
        differentiable = group["differentiable"]?.isTruthy ?? false
    }
}
