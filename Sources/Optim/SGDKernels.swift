import CKernels
import Checkpoint

/// The per-group SGD options that enter the arithmetic of one step.
struct SGDHyperparameters: Sendable {
    var lr: Double
    var momentum: Double = 0
    var dampening: Double = 0
    var weightDecay: Double = 0
    var nesterov = false
    var maximize = false
}

/// SGD's dense update, rounding exactly as PyTorch's CPU kernels do (CKernels' sgd.c, run through
/// ``KernelBatch``). The only machine-dependent part is where torch's threads split float16/bfloat16
/// tensors, which ``TorchRounding`` gives.
enum SGDKernels {
    /// One parameter's dense update, as ``denseUpdates(_:)`` takes it.
    struct DenseUpdate {
        /// The parameter; contiguous, updated in place.
        let param: Tensor
        /// Its gradient, same dtype and shape (any strides); written when ``writesGrad``.
        let grad: Tensor
        /// The momentum buffer (nil when momentum is 0), same dtype and shape, contiguous, updated in place.
        let buffer: Tensor?
        /// The buffer holds nothing yet: this step fills it with the (decayed) gradient.
        let firstStep: Bool
        /// torch's foreach path with Nesterov, without maximize or weight decay, writes
        /// `grad + momentum * buf` into the gradient itself.
        let writesGrad: Bool
        let hyper: SGDHyperparameters
        /// The kernel path: `.forEach` only where torch's in-place `_foreach_mul_` scales the
        /// buffers (every parameter of the dtype had one), `.singleTensor` for `buf.mul_`.
        let implementation: OptimizerImplementation
    }

    /// Updates several dense parameters in place, each as torch's path does, spread over the
    /// machine's cores in one parallel loop (parameters whose storages overlap run one after
    /// another in order).
    ///
    /// - Parameter updates: The parameters, their buffers and options.
    /// - Throws: ``CheckpointError`` for the first update whose operands do not fit (wrong dtype or
    ///   shape, a strided parameter or buffer, a buffer sharing the parameter's storage); nothing
    ///   is updated then.
    static func denseUpdates(_ updates: [DenseUpdate]) throws {
        for index in updates.indices {
            try checkOperands(param: updates[index].param, grad: updates[index].grad, buffer: updates[index].buffer,
                              implementation: updates[index].implementation)
        }
        let rounding = TorchRounding.current, isa = TorchRounding.instructionSet
        let operands = updates.indices.map { index in
            KernelOperands(param: updates[index].param, grad: updates[index].grad,
                           state: updates[index].buffer.map { [$0] } ?? [], writesGrad: updates[index].writesGrad)
        }
        try KernelBatch.run(operands, range: ckpt_sgd_task_range) { index, count, pointers in
            var task = ckpt_sgd_task()
            task.scalar = KernelBatch.scalarType(updates[index].param.dtype)
            task.path = KernelBatch.kernelPath(updates[index].implementation)
            task.param = pointers.param
            task.grad = pointers.grad
            task.momentum_buffer = pointers.state.first
            task.options = kernelOptions(updates[index], realCount: count, rounding: rounding, isa: isa)
            return task
        }
    }

    /// The scalars and flags torch's kernels run one update with.
    static func kernelOptions(_ update: DenseUpdate, realCount: Int, rounding: TorchRounding, isa: ckpt_isa) -> ckpt_sgd_options {
        var options = ckpt_sgd_options()
        options.lr = update.hyper.lr
        options.momentum = update.hyper.momentum
        options.dampening = update.hyper.dampening
        options.weight_decay = update.hyper.weightDecay
        options.maximize = update.hyper.maximize ? 1 : 0
        options.nesterov = update.hyper.nesterov ? 1 : 0
        options.first_step = update.firstStep ? 1 : 0
        options.complex = update.param.dtype.isComplex ? 1 : 0
        options.write_grad = update.writesGrad ? 1 : 0
        options.numel = Int64(realCount)
        options.add_chunk = Int64(rounding.parallelChunk(realCount))
        options.isa = isa
        return options
    }

    static func checkOperands(param: Tensor, grad: Tensor, buffer: Tensor?, implementation: OptimizerImplementation) throws {
        try KernelBatch.checkFloatingOrComplex(param, optimizer: "SGD")
        if implementation == .fused && param.dtype.isComplex {
            throw CheckpointError(.unsupported, "\"fused_sgd_kernel\" not implemented for complex parameters", found: "\(param.dtype)")
        }
        try KernelBatch.checkMatches(grad, param, name: "grad")
        try KernelBatch.checkContiguous(param, name: "param", optimizer: "SGD")
        guard let buffer else { return }
        try KernelBatch.checkMatches(buffer, param, name: "momentum_buffer")
        try KernelBatch.checkContiguous(buffer, name: "momentum_buffer", optimizer: "SGD")
        guard param.storage !== buffer.storage else {
            throw CheckpointError(.invalidArgument, "param and momentum_buffer share a storage", path: "momentum_buffer",
                                  expected: "separate storages", found: "one storage")
        }
    }
}
