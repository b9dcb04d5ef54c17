import CKernels
import Checkpoint
import Foundation

/// The per-group Adagrad options that enter the arithmetic of one step.
public struct AdagradHyperparameters: Sendable {
    /// Learning rate before decay.
    public var lr: Double
    /// The rate is divided by `1 + (step - 1) * lrDecay`.
    public var lrDecay: Double
    /// L2 penalty: `weightDecay * param` is added to the gradient.
    public var weightDecay: Double
    /// Added to the square root of the accumulator, keeping the division finite.
    public var eps: Double
    /// Ascend the objective instead of descending it.
    public var maximize: Bool

    /// Creates the options with PyTorch's defaults.
    ///
    /// - Parameters:
    ///   - lr: Learning rate.
    ///   - lrDecay: Learning-rate decay per step.
    ///   - weightDecay: L2 penalty added to the gradient.
    ///   - eps: Added to the square root of the accumulator.
    ///   - maximize: Ascend instead of descend.
    public init(lr: Double = 1e-2, lrDecay: Double = 0, weightDecay: Double = 0, eps: Double = 1e-10, maximize: Bool = false) {
        self.lr = lr
        self.lrDecay = lrDecay
        self.weightDecay = weightDecay
        self.eps = eps
        self.maximize = maximize
    }
}

/// Adagrad's dense update, rounding exactly as PyTorch's CPU kernels do.
///
/// The arithmetic lives in CKernels (adagrad.c), which records per path and dtype how torch rounds:
/// the FMAs GCC formed in ATen's kernels, which scalars an op casts to float16/bfloat16 first, the
/// scalar tails of parallel chunks, and MKL's square root for torch.sqrt. Some of that depends on the
/// CPU torch runs on (MKL's kernel choice, torch's thread count); ``TorchRounding`` describes it, so
/// results match torch run on the same kind of machine.
enum AdagradKernels {
    /// One parameter's dense update, as ``denseUpdates(_:)`` takes it.
    struct DenseUpdate {
        /// The parameter; contiguous, updated in place.
        let param: Tensor
        /// Its gradient, same dtype and shape (any strides).
        let grad: Tensor
        /// The squared-gradient accumulator, same dtype and shape, contiguous, updated in place.
        let sum: Tensor
        /// The step count after this step's increment.
        let step: Float
        /// The group's options.
        let hyper: AdagradHyperparameters
        /// The PyTorch path whose rounding to reproduce.
        let implementation: OptimizerImplementation
    }

    /// Updates one dense parameter in place as PyTorch's `implementation` does.
    ///
    /// Large tensors are split over the machine's cores; nothing is allocated unless `grad` is a
    /// strided view or shares a storage with `param` or `sum` (it is then gathered once).
    ///
    /// - Parameters:
    ///   - param: The parameter; contiguous, updated in place.
    ///   - grad: Its gradient, same dtype and shape (any strides).
    ///   - sum: The squared-gradient accumulator, same dtype and shape, contiguous, updated in place.
    ///   - step: The step count after this step's increment.
    ///   - hyper: The group's options.
    ///   - implementation: The PyTorch path whose rounding to reproduce.
    /// - Throws: ``CheckpointError`` `.typeMismatch` when dtypes or shapes differ or the dtype is
    ///   not floating or complex, `.invalidArgument` when `param` or `sum` is not contiguous or
    ///   they share a storage, `.unsupported` for a complex parameter on the fused path (as torch).
    static func denseUpdate(
        param: Tensor, grad: Tensor, sum: Tensor, step: Float,
        hyper: AdagradHyperparameters, implementation: OptimizerImplementation
    ) throws {
        try denseUpdates([DenseUpdate(param: param, grad: grad, sum: sum, step: step, hyper: hyper, implementation: implementation)])
    }

