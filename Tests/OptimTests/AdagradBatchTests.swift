import CKernels
import Checkpoint
import Testing

@testable import Optim

/// `AdagradKernels.denseUpdates`, which runs a step's dense updates as one parallel loop over
/// chunks of all tensors. Each tensor must come out as one serial kernel call over it computes it
/// (the kernels the torch fidelity tests check), whatever the mix of sizes, dtypes and paths.
struct AdagradBatchTests {
    static let hyper = AdagradHyperparameters(lr: 0.05, lrDecay: 0.01, weightDecay: 0.1, eps: 1e-10, maximize: false)

    struct Case {
        let dtype: DType
        let implementation: OptimizerImplementation
        let values: [Float]
        let gradients: [Float]
    }

    static func tensor(_ floats: [Float], _ dtype: DType) throws -> Tensor {
        switch dtype {
        case .float64: return try Tensor(floats.map(Double.init))
        case .float16: return try Tensor(floats.map { Float16($0) })
        case .bfloat16: return try Tensor(floats.map { BFloat16($0) })
        default: return try Tensor(floats)
        }
    }

    /// One serial kernel call over the whole tensor: param bytes followed by sum bytes.
    static func serialReference(_ item: Case, step: Float) throws -> [UInt8] {
        var options = AdagradKernels.kernelOptions(
            hyper: hyper, step: step, implementation: item.implementation, complex: false,
            realCount: item.values.count, rounding: .native, isa: CKPT_ISA_BEST)
        return try AdagradKernelTests.runVariant(CKPT_ISA_BEST, item.dtype, KernelBatch.kernelPath(item.implementation), item.values, item.gradients, &options)
    }

    @Test func mixedBatchMatchesOneSerialPassPerTensor() throws {
        let chunk = KernelBatch.chunk
        let dtypes: [DType] = [.float32, .float64, .float16, .bfloat16]
        let implementations: [OptimizerImplementation] = [.singleTensor, .forEach, .fused]
        let sizes = [0, 1, 37, chunk - 1, chunk, chunk + 5, 3 * chunk + 17] + Array(repeating: 300, count: 200)
        var cases: [Case] = []
        for (index, size) in sizes.enumerated() {
            cases.append(Case(
                dtype: dtypes[index % dtypes.count], implementation: implementations[index % implementations.count],
                values: AdagradKernelTests.floats(size, seed: 2 * index + 1),
                gradients: AdagradKernelTests.floats(size, seed: 2 * index + 2)))
        }
        #expect(sizes.reduce(0, +) >= KernelBatch.parallelThreshold, "the batch must be large enough to run in parallel")
        var sums: [Tensor] = [], params: [Tensor] = []
        var updates: [AdagradKernels.DenseUpdate] = []
        for item in cases {
            let param = try Self.tensor(item.values, item.dtype), sum = try Self.tensor(item.values.map(\.magnitude), item.dtype)
            params.append(param)
            sums.append(sum)
            updates.append(AdagradKernels.DenseUpdate(
                param: param, grad: try Self.tensor(item.gradients, item.dtype), sum: sum, step: 3,
                hyper: Self.hyper, implementation: item.implementation))
        }
        try AdagradKernels.denseUpdates(updates)
        for (index, item) in cases.enumerated() {
            let expected = try Self.serialReference(item, step: 3)
            let ours = try params[index].contiguousBytes() + sums[index].contiguousBytes()
            let firstDifference = ours.count == expected.count ? zip(ours, expected).enumerated().first { $1.0 != $1.1 }?.offset : 0
            #expect(firstDifference == nil, "tensor \(index): \(item.values.count) \(item.dtype) \(item.implementation)")
        }
    }

    /// A gradient that views another parameter's storage must see that parameter after its
    /// update, as torch's loop over parameters gives it.
    @Test func gradientViewingAnEarlierParameterSeesItsUpdate() throws {
        let count = KernelBatch.parallelThreshold
        func fresh() throws -> (a: Tensor, aGrad: Tensor, aSum: Tensor, b: Tensor, bSum: Tensor) {
            (try Tensor(AdagradKernelTests.floats(count, seed: 1)), try Tensor(AdagradKernelTests.floats(count, seed: 2)),
             try Tensor(zeros: .float32, shape: [count]), try Tensor(AdagradKernelTests.floats(count, seed: 3)),
             try Tensor(zeros: .float32, shape: [count]))
        }
        func update(_ param: Tensor, _ grad: Tensor, _ sum: Tensor) -> AdagradKernels.DenseUpdate {
            AdagradKernels.DenseUpdate(param: param, grad: grad, sum: sum, step: 1, hyper: Self.hyper, implementation: .fused)
        }
        let batch = try fresh()
        try AdagradKernels.denseUpdates([update(batch.a, batch.aGrad, batch.aSum), update(batch.b, batch.a, batch.bSum)])

        let inOrder = try fresh()
        try AdagradKernels.denseUpdate(param: inOrder.a, grad: inOrder.aGrad, sum: inOrder.aSum, step: 1, hyper: Self.hyper, implementation: .fused)
        try AdagradKernels.denseUpdate(param: inOrder.b, grad: inOrder.a, sum: inOrder.bSum, step: 1, hyper: Self.hyper, implementation: .fused)
        #expect(try batch.b.isBitwiseEqual(to: inOrder.b))
        #expect(try batch.a.isBitwiseEqual(to: inOrder.a))

        // The check above can fail: with `a` read before its update, `b` comes out differently.
        let stale = try fresh()
        let snapshot = try Tensor(storage: stale.a.storage.copy(), dtype: .float32, shape: [count])
        try AdagradKernels.denseUpdate(param: stale.b, grad: snapshot, sum: stale.bSum, step: 1, hyper: Self.hyper, implementation: .fused)
        #expect(try !stale.b.isBitwiseEqual(to: inOrder.b))
    }

