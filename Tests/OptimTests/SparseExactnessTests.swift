import CKernels
import Foundation
import Testing

@testable import Optim

/// torch.sqrt as MKL computes it (`ckpt_torch_sqrt_f32/_f64`), which the sparse path and the dense
/// kernels use instead of the correctly rounded root. Trajectories against torch are in
/// TorchScenarioTests and AdagradFidelityTests; these check the entry points themselves, for every
/// kind of MKL kernel this CPU can reproduce.
@Suite struct SparseExactnessTests {
    static let kinds = [CKPT_SQRT_EXACT, CKPT_SQRT_MKL_SSE_F32, CKPT_SQRT_MKL_AVX2_F32, CKPT_SQRT_MKL_AVX2_F64, CKPT_SQRT_MKL_AVX512]
        .filter { ckpt_torch_sqrt_reproducible($0, ckpt_cpu_vendor_id()) != 0 }

    @Test func fixturesHoldFloat32AndFloat64Scenarios() {
        let names = OptimFixtures.names("sparse")
        #expect(names.contains { $0.contains("f32") })
        #expect(names.contains { $0.contains("f64") })
    }

    /// Zeros, infinities, negatives and NaN take MKL's special path; their roots, like those of
    /// perfect squares, are fixed by IEEE 754 and are what torch.sqrt returns.
    @Test(arguments: kinds)
    func specialInputsGiveIEEERoots(_ kind: ckpt_torch_sqrt_kind) {
        let inputs: [Double] = [0, -0.0, .infinity, -1, -.infinity, .nan, 4, 0.25, 0x1p100]
        var doubles = inputs
        ckpt_torch_sqrt_f64(&doubles, Int64(doubles.count), kind)
        var floats = inputs.map { Float($0) }
        ckpt_torch_sqrt_f32(&floats, Int64(floats.count), kind)
        for (index, input) in inputs.enumerated() {
            let root = input.squareRoot(), floatRoot = Float(input).squareRoot()
            #expect(doubles[index].bitPattern == root.bitPattern || (doubles[index].isNaN && root.isNaN), "sqrt(\(input))")
            #expect(floats[index].bitPattern == floatRoot.bitPattern || (floats[index].isNaN && floatRoot.isNaN), "sqrt(\(input))")
        }
    }

    /// The array entry point rounds every element as the dense kernel's blocks do, whatever the
    /// count (blocks of 64 and a ragged tail): one element at a time gives the same bits.
    @Test(arguments: [1, 63, 64, 65, 1000], kinds)
    func arrayLengthDoesNotChangeRoots(_ count: Int, _ kind: ckpt_torch_sqrt_kind) {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let floats = (0..<count).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) * 0x1p-10
        }
        var whole = floats
        ckpt_torch_sqrt_f32(&whole, Int64(count), kind)
        for (index, value) in floats.enumerated() {
            var single = [value]
            ckpt_torch_sqrt_f32(&single, 1, kind)
            #expect(single[0].bitPattern == whole[index].bitPattern)
        }
    }
}

extension ckpt_torch_sqrt_kind: @retroactive CustomTestStringConvertible {
    public var testDescription: String {
        switch self {
        case CKPT_SQRT_MKL_SSE_F32: "MKL SSE float32"
        case CKPT_SQRT_MKL_AVX2_F32: "MKL AVX2 float32"
        case CKPT_SQRT_MKL_AVX2_F64: "MKL AVX2 float64"
        case CKPT_SQRT_MKL_AVX512: "MKL AVX-512"
        default: "exact"
        }
    }
}
