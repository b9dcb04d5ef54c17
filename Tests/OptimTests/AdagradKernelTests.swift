import CKernels
import Checkpoint
import Foundation
import Testing

@testable import Optim

/// Argument checking, layout handling, threading and instruction-set variants of
/// `AdagradKernels.denseUpdate`. Bit fidelity to torch is in AdagradFidelityTests.
struct AdagradKernelTests {
    static let hyper = AdagradHyperparameters(lr: 0.05, lrDecay: 0.01, weightDecay: 0.1, eps: 1e-10, maximize: false)

    static func floats(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(((($0 &* 7919) &+ seed &* 104729) % 2001) - 1000) / 64 }
    }

    @Test func mismatchedDTypeIsRejected() throws {
        let param = try Tensor([Float](repeating: 1, count: 4))
        let grad = try Tensor([Double](repeating: 1, count: 4))
        let sum = try Tensor(zeros: .float32, shape: [4])
        let error = #expect(throws: CheckpointError.self) {
            try AdagradKernels.denseUpdate(param: param, grad: grad, sum: sum, step: 1, hyper: Self.hyper, implementation: .fused)
        }
        #expect(error?.code == .typeMismatch)
        #expect(error?.path == "grad")
    }

    @Test func mismatchedShapeIsRejected() throws {
        let param = try Tensor([Float](repeating: 1, count: 4))
        let grad = try Tensor([Float](repeating: 1, count: 4), shape: [2, 2])
        let sum = try Tensor(zeros: .float32, shape: [4])
        let error = #expect(throws: CheckpointError.self) {
            try AdagradKernels.denseUpdate(param: param, grad: grad, sum: sum, step: 1, hyper: Self.hyper, implementation: .singleTensor)
        }
        #expect(error?.code == .typeMismatch)
    }

    @Test(arguments: [DType.int64, .int32, .bool, .uint8, .float8_e4m3fn])
    func nonFloatingDTypeIsRejected(_ dtype: DType) throws {
        let tensor = try Tensor(zeros: dtype, shape: [3])
        let error = #expect(throws: CheckpointError.self) {
            try AdagradKernels.denseUpdate(param: tensor, grad: tensor, sum: tensor, step: 1, hyper: Self.hyper, implementation: .forEach)
        }
        #expect(error?.code == .typeMismatch)
    }

    @Test func fusedComplexIsRejectedAsTorchDoes() throws {
        let tensor = try Tensor(zeros: .complex64, shape: [3])
        let other = try Tensor(zeros: .complex64, shape: [3])
        let sum = try Tensor(zeros: .complex64, shape: [3])
        let error = #expect(throws: CheckpointError.self) {
            try AdagradKernels.denseUpdate(param: tensor, grad: other, sum: sum, step: 1, hyper: Self.hyper, implementation: .fused)
        }
        #expect(error?.code == .unsupported)
        #expect(error?.message == "`fused` does not support sparse grad or complex param")
    }

    @Test func nonContiguousParamIsRejected() throws {
        let storage = Storage(byteCount: 4 * 8)
        let param = try Tensor(storage: storage, dtype: .float32, shape: [4], strides: [2])
        let grad = try Tensor(zeros: .float32, shape: [4])
        let sum = try Tensor(zeros: .float32, shape: [4])
        let error = #expect(throws: CheckpointError.self) {
            try AdagradKernels.denseUpdate(param: param, grad: grad, sum: sum, step: 1, hyper: Self.hyper, implementation: .fused)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.path == "param")
    }

    @Test func paramAndSumSharingAStorageIsRejected() throws {
        let storage = Storage(byteCount: 8 * 4)
        let param = try Tensor(storage: storage, dtype: .float32, shape: [4])
        let sum = try Tensor(storage: storage, dtype: .float32, shape: [4], storageOffset: 4)
        let grad = try Tensor(zeros: .float32, shape: [4])
        let error = #expect(throws: CheckpointError.self) {
            try AdagradKernels.denseUpdate(param: param, grad: grad, sum: sum, step: 1, hyper: Self.hyper, implementation: .singleTensor)
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func emptyTensorIsANoOp() throws {
        let empty = try Tensor(zeros: .float32, shape: [0, 3])
        let grad = try Tensor(zeros: .float32, shape: [0, 3])
        let sum = try Tensor(zeros: .float32, shape: [0, 3])
        try AdagradKernels.denseUpdate(param: empty, grad: grad, sum: sum, step: 1, hyper: Self.hyper, implementation: .fused)
        #expect(empty.numel == 0)
    }

    /// A transposed (strided) gradient must update exactly as its contiguous copy does.
    @Test(arguments: [OptimizerImplementation.singleTensor, .forEach, .fused])
    func stridedGradientMatchesContiguous(_ implementation: OptimizerImplementation) throws {
        let rows = 7, columns = 9
        let gradStorage = try Tensor(Self.floats(rows * columns, seed: 2), shape: [columns, rows])
        let transposed = try Tensor(storage: gradStorage.storage, dtype: .float32, shape: [rows, columns], strides: [1, rows])
        let contiguous = try transposed.contiguousCopy()
        var results: [[Float]] = []
        for grad in [transposed, contiguous] {
            let param = try Tensor(Self.floats(rows * columns, seed: 1), shape: [rows, columns])
            let sum = try Tensor(zeros: .float32, shape: [rows, columns])
            try AdagradKernels.denseUpdate(param: param, grad: grad, sum: sum, step: 3, hyper: Self.hyper, implementation: implementation)
            results.append(try param.scalars(as: Float.self) + sum.scalars(as: Float.self))
        }
        #expect(results[0].map(\.bitPattern) == results[1].map(\.bitPattern))
        #expect(results[0] != Self.floats(rows * columns, seed: 1) + [Float](repeating: 0, count: rows * columns))
    }

    /// A gradient that views the parameter's own storage is read before anything is written.
    @Test func gradientAliasingParamIsCopiedFirst() throws {
        let values = Self.floats(40, seed: 3)
        let param = try Tensor(values)
        let sum = try Tensor(zeros: .float32, shape: [40])
        try AdagradKernels.denseUpdate(param: param, grad: param, sum: sum, step: 1, hyper: Self.hyper, implementation: .fused)
        let reference = try Tensor(values)
        let referenceSum = try Tensor(zeros: .float32, shape: [40])
        try AdagradKernels.denseUpdate(
            param: reference, grad: try Tensor(values), sum: referenceSum, step: 1, hyper: Self.hyper, implementation: .fused)
        #expect(try param.isBitwiseEqual(to: reference))
        #expect(try sum.isBitwiseEqual(to: referenceSum))
    }

    /// Large tensors run in chunks on several threads; every element must come out as one serial
    /// kernel call over the whole range computes it.
    @Test(arguments: [DType.float32, .float64, .float16, .bfloat16], [OptimizerImplementation.singleTensor, .forEach, .fused])
    func threadedChunksMatchOneSerialPass(_ dtype: DType, _ implementation: OptimizerImplementation) throws {
        let count = KernelBatch.parallelThreshold * 2 + 37
        let values = Self.floats(count, seed: 5), gradients = Self.floats(count, seed: 6)
        func tensor(_ floats: [Float]) throws -> Tensor {
            switch dtype {
            case .float64: return try Tensor(floats.map(Double.init))
            case .float16: return try Tensor(floats.map { Float16($0) })
            case .bfloat16: return try Tensor(floats.map { BFloat16($0) })
            default: return try Tensor(floats)
            }
        }
        let param = try tensor(values), grad = try tensor(gradients), sum = try Tensor(zeros: dtype, shape: [count])
        try AdagradKernels.denseUpdate(param: param, grad: grad, sum: sum, step: 2, hyper: Self.hyper, implementation: implementation)

        let serialParam = try tensor(values), serialSum = try Tensor(zeros: dtype, shape: [count])
        var options = AdagradKernels.kernelOptions(
            hyper: Self.hyper, step: 2, implementation: implementation, complex: false, realCount: count,
            rounding: .native, isa: CKPT_ISA_BEST)
        let path = KernelBatch.kernelPath(implementation)
        try serialParam.storage.withUnsafeMutableBytes { p in
            try serialSum.storage.withUnsafeMutableBytes { s in
                try grad.storage.withUnsafeBytes { g in
                    switch dtype {
                    case .float64:
                        ckpt_adagrad_f64(path, p.baseAddress!.assumingMemoryBound(to: Double.self), g.baseAddress!.assumingMemoryBound(to: Double.self),
                                         s.baseAddress!.assumingMemoryBound(to: Double.self), 0, Int64(count), &options)
                    case .float16:
                        ckpt_adagrad_f16(path, p.baseAddress!.assumingMemoryBound(to: UInt16.self), g.baseAddress!.assumingMemoryBound(to: UInt16.self),
                                         s.baseAddress!.assumingMemoryBound(to: UInt16.self), 0, Int64(count), &options)
                    case .bfloat16:
                        ckpt_adagrad_bf16(path, p.baseAddress!.assumingMemoryBound(to: UInt16.self), g.baseAddress!.assumingMemoryBound(to: UInt16.self),
                                          s.baseAddress!.assumingMemoryBound(to: UInt16.self), 0, Int64(count), &options)
                    default:
                        ckpt_adagrad_f32(path, p.baseAddress!.assumingMemoryBound(to: Float.self), g.baseAddress!.assumingMemoryBound(to: Float.self),
                                         s.baseAddress!.assumingMemoryBound(to: Float.self), 0, Int64(count), &options)
                    }
                }
            }
        }
        #expect(try param.isBitwiseEqual(to: serialParam))
        #expect(try sum.isBitwiseEqual(to: serialSum))
    }

    /// Values that exercise special cases: zeros of both signs, subnormals, huge values, infinities.
    static let specialFloats: [Float] = [0, -0.0, Float(1e-40 as Double), -Float(1e-40 as Double), 3e38, -3e38, .infinity, -.infinity, 1, -1, 0.5, 1e-20]

    /// The AVX-512, AVX2 and baseline builds of every kernel must produce the same bits, with every
    /// kind of torch square root this CPU computes (whichever kind and variant a machine runs).
    @Test(arguments: [DType.float32, .float64, .float16, .bfloat16], [OptimizerImplementation.singleTensor, .forEach, .fused])
    func everyInstructionSetVariantRoundsAlike(_ dtype: DType, _ implementation: OptimizerImplementation) throws {
        let count = 1000 + 13
        var paramValues = Self.floats(count, seed: 7), gradValues = Self.floats(count, seed: 8)
        for (offset, special) in Self.specialFloats.enumerated() {
            paramValues[offset * 7] = special
            gradValues[offset * 11 + 3] = special
            gradValues[count - 1 - offset] = special
        }
        let path = KernelBatch.kernelPath(implementation)
        for (wd, maximize) in [(0.0, false), (0.1, true)] { for kind in SparseExactnessTests.kinds {
            var options = ckpt_adagrad_options()
            options.clr = 0.0123
            options.eps = 1e-3
            options.weight_decay = wd
            options.maximize = maximize ? 1 : 0
            options.numel = Int64(count)
            options.add_chunk = 700  // two chunks, so tails fall inside the range too
            options.sqrt_f32_kind = kind
            options.sqrt_f64_kind = kind
            var results: [[UInt8]] = []
            for isa in [CKPT_ISA_BASELINE, CKPT_ISA_AVX2, CKPT_ISA_AVX512] where ckpt_isa_available(isa) != 0 {
                results.append(try Self.runVariant(isa, dtype, path, paramValues, gradValues, &options))
            }
            #expect(results.count >= 1)
            for result in results.dropFirst() { #expect(result == results[0], "sqrt \(kind.testDescription)") }
        } }
    }

    /// Runs one step with one instruction-set variant; returns param bytes followed by sum bytes.
    static func runVariant(
        _ isa: ckpt_isa, _ dtype: DType, _ path: ckpt_optimizer_path, _ paramValues: [Float], _ gradValues: [Float],
        _ options: inout ckpt_adagrad_options
    ) throws -> [UInt8] {
        func bytes(_ values: [Float]) -> [UInt8] {
            switch dtype {
            case .float64: return values.map(Double.init).withUnsafeBytes { Array($0) }
            case .float16: return values.map { Float16($0).bitPattern }.withUnsafeBytes { Array($0) }
            case .bfloat16: return values.map { BFloat16($0).bitPattern }.withUnsafeBytes { Array($0) }
            default: return values.withUnsafeBytes { Array($0) }
            }
        }
        options.isa = isa
        var param = bytes(paramValues), sum = bytes(paramValues.map { $0.magnitude })
        let grad = bytes(gradValues)
        let count = Int64(paramValues.count)
        param.withUnsafeMutableBytes { p in
            sum.withUnsafeMutableBytes { s in
                grad.withUnsafeBytes { g in
                    switch dtype {
                    case .float64:
                        ckpt_adagrad_f64(path, p.baseAddress!.assumingMemoryBound(to: Double.self), g.baseAddress!.assumingMemoryBound(to: Double.self),
                                             s.baseAddress!.assumingMemoryBound(to: Double.self), 0, count, &options)
                    case .float16:
                        ckpt_adagrad_f16(path, p.baseAddress!.assumingMemoryBound(to: UInt16.self), g.baseAddress!.assumingMemoryBound(to: UInt16.self),
                                             s.baseAddress!.assumingMemoryBound(to: UInt16.self), 0, count, &options)
                    case .bfloat16:
                        ckpt_adagrad_bf16(path, p.baseAddress!.assumingMemoryBound(to: UInt16.self), g.baseAddress!.assumingMemoryBound(to: UInt16.self),
                                              s.baseAddress!.assumingMemoryBound(to: UInt16.self), 0, count, &options)
                    default:
                        ckpt_adagrad_f32(path, p.baseAddress!.assumingMemoryBound(to: Float.self), g.baseAddress!.assumingMemoryBound(to: Float.self),
                                             s.baseAddress!.assumingMemoryBound(to: Float.self), 0, count, &options)
                    }
                }
            }
        }
        return param + sum
    }
}