    /// Two parameters viewing the halves of one storage (offsets into it) are updated in order,
    /// each at its own offset, as two separate updates would.
    @Test func parametersSharingAStorageUpdateTheirOwnHalves() throws {
        let half = KernelBatch.parallelThreshold
        let values = AdagradKernelTests.floats(2 * half, seed: 8), gradients = AdagradKernelTests.floats(2 * half, seed: 9)
        func halves(_ tensor: Tensor) throws -> (Tensor, Tensor) {
            (try Tensor(storage: tensor.storage, dtype: .float32, shape: [half]),
             try Tensor(storage: tensor.storage, dtype: .float32, shape: [half], storageOffset: half))
        }
        let batchWhole = try Tensor(values), batchSums = try Tensor(zeros: .float32, shape: [2 * half])
        let (a, b) = try halves(batchWhole), (aSum, bSum) = try halves(batchSums)
        let (aGrad, bGrad) = try halves(Tensor(gradients))
        try AdagradKernels.denseUpdates([
            AdagradKernels.DenseUpdate(param: a, grad: aGrad, sum: aSum, step: 2, hyper: Self.hyper, implementation: .singleTensor),
            AdagradKernels.DenseUpdate(param: b, grad: bGrad, sum: bSum, step: 2, hyper: Self.hyper, implementation: .singleTensor),
        ])
        for (index, range) in [0..<half, half..<(2 * half)].enumerated() {
            let param = try Tensor(Array(values[range])), sum = try Tensor(zeros: .float32, shape: [half])
            try AdagradKernels.denseUpdate(param: param, grad: try Tensor(Array(gradients[range])), sum: sum, step: 2,
                                           hyper: Self.hyper, implementation: .singleTensor)
            #expect(try (index == 0 ? a : b).isBitwiseEqual(to: param), "half \(index)")
            #expect(try (index == 0 ? aSum : bSum).isBitwiseEqual(to: sum), "half \(index)")
        }
    }

    @Test func rejectedOperandLeavesEveryTensorUntouched() throws {
        let values = AdagradKernelTests.floats(64, seed: 4)
        let first = try Tensor(values), firstSum = try Tensor(zeros: .float32, shape: [64])
        let wide = try Tensor(zeros: .float32, shape: [64, 2])
        let strided = try Tensor(storage: wide.storage, dtype: .float32, shape: [64], strides: [2])
        let updates = [
            AdagradKernels.DenseUpdate(param: first, grad: try Tensor(values), sum: firstSum, step: 1, hyper: Self.hyper, implementation: .fused),
            AdagradKernels.DenseUpdate(
                param: strided, grad: try Tensor(values), sum: try Tensor(zeros: .float32, shape: [64]), step: 1,
                hyper: Self.hyper, implementation: .fused),
        ]
        let error = #expect(throws: CheckpointError.self) { try AdagradKernels.denseUpdates(updates) }
        #expect(error?.code == .invalidArgument)
        #expect(try first.scalars(as: Float.self) == values)
        #expect(try firstSum.scalars(as: Float.self) == [Float](repeating: 0, count: 64))
    }

    /// Through `step()`: one optimizer over many parameters (one batch per step) gives each
    /// parameter the bits an optimizer of its own gives it.
    @Test(arguments: [(false, false), (true, false), (false, true)])
    func oneGroupOfManyParametersMatchesOneOptimizerEach(_ foreach: Bool, _ fused: Bool) throws {
        let count = 240, size = 1000
        func parameters() throws -> [Parameter] {
            try (0..<count).map { index in
                let parameter = Parameter(try Tensor(AdagradKernelTests.floats(size, seed: 3 * index)))
                parameter.grad = .dense(try Tensor(AdagradKernelTests.floats(size, seed: 3 * index + 1)))
                return parameter
            }
        }
        let together = try parameters(), alone = try parameters()
        let optimizer = try Adagrad(together, lr: 0.1, lrDecay: 0.01, weightDecay: 0.01, foreach: foreach, fused: fused ? true : nil)
        let optimizers = try alone.map { try Adagrad([$0], lr: 0.1, lrDecay: 0.01, weightDecay: 0.01, foreach: foreach, fused: fused ? true : nil) }
        for _ in 0..<3 {
            try optimizer.step()
            for single in optimizers { try single.step() }
        }
        for (a, b) in zip(together, alone) { #expect(try a.data.isBitwiseEqual(to: b.data)) }
    }
}
