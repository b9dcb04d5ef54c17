import CKernels
import Checkpoint

/// The tensors of one parameter's dense update as the C kernels see them.
struct KernelOperands {
    /// The parameter; contiguous, updated in place.
    let param: Tensor
    /// Its gradient, same dtype and shape (any strides). Read, and written when ``writesGrad``.
    let grad: Tensor
    /// The optimizer's state tensors the kernel updates in place (Adagrad's `sum`, SGD's
    /// momentum buffer); contiguous, same dtype and shape.
    let state: [Tensor]
    /// The kernel writes into the gradient too (torch's foreach SGD with Nesterov momentum does).
    var writesGrad = false
}

/// Element 0 of each operand while a batch runs.
struct KernelPointers {
    let param: UnsafeMutableRawPointer
    let grad: UnsafeMutableRawPointer
    let state: [UnsafeMutableRawPointer]
}

/// One optimizer step's dense updates run as one parallel loop over chunks of every tensor
/// (`ckpt_run_batch`), so a step over many small tensors keeps every core busy. Shared by every
/// optimizer's kernels: each supplies its C task per tensor and the C function that runs a range
/// of one.
enum KernelBatch {
    /// Elements in one unit of parallel work: a 64K-element tensor is one unit; larger tensors are
    /// split. A multiple of every dtype's elements per 64-byte cache line.
    static let chunk = 1 << 16

    /// Below this many elements in all, a batch runs on the calling thread: waking a worker
    /// costs more than it saves.
    static let parallelThreshold = 1 << 17

    /// Runs every update, `task` making each one's C task from its operands' pointers and `range`
    /// running elements [begin, end) of a task.
    ///
    /// Updates whose storages overlap another's (a shared parameter or state storage, a gradient
    /// viewing another update's tensors, or written gradients sharing a storage) run one after
    /// another in order instead, as torch's loop over tensors does, so each sees the earlier ones.
    /// A gradient that is strided, or views its own parameter or state, is gathered into a
    /// contiguous copy first (and written back afterwards when the kernel writes it).
    ///
    /// - Parameters:
    ///   - operands: The updates' tensors, already checked by the optimizer.
    ///   - range: The kernel's task runner (`ckpt_adagrad_task_range`, `ckpt_sgd_task_range`).
    ///   - task: The C task of update `index` over `count` real elements at `pointers`.
    /// - Throws: What reading a storage throws (a failed verification).
    static func run<Task>(
        _ operands: [KernelOperands], range: @escaping @convention(c) (UnsafeRawPointer?, Int64, Int64) -> Void,
        task: (_ index: Int, _ count: Int, _ pointers: KernelPointers) -> Task
    ) throws {
        if operands.count <= 1 || areIndependent(operands) {
            try runTogether(operands, Array(operands.indices), range: range, task: task)
        } else {
            for index in operands.indices { try runTogether(operands, [index], range: range, task: task) }
        }
    }

    /// Whether no update writes memory another one reads or writes.
    private static func areIndependent(_ operands: [KernelOperands]) -> Bool {
        var written = Set<ObjectIdentifier>(minimumCapacity: 3 * operands.count)
        var independent = true
        // Indices rather than `for item in operands`: each copy retains several references.
        for index in operands.indices {
            independent = written.insert(ObjectIdentifier(operands[index].param.storage)).inserted && independent
            for tensor in operands[index].state {
                independent = written.insert(ObjectIdentifier(tensor.storage)).inserted && independent
            }
            if operands[index].writesGrad {
                independent = written.insert(ObjectIdentifier(operands[index].grad.storage)).inserted && independent
            }
        }
        for index in operands.indices where independent && !operands[index].writesGrad {
            let grad = operands[index].grad.storage
            guard written.contains(ObjectIdentifier(grad)) else { continue }
            // A gradient viewing its own parameter or state is copied first (below); one viewing
            // another update's must see that update done.
            independent = isOwnOperand(grad, operands[index])
        }
        return independent
    }

    private static func isOwnOperand(_ storage: Storage, _ operands: KernelOperands) -> Bool {
        storage === operands.param.storage || operands.state.contains { $0.storage === storage }
    }

