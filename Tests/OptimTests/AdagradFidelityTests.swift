import CKernels
import Checkpoint
import Foundation
import Testing

@testable import Optim

/// Replays the torch trajectories recorded by scripts/make_adagrad_goldens.py through
/// `AdagradKernels.denseUpdate` and compares param and sum with torch's bits at every snapshot.
/// Every expected value comes from the torch files.
///
/// torch's own bits depend on the machine, so the index holds one result set per kind of machine
/// torch ran on, and each case names what its result depends on (`depends_on`):
/// - `sqrt_f32`/`sqrt_f64`: MKL's square-root kernel, chosen by CPU vendor and MKL's instruction
///   set. A set is compared where this CPU reproduces that kernel (``TorchRounding``); rsqrtps
///   estimates differ between vendors, rsqrt14 needs AVX-512.
/// - `torch_threads`: where at::parallel_for splits the work; reproduced for any recorded count.
/// - nothing: the same bits everywhere (the script checks that across every machine it records).
/// Each comparison runs under the recorded machine's rounding, and under every instruction-set
/// variant of our kernels this CPU has. `CKPT_ADAGRAD_GOLDENS` points at another index directory
/// (`make interop` records this machine's there and compares against it).
struct AdagradFidelityTests {
    /// One trajectory from index.json.
    struct GoldenCase: Sendable {
        let name: String
        let dtype: DType
        let implementation: OptimizerImplementation
        let lr: Double
        let newLR: Double?
        let lrDecay: Double
        let weightDecay: Double
        let eps: Double
        let maximize: Bool
        let initialAccumulatorValue: Double
        /// Elements; nil for the trajectories over `numel` elements, else a one-step chunked case.
        let chunkedNumel: Int?
        let dependsOn: [String]

        /// Whether the result depends on torch's float32 (false) or float64 (true) square root.
        var sqrtDependency: Bool? {
            dependsOn.contains("sqrt_f64") ? true : dependsOn.contains("sqrt_f32") ? false : nil
        }
    }

    /// The torch that recorded one result set, and its file per case.
    struct Machine: Sendable {
        let torch: TorchMachine
        let results: [String: String]
    }

    /// One case compared against one machine's result.
    struct Comparison: Sendable, CustomTestStringConvertible {
        let golden: GoldenCase
        let machine: Machine
        var testDescription: String { "\(golden.name) on \(machine.torch)" }
    }

    struct Golden: Sendable {
        let directory: URL
        let numel: Int
        let steps: Int
        let snapshotEvery: Int
        let lrChangeStep: Int
        let inputs: [String: (initial: String, grads: String)]
        let cases: [GoldenCase]
        let machines: [Machine]
    }

    static let directory: URL = ProcessInfo.processInfo.environment["CKPT_ADAGRAD_GOLDENS"].map { URL(fileURLWithPath: $0) }
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/adagrad").standardizedFileURL

    static func loadGolden() throws -> Golden {
        let data = try Data(contentsOf: directory.appendingPathComponent("index.json"))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let numel = root["numel"] as? Int, let steps = root["steps"] as? Int,
              let every = root["snapshot_every"] as? Int, let change = root["lr_change_step"] as? Int,
              let inputs = root["inputs"] as? [String: [String: String]], let cases = root["cases"] as? [[String: Any]],
              let machines = root["machines"] as? [[String: Any]]
        else { throw CheckpointError(.corrupt, "index.json lacks a required field") }
        var parsedInputs: [String: (initial: String, grads: String)] = [:]
        for (dtype, files) in inputs {
            guard let initFile = files["init"], let grads = files["grads"] else {
                throw CheckpointError(.corrupt, "inputs entry incomplete", path: dtype)
            }
            parsedInputs[dtype] = (initFile, grads)
        }
        let parsed = try cases.map { entry -> GoldenCase in
            guard let name = entry["name"] as? String,
                  let dtypeName = entry["dtype"] as? String, let dtype = DType(rawValue: dtypeName),
                  let pathName = entry["implementation"] as? String,
                  let lr = (entry["lr"] as? NSNumber)?.doubleValue,
                  let wd = (entry["weight_decay"] as? NSNumber)?.doubleValue,
                  let dependsOn = entry["depends_on"] as? [String]
            else { throw CheckpointError(.corrupt, "case entry incomplete", found: "\(entry)") }
            let implementation: OptimizerImplementation = switch pathName {
            case "singleTensor": .singleTensor
            case "forEach": .forEach
            default: .fused
            }
            return GoldenCase(
                name: name, dtype: dtype, implementation: implementation, lr: lr,
                newLR: (entry["new_lr"] as? NSNumber)?.doubleValue, lrDecay: (entry["lr_decay"] as? NSNumber)?.doubleValue ?? 0,
                weightDecay: wd, eps: (entry["eps"] as? NSNumber)?.doubleValue ?? 1e-10, maximize: entry["maximize"] as? Bool ?? false,
                initialAccumulatorValue: (entry["initial_accumulator_value"] as? NSNumber)?.doubleValue ?? 0,
                chunkedNumel: entry["numel"] as? Int, dependsOn: dependsOn)
        }
        let parsedMachines = try machines.map { entry -> Machine in
            guard let results = entry["results"] as? [String: String] else {
                throw CheckpointError(.corrupt, "machine entry without results", found: "\(entry)")
            }
            return Machine(torch: try TorchMachine(facts: entry), results: results)
        }
        return Golden(directory: directory, numel: numel, steps: steps, snapshotEvery: every, lrChangeStep: change,
                      inputs: parsedInputs, cases: parsed, machines: parsedMachines)
    }

