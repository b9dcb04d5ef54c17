import CKernels
import Foundation
import Testing

@testable import Optim

/// Sparse float32/float64 trajectories against torch's (Tests/Fixtures/optim/sparse.json, written by
/// scripts/make_optim_fixtures.py on an AMD CPU), bit for bit: the sparse path takes torch.sqrt as
/// MKL computes it (`ckpt_torch_sqrt_f32/_f64`), not the correctly rounded root.
@Suite struct SparseExactnessTests {
    static let realScenarios = OptimFixtures.names("sparse").filter { !$0.contains("f16") && !$0.contains("bf16") }

    @Test func fixturesHoldFloat32AndFloat64Scenarios() {
        #expect(Self.realScenarios.contains { $0.contains("f32") })
        #expect(Self.realScenarios.contains { $0.contains("f64") })
    }

    @Test(arguments: realScenarios)
    func sparseTrajectoryIsBitIdenticalToTorch(_ name: String) throws {
        let vendor = AdagradFidelityTests.machineCPUVendor
        guard vendor == "AuthenticAMD" else {
            // MKL picks another square-root kernel on Intel CPUs, so torch's own bits differ there.
            Issue.record("sparse.json comes from an AMD CPU; this is \(vendor): regenerate it with scripts/make_optim_fixtures.py")
            return
        }
        let scenario = try OptimFixtures.scenario("sparse", name)
        let observed = try ScenarioRun(scenario).expectMatches(scenario, ulpTolerance: 0)
        #expect(observed == 0)
    }

    /// Zeros, infinities, negatives and NaN take MKL's special path; their roots, like those of
    /// perfect squares, are fixed by IEEE 754 and are what torch.sqrt returns.
    @Test func specialInputsGiveIEEERoots() {
        let inputs: [Double] = [0, -0.0, .infinity, -1, -.infinity, .nan, 4, 0.25, 0x1p100]
        var doubles = inputs
        ckpt_torch_sqrt_f64(&doubles, Int64(doubles.count))
        var floats = inputs.map { Float($0) }
        ckpt_torch_sqrt_f32(&floats, Int64(floats.count))
        for (index, input) in inputs.enumerated() {
            let root = input.squareRoot(), floatRoot = Float(input).squareRoot()
            #expect(doubles[index].bitPattern == root.bitPattern || (doubles[index].isNaN && root.isNaN), "sqrt(\(input))")
            #expect(floats[index].bitPattern == floatRoot.bitPattern || (floats[index].isNaN && floatRoot.isNaN), "sqrt(\(input))")
        }
    }

    /// The array entry point rounds every element as the dense kernel's blocks do, whatever the
    /// count (blocks of 64 and a ragged tail): one element at a time gives the same bits.
    @Test(arguments: [1, 63, 64, 65, 1000])
    func arrayLengthDoesNotChangeRoots(_ count: Int) {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let floats = (0..<count).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) * 0x1p-10
        }
        var whole = floats
        ckpt_torch_sqrt_f32(&whole, Int64(count))
        for (index, value) in floats.enumerated() {
            var single = [value]
            ckpt_torch_sqrt_f32(&single, 1)
            #expect(single[0].bitPattern == whole[index].bitPattern)
        }
    }
}