    /// Runs the updates at `indices` as one batch.
    private static func runTogether<Task>(
        _ operands: [KernelOperands], _ indices: [Int], range: @escaping @convention(c) (UnsafeRawPointer?, Int64, Int64) -> Void,
        task: (Int, Int, KernelPointers) -> Task
    ) throws {
        var tasks: [Task] = []
        var counts: [Int] = []
        tasks.reserveCapacity(indices.count)
        counts.reserveCapacity(indices.count)
        // Gathered gradients, and where to write back those the kernel writes.
        var gathered: [(copy: Tensor, original: Tensor, writeBack: Bool)] = []
        for index in indices {
            let update = operands[index]
            let dtype = update.param.dtype
            let count = update.param.numel * (dtype.isComplex ? 2 : 1)
            guard count > 0 else { continue }
            // The storages stay alive (and owned memory never moves) while `operands` and
            // `gathered` are alive, which outlasts the batch below.
            let param = try mutablePointer(update.param)
            let state = try update.state.map(mutablePointer)
            let grad: UnsafeMutableRawPointer
            if update.grad.isContiguous && !isOwnOperand(update.grad.storage, update) {
                grad = update.writesGrad ? try mutablePointer(update.grad) : try readPointer(update.grad)
            } else {
                let copy = try update.grad.contiguousCopy()
                gathered.append((copy, update.grad, update.writesGrad))
                grad = try mutablePointer(copy)
            }
            tasks.append(task(index, count, KernelPointers(param: param, grad: grad, state: state)))
            counts.append(count)
        }
        guard !tasks.isEmpty else { return }
        withExtendedLifetime((operands, gathered)) {
            tasks.withUnsafeBufferPointer { taskBuffer in
                var items = taskBuffer.indices.map { position in
                    ckpt_batch_item(run: range, task: UnsafeRawPointer(taskBuffer.baseAddress! + position),
                                    count: Int64(counts[position]), first_chunk: 0)
                }
                items.withUnsafeMutableBufferPointer { buffer in
                    ckpt_run_batch(buffer.baseAddress, Int64(buffer.count), Int64(chunk), Int64(parallelThreshold))
                }
            }
        }
        for entry in gathered where entry.writeBack { try scatter(entry.copy, into: entry.original) }
    }

    private static func mutablePointer(_ tensor: Tensor) throws -> UnsafeMutableRawPointer {
        let offset = tensor.storageOffset * tensor.dtype.itemSize
        guard let base = try tensor.storage.withUnsafeMutableBytes({ $0.baseAddress }) else {
            throw CheckpointError(.invalidArgument, "a tensor with elements has no storage bytes", found: "\(tensor.shape)")
        }
        return base + offset
    }

    /// A pointer the kernel only reads through (a mapped storage stays mapped).
    private static func readPointer(_ tensor: Tensor) throws -> UnsafeMutableRawPointer {
        let offset = tensor.storageOffset * tensor.dtype.itemSize
        guard let base = try tensor.storage.withUnsafeBytes({ $0.baseAddress }) else {
            throw CheckpointError(.invalidArgument, "a tensor with elements has no storage bytes", found: "\(tensor.shape)")
        }
        return UnsafeMutableRawPointer(mutating: base + offset)
    }

    /// Copies a contiguous tensor's elements into a strided one of the same dtype and shape.
    private static func scatter(_ source: Tensor, into target: Tensor) throws {
        let item = target.dtype.itemSize
        try source.storage.withUnsafeBytes { from in
            try target.storage.withUnsafeMutableBytes { to in
                guard let from = from.baseAddress, let to = to.baseAddress else { return }
                var position = source.storageOffset * item
                let base = to + target.storageOffset * item
                target.forEachElementOffset { offset in
                    (base + offset * item).copyMemory(from: from + position, byteCount: item)
                    position += item
                }
            }
        }
    }

    /// Checks that the kernels handle the parameter's dtype.
    static func checkFloatingOrComplex(_ param: Tensor, optimizer: String) throws {
        switch param.dtype {
        case .float32, .float64, .float16, .bfloat16, .complex64, .complex128: return
        default:
            throw CheckpointError(
                .typeMismatch, "\(optimizer) needs a floating-point or complex parameter",
                expected: "float32, float64, float16, bfloat16, complex64 or complex128", found: "\(param.dtype)")
        }
    }

    /// Checks that `other` has the parameter's dtype and shape.
    static func checkMatches(_ other: Tensor, _ param: Tensor, name: String) throws {
        guard other.dtype == param.dtype else {
            throw CheckpointError(.typeMismatch, "\(name) dtype differs from the parameter's", path: name,
                                  expected: "\(param.dtype)", found: "\(other.dtype)")
        }
        guard other.shape == param.shape else {
            throw CheckpointError(.typeMismatch, "\(name) shape differs from the parameter's", path: name,
                                  expected: "\(param.shape)", found: "\(other.shape)")
        }
    }

    /// Checks that a tensor the kernel writes in place is contiguous.
    static func checkContiguous(_ tensor: Tensor, name: String, optimizer: String) throws {
        guard tensor.isContiguous else {
            throw CheckpointError(.invalidArgument, "\(optimizer) updates \(name) in place and needs it contiguous", path: name,
                                  expected: "contiguous strides", found: "\(tensor.strides)")
        }
    }

    /// The kernels' element type (complex tensors are pairs of their real type).
    static func scalarType(_ dtype: DType) -> ckpt_scalar_type {
        switch dtype {
        case .float64, .complex128: CKPT_SCALAR_F64
        case .float16: CKPT_SCALAR_F16
        case .bfloat16: CKPT_SCALAR_BF16
        default: CKPT_SCALAR_F32
        }
    }

    static func kernelPath(_ implementation: OptimizerImplementation) -> ckpt_optimizer_path {
        switch implementation {
        case .singleTensor: CKPT_PATH_SINGLE_TENSOR
        case .forEach: CKPT_PATH_FOREACH
        case .fused: CKPT_PATH_FUSED
        }
    }
}