    static let golden: Golden? = try? loadGolden()

    /// Every (case, machine) pair whose torch result this CPU reproduces.
    static func comparisons(sqrtDependent: Bool) -> [Comparison] {
        guard let golden else { return [] }
        return golden.cases.flatMap { golden -> [Comparison] in
            guard (golden.sqrtDependency != nil) == sqrtDependent else { return [] }
            return Self.golden!.machines.compactMap { machine in
                guard machine.results[golden.name] != nil else { return nil }
                if let float64 = golden.sqrtDependency, !machine.torch.rounding.sqrtIsReproducible(float64: float64) { return nil }
                return Comparison(golden: golden, machine: machine)
            }
        }
    }

    static let sqrtComparisons = comparisons(sqrtDependent: true)

    /// The instruction-set variants of our kernels this CPU runs. (The default is one of them; the
    /// rest of the suite runs it, capped by CKPT_ISA in `make test`'s reruns.)
    static let variants = [CKPT_ISA_BASELINE, CKPT_ISA_AVX2, CKPT_ISA_AVX512].filter { ckpt_isa_available($0) != 0 }

    @Test func goldenIndexLoadsWithEveryPathAndDType() throws {
        let golden = try Self.loadGolden()
        #expect(golden.cases.count(where: { $0.chunkedNumel == nil }) == 56)
        #expect(golden.cases.contains { $0.chunkedNumel != nil })
        #expect(golden.steps >= 200)
        #expect(!golden.machines.isEmpty)
        for implementation in [OptimizerImplementation.singleTensor, .forEach, .fused] {
            for dtype in [DType.float32, .float64, .float16, .bfloat16] {
                #expect(golden.cases.contains { $0.implementation == implementation && $0.dtype == dtype })
            }
        }
    }

    /// Cases whose result is the same on every machine (fused, float16/bfloat16, thread-split
    /// chunks at the recorded thread count), against every recorded machine.
    @Test(arguments: comparisons(sqrtDependent: false))
    func machineIndependentTrajectoryMatchesTorch(_ comparison: Comparison) throws {
        try Self.compare(comparison)
    }

    /// Cases that depend on MKL's square root, against each machine whose kernel this CPU reproduces.
    @Test(
        .enabled(if: !sqrtComparisons.isEmpty, """
            no recorded golden comes from a CPU whose torch.sqrt this CPU reproduces (here: \(TorchRounding.native)); \
            `make interop` records this machine's goldens and compares against them
            """),
        arguments: sqrtComparisons)
    func sqrtDependentTrajectoryMatchesTorch(_ comparison: Comparison) throws {
        try Self.compare(comparison)
    }

    static let nativeIsRecorded = golden?.machines.contains { $0.torch.rounding.sqrtMatches(.native) } ?? false

