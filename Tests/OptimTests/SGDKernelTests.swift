import CKernels
import Checkpoint
import Foundation
import Testing

@testable import Optim

/// Threading, range splits, instruction-set variants and layout handling of SGD's kernels. Bit
/// fidelity to torch is in SGDFidelityTests.
struct SGDKernelTests {
    static let hyper = SGDHyperparameters(lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: true)

    static func bytes(_ values: [Float], _ dtype: DType) -> [UInt8] {
        switch dtype {
        case .float64, .complex128: values.map(Double.init).withUnsafeBytes { Array($0) }
        case .float16: values.map { Float16($0).bitPattern }.withUnsafeBytes { Array($0) }
        case .bfloat16: values.map { BFloat16($0).bitPattern }.withUnsafeBytes { Array($0) }
        default: values.withUnsafeBytes { Array($0) }
        }
    }

    /// Runs the kernel over `ranges` (in order) of fresh copies; returns param, buffer and grad bytes.
    static func run(
        _ dtype: DType, _ path: ckpt_optimizer_path, _ options: ckpt_sgd_options, param: [Float], grad: [Float], buffer: [Float],
        ranges: [Range<Int>]
    ) -> [UInt8] {
        var p = bytes(param, dtype), g = bytes(grad, dtype), b = bytes(buffer, dtype)
        p.withUnsafeMutableBytes { p in
            g.withUnsafeMutableBytes { g in
                b.withUnsafeMutableBytes { b in
                    var task = ckpt_sgd_task(
                        scalar: KernelBatch.scalarType(dtype), path: path, param: p.baseAddress, grad: g.baseAddress,
                        momentum_buffer: b.baseAddress, options: options)
                    for range in ranges { ckpt_sgd_task_range(&task, Int64(range.lowerBound), Int64(range.upperBound)) }
                }
            }
        }
        return p + b + g
    }

    /// Values that exercise special cases: zeros of both signs, subnormals, huge values, infinities.
    static let specialFloats: [Float] = [0, -0.0, Float(1e-40 as Double), -Float(1e-40 as Double), 3e38, -3e38, .infinity, -.infinity, 1, -1, 0.5, 1e-20]