    /// Updates several dense parameters in place, each as ``denseUpdate(param:grad:sum:step:hyper:implementation:)``
    /// would, with the work of all of them spread over the machine's cores in one parallel loop
    /// (so a step over many small tensors keeps every core busy).
    ///
    /// Every operand is checked before anything is written. Parameters whose storages overlap
    /// another's (a shared `param` or `sum` storage, or a gradient viewing another parameter's
    /// tensors) are updated one after another in order instead, as torch does, so each sees the
    /// earlier updates.
    ///
    /// - Parameter updates: The parameters and their options.
    /// - Throws: As ``denseUpdate(param:grad:sum:step:hyper:implementation:)``, for the first
    ///   update that fails its checks; nothing is updated then.
    static func denseUpdates(_ updates: [DenseUpdate]) throws {
        // Indices rather than `for update in updates`: each copy of an update retains nine references.
        for index in updates.indices {
            try checkOperands(param: updates[index].param, grad: updates[index].grad, sum: updates[index].sum,
                              implementation: updates[index].implementation)
        }
        let rounding = TorchRounding.current, isa = TorchRounding.instructionSet
        let operands = updates.indices.map { KernelOperands(param: updates[$0].param, grad: updates[$0].grad, state: [updates[$0].sum]) }
        try KernelBatch.run(operands, range: ckpt_adagrad_task_range) { index, count, pointers in
            var task = ckpt_adagrad_task()
            task.scalar = KernelBatch.scalarType(updates[index].param.dtype)
            task.path = KernelBatch.kernelPath(updates[index].implementation)
            task.param = pointers.param
            task.grad = UnsafeRawPointer(pointers.grad)
            task.sum = pointers.state[0]
            task.options = kernelOptions(updates[index], realCount: count, rounding: rounding, isa: isa)
            return task
        }
    }

    /// The scalars torch's kernels receive for one update of `realCount` real elements, rounded as
    /// `rounding` says torch rounds them.
    private static func kernelOptions(_ update: DenseUpdate, realCount: Int, rounding: TorchRounding, isa: ckpt_isa) -> ckpt_adagrad_options {
        kernelOptions(hyper: update.hyper, step: update.step, implementation: update.implementation,
                      complex: update.param.dtype.isComplex, realCount: realCount, rounding: rounding, isa: isa)
    }

    /// The kernel options of one update from its parts (tests call the kernels with them directly).
    static func kernelOptions(
        hyper: AdagradHyperparameters, step: Float, implementation: OptimizerImplementation, complex: Bool,
        realCount: Int, rounding: TorchRounding, isa: ckpt_isa
    ) -> ckpt_adagrad_options {
        var options = ckpt_adagrad_options()
        options.clr = decayedLearningRate(lr: hyper.lr, lrDecay: hyper.lrDecay, step: step, implementation: implementation)
        options.eps = hyper.eps
        options.weight_decay = hyper.weightDecay
        options.maximize = hyper.maximize ? 1 : 0
        options.numel = Int64(realCount)
        options.add_chunk = Int64(rounding.parallelChunk(realCount))
        options.complex_weight_decay = complex && implementation == .singleTensor ? 1 : 0
        options.sqrt_f32_kind = rounding.sqrtF32
        options.sqrt_f64_kind = rounding.sqrtF64
        options.isa = isa
        return options
    }

    /// `lr / (1 + (step - 1) * lr_decay)` in double, as torch computes it: in Python on the unfused
    /// paths, and in C++ built with contraction on the fused path, where the denominator is one FMA.
    static func decayedLearningRate(lr: Double, lrDecay: Double, step: Float, implementation: OptimizerImplementation) -> Double {
        let elapsed = Double(step) - 1
        if implementation == .fused { return lr / (1 as Double).addingProduct(elapsed, lrDecay) }
        return lr / (1 + elapsed * lrDecay)
    }

    static func checkOperands(param: Tensor, grad: Tensor, sum: Tensor, implementation: OptimizerImplementation) throws {
        // Plain comparisons rather than collections: this runs for every tensor of every step.
        try KernelBatch.checkFloatingOrComplex(param, optimizer: "Adagrad")
        if implementation == .fused && param.dtype.isComplex {
            throw CheckpointError(.unsupported, "`fused` does not support sparse grad or complex param", found: "\(param.dtype)")
        }
        try KernelBatch.checkMatches(grad, param, name: "grad")
        try KernelBatch.checkMatches(sum, param, name: "sum")
        try KernelBatch.checkContiguous(param, name: "param", optimizer: "Adagrad")
        try KernelBatch.checkContiguous(sum, name: "sum", optimizer: "Adagrad")
        guard param.storage !== sum.storage else {
            throw CheckpointError(.invalidArgument, "param and sum share a storage", path: "sum",
                                  expected: "separate storages", found: "one storage")
        }
    }
}