    /// Every machine-dependent case has a result recorded by torch on a machine like this one.
    @Test(.enabled(if: nativeIsRecorded, "no golden was recorded by torch on a CPU like this one (\(TorchRounding.native)); `make interop` records them"))
    func thisMachinesTorchIsCovered() throws {
        let golden = try #require(Self.golden)
        for golden in golden.cases where golden.sqrtDependency != nil {
            let covered = Self.sqrtComparisons.contains { $0.golden.name == golden.name && $0.machine.torch.rounding.sqrtMatches(.native) }
            #expect(covered, "\(golden.name) has no result recorded on a machine like this one")
        }
    }

    static func compare(_ comparison: Comparison) throws {
        let index = try #require(Self.golden)
        let golden = comparison.golden
        let file = try #require(comparison.machine.results[golden.name])
        let expected = try Data(contentsOf: index.directory.appendingPathComponent(file))
        try #require(!variants.isEmpty)
        for isa in variants {
            try TorchRounding.$instructionSet.withValue(isa) {
                try TorchRounding.$current.withValue(comparison.machine.torch.rounding) {
                    if let numel = golden.chunkedNumel {
                        try compareChunked(golden, numel: numel, expected: expected, isa: isa)
                    } else {
                        try compareTrajectory(golden, index, expected: expected, isa: isa)
                    }
                }
            }
        }
    }

    static func compareTrajectory(_ golden: GoldenCase, _ index: Golden, expected: Data, isa: ckpt_isa) throws {
        let (paramBits, sumBits) = try Self.replay(golden, index)
        let realCount = index.numel * (golden.dtype.isComplex ? 2 : 1)
        let scalarBytes = golden.dtype.itemSize / (golden.dtype.isComplex ? 2 : 1)
        let snapshotBytes = 2 * realCount * scalarBytes
        try #require(expected.count == snapshotBytes * paramBits.count)
        for (snapshot, (param, sum)) in zip(paramBits, sumBits).enumerated() {
            let base = snapshot * snapshotBytes
            let torchParam = Self.orderedBits(expected.subdata(in: base..<(base + snapshotBytes / 2)), scalarBytes)
            let torchSum = Self.orderedBits(expected.subdata(in: (base + snapshotBytes / 2)..<(base + snapshotBytes)), scalarBytes)
            let ulp = max(Self.maxDistance(param, torchParam), Self.maxDistance(sum, torchSum))
            #expect(ulp == 0, "\(golden.name), ISA variant \(isa.rawValue): step \((snapshot + 1) * index.snapshotEvery) differs by up to \(ulp) ulp")
            if ulp != 0 { return }
        }
    }

    /// One step on a tensor large enough for torch to split `add(alpha:)` over its threads; the
    /// inputs follow the formula of chunked_inputs() in the script (every value exact in float32).
    static func compareChunked(_ golden: GoldenCase, numel count: Int, expected: Data, isa: ckpt_isa) throws {
        let (paramValues, gradValues) = chunkedInputs(count)
        func tensor(_ floats: [Float]) throws -> Tensor {
            golden.dtype == .float16 ? try Tensor(floats.map { Float16($0) }) : try Tensor(floats.map { BFloat16($0) })
        }
        let param = try tensor(paramValues), grad = try tensor(gradValues), sum = try Tensor(zeros: golden.dtype, shape: [count])
        let hyper = AdagradHyperparameters(lr: golden.lr, weightDecay: golden.weightDecay)
        try AdagradKernels.denseUpdate(param: param, grad: grad, sum: sum, step: 1, hyper: hyper, implementation: golden.implementation)
        let bytes = [UInt8](expected)
        try #require(bytes.count == 4 * count)
        #expect(try param.contiguousBytes() == Array(bytes[0..<(2 * count)]), "param, ISA variant \(isa.rawValue)")
        #expect(try sum.contiguousBytes() == Array(bytes[(2 * count)...]), "sum, ISA variant \(isa.rawValue)")
    }

    /// chunked_inputs() of scripts/make_adagrad_goldens.py: every value exact in float16 and bfloat16.
    static func chunkedInputs(_ count: Int) -> (param: [Float], grad: [Float]) {
        ((0..<count).map { Float(($0 * 7919) % 2001 - 1000) / 64 }, (0..<count).map { Float(($0 * 104729) % 1999 - 999) / 128 })
    }

