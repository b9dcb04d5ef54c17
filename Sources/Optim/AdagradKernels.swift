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
/// CPU torch runs on (MKL's kernel choice, ATen's vector width); the kernels detect it at run time,
/// so results match torch run on the same kind of machine.
enum AdagradKernels {
    /// Updates one dense parameter in place as PyTorch's `implementation` does.
    ///
    /// Large tensors are split over the machine's cores in cache-line-aligned chunks; nothing is
    /// allocated unless `grad` is a strided view (it is then gathered once).
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
        try checkOperands(param: param, grad: grad, sum: sum, implementation: implementation)
        let realCount = param.numel * (param.dtype.isComplex ? 2 : 1)
        guard realCount > 0 else { return }
        // A gradient viewing param's or sum's storage would be read while they are written.
        let sharesStorage = grad.storage === param.storage || grad.storage === sum.storage
        let gradient = grad.isContiguous && !sharesStorage ? grad : try grad.contiguousCopy()
        var options = ckpt_adagrad_options()
        options.clr = decayedLearningRate(lr: hyper.lr, lrDecay: hyper.lrDecay, step: step, implementation: implementation)
        options.eps = hyper.eps
        options.weight_decay = hyper.weightDecay
        options.maximize = hyper.maximize ? 1 : 0
        options.numel = Int64(realCount)
        options.add_chunk = Int64(torchParallelChunk(realCount))
        options.add_vector_length = Int32(Int(ckpt_torch_vector_bytes()) / param.dtype.scalarItemSize)
        options.complex_weight_decay = param.dtype.isComplex && implementation == .singleTensor ? 1 : 0
        let path: ckpt_adagrad_path = switch implementation {
        case .singleTensor: CKPT_ADAGRAD_SINGLE_TENSOR
        case .forEach: CKPT_ADAGRAD_FOREACH
        case .fused: CKPT_ADAGRAD_FUSED
        }
        let kernelOptions = options
        let dtype = param.dtype
        let item = dtype.itemSize
        try param.storage.withUnsafeMutableBytes { paramBytes in
            try sum.storage.withUnsafeMutableBytes { sumBytes in
                try gradient.storage.withUnsafeBytes { gradBytes in
                    guard let paramBase = paramBytes.baseAddress, let sumBase = sumBytes.baseAddress,
                          let gradBase = gradBytes.baseAddress else { return }
                    let p = UInt(bitPattern: paramBase + param.storageOffset * item)
                    let s = UInt(bitPattern: sumBase + sum.storageOffset * item)
                    let g = UInt(bitPattern: gradBase + gradient.storageOffset * item)
                    forEachChunk(count: realCount, itemSize: dtype.scalarItemSize) { begin, end in
                        run(dtype, path, p, g, s, Int64(begin), Int64(end), kernelOptions)
                    }
                }
            }
        }
    }

    /// `lr / (1 + (step - 1) * lr_decay)` in double, as torch computes it: in Python on the unfused
    /// paths, and in C++ built with contraction on the fused path, where the denominator is one FMA.
    static func decayedLearningRate(lr: Double, lrDecay: Double, step: Float, implementation: AdagradImplementation) -> Double {
        let elapsed = Double(step) - 1
        if implementation == .fused { return lr / (1 as Double).addingProduct(elapsed, lrDecay) }
        return lr / (1 + elapsed * lrDecay)
    }

    /// Calls the C kernel for one range. Addresses travel as integers so the closure that runs
    /// chunks on several threads captures only Sendable values.
    private static func run(
        _ dtype: DType, _ path: ckpt_adagrad_path, _ p: UInt, _ g: UInt, _ s: UInt,
        _ begin: Int64, _ end: Int64, _ options: ckpt_adagrad_options
    ) {
        var options = options
        guard let param = UnsafeMutableRawPointer(bitPattern: p), let grad = UnsafeRawPointer(bitPattern: g),
              let sum = UnsafeMutableRawPointer(bitPattern: s) else { return }
        switch dtype {
        case .float32, .complex64:
            ckpt_adagrad_f32(path, param.assumingMemoryBound(to: Float.self), grad.assumingMemoryBound(to: Float.self),
                             sum.assumingMemoryBound(to: Float.self), begin, end, &options)
        case .float64, .complex128:
            ckpt_adagrad_f64(path, param.assumingMemoryBound(to: Double.self), grad.assumingMemoryBound(to: Double.self),
                             sum.assumingMemoryBound(to: Double.self), begin, end, &options)
        case .float16:
            ckpt_adagrad_f16(path, param.assumingMemoryBound(to: UInt16.self), grad.assumingMemoryBound(to: UInt16.self),
                             sum.assumingMemoryBound(to: UInt16.self), begin, end, &options)
        case .bfloat16:
            ckpt_adagrad_bf16(path, param.assumingMemoryBound(to: UInt16.self), grad.assumingMemoryBound(to: UInt16.self),
                              sum.assumingMemoryBound(to: UInt16.self), begin, end, &options)
        default:
            return  // checkOperands admits only the dtypes above
        }
    }

    /// Below this many elements a tensor is updated on the calling thread: handing half of it to
    /// a worker costs more than it saves (measured: 4096 tensors of 64K elements ran ~1.7x faster
    /// on one thread each than split over two, on a shared 2-core machine).
    static let parallelThreshold = 1 << 17

    /// Runs `body` over [0, count) in chunks whose boundaries fall on 64-byte cache lines, one
    /// chunk per thread of the kernels' pool (which spins between loops, so the many tensors of
    /// one step do not each pay for waking threads).
    static func forEachChunk(count: Int, itemSize: Int, _ body: @Sendable (Int, Int) -> Void) {
        let threads = Int(ckpt_thread_count())
        guard count >= parallelThreshold, threads > 1 else {
            body(0, count)
            return
        }
        let line = max(Storage.alignment / max(itemSize, 1), 1)
        let workers = min(threads, count / (parallelThreshold / 2))
        let perWorker = (count + workers - 1) / workers
        let chunk = (perWorker + line - 1) / line * line
        withoutActuallyEscaping(body) { body in
            var job = ChunkedLoop(count: count, chunk: chunk, body: body)
            withUnsafeMutablePointer(to: &job) { pointer in
                ckpt_parallel_for(Int64((count + chunk - 1) / chunk), { context, index in
                    guard let loop = context?.assumingMemoryBound(to: ChunkedLoop.self).pointee else { return }
                    let begin = Int(index) * loop.chunk
                    loop.body(begin, min(begin + loop.chunk, loop.count))
                }, pointer)
            }
        }
    }

    /// What the C pool's callback needs to run one chunk.
    private struct ChunkedLoop {
        let count: Int
        let chunk: Int
        let body: @Sendable (Int, Int) -> Void
    }

    /// torch's default intra-op thread count (at::intraop_default_num_threads): OMP_NUM_THREADS,
    /// else MKL_NUM_THREADS, else the number of physical cores. Read once per process.
    static let torchThreadCount: Int = {
        let environment = ProcessInfo.processInfo.environment
        for name in ["OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
            if let value = environment[name].flatMap({ Int($0) }), value > 0 { return value }
        }
        return physicalCoreCount() ?? ProcessInfo.processInfo.activeProcessorCount
    }()

    /// Distinct (physical id, core id) pairs in /proc/cpuinfo, or nil where that file is absent.
    private static func physicalCoreCount() -> Int? {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        var cores = Set<String>()
        var physical = ""
        for line in info.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "physical id" { physical = parts[1] }
            if parts[0] == "core id" { cores.insert(physical + "/" + parts[1]) }
        }
        return cores.isEmpty ? nil : cores.count
    }

    /// The range at::parallel_for hands each of torch's threads for an elementwise op over
    /// `count` elements (grain 32768; torch's thread count taken to be the core count). Needed
    /// only to place the scalar tails of `add(alpha:)` for float16/bfloat16.
    static func torchParallelChunk(_ count: Int) -> Int {
        let grain = 32768
        let threads = torchThreadCount
        guard count >= grain, threads > 1 else { return max(count, 1) }
        let workers = min(threads, (count + grain - 1) / grain)
        return (count + workers - 1) / workers
    }

    private static func checkOperands(param: Tensor, grad: Tensor, sum: Tensor, implementation: AdagradImplementation) throws {
        let supported: Set<DType> = [.float32, .float64, .float16, .bfloat16, .complex64, .complex128]
        guard supported.contains(param.dtype) else {
            throw CheckpointError(
                .typeMismatch, "Adagrad needs a floating-point or complex parameter",
                expected: "float32, float64, float16, bfloat16, complex64 or complex128", found: "\(param.dtype)")
        }
        if implementation == .fused && param.dtype.isComplex {
            throw CheckpointError(.unsupported, "`fused` does not support sparse grad or complex param", found: "\(param.dtype)")
        }
        for (name, other) in [("grad", grad), ("sum", sum)] {
            guard other.dtype == param.dtype else {
                throw CheckpointError(.typeMismatch, "\(name) dtype differs from the parameter's", path: name,
                                      expected: "\(param.dtype)", found: "\(other.dtype)")
            }
            guard other.shape == param.shape else {
                throw CheckpointError(.typeMismatch, "\(name) shape differs from the parameter's", path: name,
                                      expected: "\(param.shape)", found: "\(other.shape)")
            }
        }
        for (name, tensor) in [("param", param), ("sum", sum)] where !tensor.isContiguous {
            throw CheckpointError(.invalidArgument, "Adagrad updates \(name) in place and needs it contiguous", path: name,
                                  expected: "contiguous strides", found: "\(tensor.strides)")
        }
        guard param.storage !== sum.storage else {
            throw CheckpointError(.invalidArgument, "param and sum share a storage", path: "sum",
                                  expected: "separate storages", found: "one storage")
        }
    }
}

extension DType {
    /// Bytes of one real scalar: a complex element counts as two.
    fileprivate var scalarItemSize: Int { isComplex ? itemSize / 2 : itemSize }
}
