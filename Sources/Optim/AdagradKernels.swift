import CKernels
import Checkpoint
import Foundation

/// Which of PyTorch's three Adagrad code paths to reproduce. They round differently, so a
/// trajectory is only bit-identical to torch's when both use the same path.
public enum AdagradImplementation: Sendable {
    /// `foreach=False`, torch's default on CPU: one ATen op per tensor per formula step.
    case singleTensor
    /// `foreach=True`: the `_foreach_*` ops, which scale the gradient by `-clr` before dividing.
    case forEach
    /// `fused=True`: `torch._fused_adagrad_`, one pass per element.
    case fused
}

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
        let implementation: AdagradImplementation
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
        hyper: AdagradHyperparameters, implementation: AdagradImplementation
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
        guard updates.count > 1 else {
            try run(updates)
            return
        }
        var written = Set<ObjectIdentifier>(minimumCapacity: 2 * updates.count)
        var independent = true
        for index in updates.indices {
            independent = written.insert(ObjectIdentifier(updates[index].param.storage)).inserted && independent
            independent = written.insert(ObjectIdentifier(updates[index].sum.storage)).inserted && independent
        }
        for index in updates.indices where independent {
            let grad = updates[index].grad.storage
            guard written.contains(ObjectIdentifier(grad)) else { continue }
            // A gradient viewing its own parameter or accumulator is copied first (in `run`);
            // one viewing another parameter's must see that parameter already updated.
            independent = grad === updates[index].param.storage || grad === updates[index].sum.storage
        }
        if independent {
            try run(updates)
        } else {
            for update in updates { try run([update]) }
        }
    }

    /// Elements in one unit of parallel work: a 64K-element tensor is one unit; larger tensors are
    /// split. A multiple of every dtype's elements per 64-byte cache line.
    static let batchChunk = 1 << 16

    /// Below this many elements in all, a batch runs on the calling thread: waking a worker
    /// costs more than it saves.
    static let parallelThreshold = 1 << 17

    /// Hands checked, non-overlapping updates to the C kernels as one batch.
    private static func run(_ updates: [DenseUpdate]) throws {
        var tasks: [ckpt_adagrad_task] = []
        tasks.reserveCapacity(updates.count)
        let rounding = TorchRounding.current, isa = TorchRounding.instructionSet
        var gathered: [Tensor] = []
        for index in updates.indices {
            let dtype = updates[index].param.dtype
            let realCount = updates[index].param.numel * (dtype.isComplex ? 2 : 1)
            guard realCount > 0 else { continue }
            let item = dtype.itemSize
            // The storages stay alive (and owned memory never moves) while `updates` and
            // `gathered` are alive, which outlasts the batch below.
            let paramOffset = updates[index].param.storageOffset * item, sumOffset = updates[index].sum.storageOffset * item
            let p = try updates[index].param.storage.withUnsafeMutableBytes { $0.baseAddress.map { $0 + paramOffset } }
            let s = try updates[index].sum.storage.withUnsafeMutableBytes { $0.baseAddress.map { $0 + sumOffset } }
            // A gradient viewing param's or sum's storage would be read while they are written.
            let gradStorage = updates[index].grad.storage
            let g: UnsafeRawPointer?
            if updates[index].grad.isContiguous && gradStorage !== updates[index].param.storage && gradStorage !== updates[index].sum.storage {
                let gradOffset = updates[index].grad.storageOffset * item
                g = try gradStorage.withUnsafeBytes { $0.baseAddress.map { UnsafeRawPointer($0 + gradOffset) } }
            } else {
                let gradient = try updates[index].grad.contiguousCopy()
                gathered.append(gradient)
                g = try gradient.storage.withUnsafeBytes { $0.baseAddress.map { UnsafeRawPointer($0 + gradient.storageOffset * item) } }
            }
            guard let p, let s, let g else { continue }
            var task = ckpt_adagrad_task()
            task.scalar = scalarType(dtype)
            task.path = kernelPath(updates[index].implementation)
            task.param = p
            task.grad = g
            task.sum = s
            task.count = Int64(realCount)
            task.options = kernelOptions(updates[index], realCount: realCount, rounding: rounding, isa: isa)
            tasks.append(task)
        }
        withExtendedLifetime((updates, gathered)) {
            tasks.withUnsafeMutableBufferPointer { buffer in
                ckpt_adagrad_batch(buffer.baseAddress, Int64(buffer.count), Int64(batchChunk), Int64(parallelThreshold))
            }
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
        hyper: AdagradHyperparameters, step: Float, implementation: AdagradImplementation, complex: Bool,
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

    static func kernelPath(_ implementation: AdagradImplementation) -> ckpt_adagrad_path {
        switch implementation {
        case .singleTensor: CKPT_ADAGRAD_SINGLE_TENSOR
        case .forEach: CKPT_ADAGRAD_FOREACH
        case .fused: CKPT_ADAGRAD_FUSED
        }
    }

    /// The kernels' element type; checkOperands admits only these dtypes.
    private static func scalarType(_ dtype: DType) -> ckpt_scalar_type {
        switch dtype {
        case .float64, .complex128: CKPT_SCALAR_F64
        case .float16: CKPT_SCALAR_F16
        case .bfloat16: CKPT_SCALAR_BF16
        default: CKPT_SCALAR_F32
        }
    }

    /// `lr / (1 + (step - 1) * lr_decay)` in double, as torch computes it: in Python on the unfused
    /// paths, and in C++ built with contraction on the fused path, where the denominator is one FMA.
    static func decayedLearningRate(lr: Double, lrDecay: Double, step: Float, implementation: AdagradImplementation) -> Double {
        let elapsed = Double(step) - 1
        if implementation == .fused { return lr / (1 as Double).addingProduct(elapsed, lrDecay) }
        return lr / (1 + elapsed * lrDecay)
    }

    static func checkOperands(param: Tensor, grad: Tensor, sum: Tensor, implementation: AdagradImplementation) throws {
        // Plain comparisons rather than collections: this runs for every tensor of every step.
        switch param.dtype {
        case .float32, .float64, .float16, .bfloat16, .complex64, .complex128: break
        default:
            throw CheckpointError(
                .typeMismatch, "Adagrad needs a floating-point or complex parameter",
                expected: "float32, float64, float16, bfloat16, complex64 or complex128", found: "\(param.dtype)")
        }
        if implementation == .fused && param.dtype.isComplex {
            throw CheckpointError(.unsupported, "`fused` does not support sparse grad or complex param", found: "\(param.dtype)")
        }
        try checkMatches(grad, param, name: "grad")
        try checkMatches(sum, param, name: "sum")
        try checkContiguous(param, name: "param")
        try checkContiguous(sum, name: "sum")
        guard param.storage !== sum.storage else {
            throw CheckpointError(.invalidArgument, "param and sum share a storage", path: "sum",
                                  expected: "separate storages", found: "one storage")
        }
    }

    private static func checkMatches(_ other: Tensor, _ param: Tensor, name: String) throws {
        guard other.dtype == param.dtype else {
            throw CheckpointError(.typeMismatch, "\(name) dtype differs from the parameter's", path: name,
                                  expected: "\(param.dtype)", found: "\(other.dtype)")
        }
        guard other.shape == param.shape else {
            throw CheckpointError(.typeMismatch, "\(name) shape differs from the parameter's", path: name,
                                  expected: "\(param.shape)", found: "\(other.shape)")
        }
    }

    private static func checkContiguous(_ tensor: Tensor, name: String) throws {
        guard tensor.isContiguous else {
            throw CheckpointError(.invalidArgument, "Adagrad updates \(name) in place and needs it contiguous", path: name,
                                  expected: "contiguous strides", found: "\(tensor.strides)")
        }
    }
}