    /// Every instruction-set variant gives the same bits, and so does any split of the range into
    /// pieces (the batch cuts tensors at 64K elements, wherever torch's chunks and tails lie).
    @Test(arguments: [DType.float32, .float64, .float16, .bfloat16, .complex64], [OptimizerImplementation.singleTensor, .forEach, .fused])
    func variantsAndRangeSplitsRoundAlike(_ dtype: DType, _ implementation: OptimizerImplementation) throws {
        guard !(dtype.isComplex && implementation == .fused) else { return }
        let count = 1000 + 13
        var param = AdagradKernelTests.floats(count, seed: 7), grad = AdagradKernelTests.floats(count, seed: 8)
        let buffer = AdagradKernelTests.floats(count, seed: 9)
        for (offset, special) in Self.specialFloats.enumerated() {
            param[offset * 7] = special
            grad[offset * 11 + 3] = special
            grad[count - 1 - offset] = special
        }
        let path = KernelBatch.kernelPath(implementation)
        let flags: [(first: Bool, nesterov: Bool, maximize: Bool, wd: Double, dampening: Double)] = [
            (false, false, false, 0, 0), (true, true, false, 0, 0), (false, true, true, 0.1, 0), (false, false, true, 0.01, 0.3),
        ]
        for flag in flags {
            var options = ckpt_sgd_options()
            options.lr = 0.0123
            options.momentum = 0.9
            options.dampening = flag.dampening
            options.weight_decay = flag.wd
            options.nesterov = flag.nesterov ? 1 : 0
            options.maximize = flag.maximize ? 1 : 0
            options.first_step = flag.first ? 1 : 0
            options.complex = dtype.isComplex ? 1 : 0
            options.write_grad = implementation == .forEach && flag.nesterov && !flag.maximize && flag.wd == 0 ? 1 : 0
            options.numel = Int64(count)
            options.add_chunk = 700  // two chunks, so tails fall inside the range too
            var results: [[UInt8]] = []
            for isa in [CKPT_ISA_BASELINE, CKPT_ISA_AVX2, CKPT_ISA_AVX512] where ckpt_isa_available(isa) != 0 {
                options.isa = isa
                results.append(Self.run(dtype, path, options, param: param, grad: grad, buffer: buffer, ranges: [0..<count]))
                let pieces = [0..<123, 123..<650, 650..<701, 701..<1000, 1000..<1011, 1011..<count]
                results.append(Self.run(dtype, path, options, param: param, grad: grad, buffer: buffer, ranges: pieces))
            }
            #expect(results.count >= 2)
            for result in results.dropFirst() { #expect(result == results[0], "\(flag)") }
            #expect(results[0] != Self.bytes(param, dtype) + Self.bytes(buffer, dtype) + Self.bytes(grad, dtype))
        }
    }

    /// Large tensors run in chunks on several threads; every element comes out as one serial kernel
    /// call over the whole range computes it, gradient writes included.
    @Test(arguments: [DType.float32, .float64, .float16, .bfloat16], [OptimizerImplementation.singleTensor, .forEach, .fused])
    func threadedBatchMatchesOneSerialPass(_ dtype: DType, _ implementation: OptimizerImplementation) throws {
        let count = KernelBatch.parallelThreshold * 2 + 37
        let values = AdagradKernelTests.floats(count, seed: 5), gradients = AdagradKernelTests.floats(count, seed: 6)
        let buffered = AdagradKernelTests.floats(count, seed: 4)
        func tensor(_ floats: [Float]) throws -> Tensor { try Tensor(storage: Storage(bytes: Self.bytes(floats, dtype)), dtype: dtype, shape: [count]) }
        let param = try tensor(values), grad = try tensor(gradients), buffer = try tensor(buffered)
        let update = SGDKernels.DenseUpdate(
            param: param, grad: grad, buffer: buffer, firstStep: false, writesGrad: implementation == .forEach,
            hyper: Self.hyper, implementation: implementation)
        try SGDKernels.denseUpdates([update])
        let options = SGDKernels.kernelOptions(update, realCount: count, rounding: .current, isa: CKPT_ISA_BEST)
        let serial = Self.run(dtype, KernelBatch.kernelPath(implementation), options, param: values, grad: gradients,
                              buffer: buffered, ranges: [0..<count])
        #expect(try param.contiguousBytes() + buffer.contiguousBytes() + grad.contiguousBytes() == serial)
    }

    /// A strided gradient is gathered for the kernel; where torch's foreach Nesterov writes into
    /// the gradient, the strided tensor receives exactly what a contiguous one does.
    @Test func stridedGradientIsGatheredAndWrittenBack() throws {
        let rows = 7, columns = 9
        let gradStorage = try Tensor(AdagradKernelTests.floats(rows * columns, seed: 2), shape: [columns, rows])
        let transposed = try Tensor(storage: gradStorage.storage, dtype: .float32, shape: [rows, columns], strides: [1, rows])
        let contiguous = try transposed.contiguousCopy()
        var results: [[UInt8]] = []
        for grad in [transposed, contiguous] {
            let param = try Tensor(AdagradKernelTests.floats(rows * columns, seed: 1), shape: [rows, columns])
            let buffer = try Tensor(AdagradKernelTests.floats(rows * columns, seed: 3), shape: [rows, columns])
            try SGDKernels.denseUpdates([SGDKernels.DenseUpdate(
                param: param, grad: grad, buffer: buffer, firstStep: false, writesGrad: true, hyper: Self.hyper, implementation: .forEach)])
            results.append(try param.contiguousBytes() + buffer.contiguousBytes() + grad.contiguousBytes())
        }
        #expect(results[0] == results[1])
        #expect(try transposed.contiguousBytes() != Tensor(AdagradKernelTests.floats(rows * columns, seed: 2), shape: [columns, rows])
            .viewed(shape: [rows, columns], strides: [1, rows]).contiguousBytes())
    }

    @Test func stridedBufferIsRejectedByTheKernelsAndPackedByTheStep() throws {
        let param = try Tensor([Float](repeating: 1, count: 4))
        let strided = try Tensor(storage: Storage(byteCount: 4 * 8), dtype: .float32, shape: [4], strides: [2])
        let error = #expect(throws: CheckpointError.self) {
            try SGDKernels.denseUpdates([SGDKernels.DenseUpdate(
                param: param, grad: param.contiguousCopy(), buffer: strided, firstStep: false, writesGrad: false,
                hyper: Self.hyper, implementation: .singleTensor)])
        }
        #expect(error?.path == "momentum_buffer")

        let parameter = Parameter(try Tensor([Float](repeating: 1, count: 4)))
        let optimizer = try SGD([parameter], lr: 0.5, momentum: 0.5)
        try optimizer.setState(["momentum_buffer": .tensor(strided)], for: parameter)
        parameter.grad = .dense(try Tensor([Float](repeating: 1, count: 4)))
        try optimizer.step()
        guard case .tensor(let packed)? = optimizer.state(for: parameter)?[.string("momentum_buffer")] else {
            Issue.record("no buffer")
            return
        }
        #expect(packed.isContiguous)
        // buf = 0.5 * 0 + 1, param = 1 - 0.5 * 1
        #expect(try packed.scalars(as: Float.self) == [1, 1, 1, 1])
        #expect(try parameter.data.scalars(as: Float.self) == [0.5, 0.5, 0.5, 0.5])
    }
}