    /// Runs the trajectory through our kernels; returns the ordered bits of param and sum at each snapshot.
    static func replay(_ golden: GoldenCase, _ index: Golden) throws -> ([[Int64]], [[Int64]]) {
        let files = try #require(index.inputs[golden.dtype.rawValue])
        let initial = try Data(contentsOf: index.directory.appendingPathComponent(files.initial))
        let grads = try Data(contentsOf: index.directory.appendingPathComponent(files.grads))
        let shape = [index.numel]
        let elementBytes = index.numel * golden.dtype.itemSize
        try #require(initial.count == elementBytes && grads.count == elementBytes * index.steps)
        let param = try Tensor(storage: Storage(bytes: [UInt8](initial)), dtype: golden.dtype, shape: shape)
        let sum = try Tensor(storage: Storage(bytes: accumulatorBytes(golden, count: index.numel)), dtype: golden.dtype, shape: shape)
        let scalarBytes = golden.dtype.itemSize / (golden.dtype.isComplex ? 2 : 1)
        var params: [[Int64]] = [], sums: [[Int64]] = []
        for step in 1...index.steps {
            let offset = (step - 1) * elementBytes
            let grad = try Tensor(
                storage: Storage(bytes: [UInt8](grads.subdata(in: offset..<(offset + elementBytes)))),
                dtype: golden.dtype, shape: shape)
            let lr = step > index.lrChangeStep ? (golden.newLR ?? golden.lr) : golden.lr
            let hyper = AdagradHyperparameters(
                lr: lr, lrDecay: golden.lrDecay, weightDecay: golden.weightDecay, eps: golden.eps, maximize: golden.maximize)
            try AdagradKernels.denseUpdate(
                param: param, grad: grad, sum: sum, step: Float(step), hyper: hyper, implementation: golden.implementation)
            if step % index.snapshotEvery == 0 {
                params.append(orderedBits(Data(try param.contiguousBytes()), scalarBytes))
                sums.append(orderedBits(Data(try sum.contiguousBytes()), scalarBytes))
            }
        }
        return (params, sums)
    }

    /// torch.full_like(p, iav) (complex: iav + iav·i), as bytes.
    static func accumulatorBytes(_ golden: GoldenCase, count: Int) throws -> [UInt8] {
        let value = golden.initialAccumulatorValue
        switch golden.dtype {
        case .float32, .complex64:
            return Array(repeating: Float(value), count: count * (golden.dtype.isComplex ? 2 : 1)).withUnsafeBytes { Array($0) }
        case .float64, .complex128:
            return Array(repeating: value, count: count * (golden.dtype.isComplex ? 2 : 1)).withUnsafeBytes { Array($0) }
        case .float16:
            return Array(repeating: Float16(Float(value)).bitPattern, count: count).withUnsafeBytes { Array($0) }
        case .bfloat16:
            return Array(repeating: BFloat16(Float(value)).bitPattern, count: count).withUnsafeBytes { Array($0) }
        default:
            throw CheckpointError(.typeMismatch, "no accumulator for this dtype", found: "\(golden.dtype)")
        }
    }

    /// Maps IEEE bit patterns to integers whose difference counts representable values between them.
    static func orderedBits(_ data: Data, _ scalarBytes: Int) -> [Int64] {
        data.withUnsafeBytes { raw -> [Int64] in
            switch scalarBytes {
            case 8:
                return raw.bindMemory(to: UInt64.self).map { Self.ordered(Int64(bitPattern: $0 & 0x7FFF_FFFF_FFFF_FFFF), negative: $0 >> 63 == 1) }
            case 4:
                return raw.bindMemory(to: UInt32.self).map { Self.ordered(Int64($0 & 0x7FFF_FFFF), negative: $0 >> 31 == 1) }
            default:
                return raw.bindMemory(to: UInt16.self).map { Self.ordered(Int64($0 & 0x7FFF), negative: $0 >> 15 == 1) }
            }
        }
    }

    static func ordered(_ magnitude: Int64, negative: Bool) -> Int64 { negative ? -magnitude : magnitude }

    static func maxDistance(_ a: [Int64], _ b: [Int64]) -> Int64 {
        zip(a, b).reduce(Int64(0)) { worst, pair in
            let (difference, overflow) = pair.0.subtractingReportingOverflow(pair.1)
            return max(worst, overflow ? Int64.max : difference.magnitude > UInt64(Int64.max) ? Int64.max : Int64(difference.magnitude))
        }
    }
}
