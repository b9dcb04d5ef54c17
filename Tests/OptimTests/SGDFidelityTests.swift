import CKernels
import Checkpoint
import Foundation
import Testing

@testable import Optim

/// Replays the torch trajectories recorded by scripts/make_sgd_goldens.py through ``SGD`` itself
/// (its step, momentum buffers and state) and compares parameters, buffers and, where torch's
/// foreach path writes them, gradients with torch's bits at every snapshot. Every expected value
/// comes from the torch files.
///
/// torch's SGD bits depend on the machine only through where its threads split float16/bfloat16
/// tensors (`torch_threads`, reproduced for any recorded count) and on ATen fusing multiply-adds
/// (`aten_fma`: AVX2 or AVX-512 capability), so every recorded machine with such an ATen is
/// reproducible on any CPU. Each comparison runs under the recorded machine's rounding and under
/// every instruction-set variant of our kernels this CPU has. `CKPT_SGD_GOLDENS` points at another
/// index directory (`make interop` records this machine's there and compares against it); the
/// dense inputs are always the committed Adagrad inputs.
struct SGDFidelityTests {
    /// One case from index.json.
    struct GoldenCase: Sendable {
        enum Kind: String, Sendable { case dense, sparse, chunked }
        let name: String
        let kind: Kind
        let dtype: DType
        let implementation: OptimizerImplementation
        let lr: Double
        let momentum: Double
        let dampening: Double
        let weightDecay: Double
        let nesterov: Bool
        let maximize: Bool
        let newLR: Double?
        let tensorLR: Bool
        let recordsGrad: Bool
        /// A second parameter (the first one reversed) gets gradients from this step on.
        let lateStart: Int?
        let layout: String?
        let numel: Int?
        let dependsOn: [String]
    }

    /// One case compared against the machines that recorded the same result.
    struct Comparison: Sendable, CustomTestStringConvertible {
        let golden: GoldenCase
        let machine: TorchMachine
        let file: String
        var testDescription: String { "\(golden.name) on \(machine)" }
    }

    struct Golden: Sendable {
        let directory: URL
        let numel: Int
        let steps: Int
        let snapshotEvery: Int
        let lrChangeStep: Int
        let sparseNNZ: Int
        let sparseSteps: Int
        let sparseSnapshotEvery: Int
        let sparseShapes: [String: [Int]]
        let chunkedSteps: Int
        let cases: [GoldenCase]
        let machines: [(torch: TorchMachine, results: [String: String])]
    }

    static let directory: URL = ProcessInfo.processInfo.environment["CKPT_SGD_GOLDENS"].map { URL(fileURLWithPath: $0) }
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/sgd").standardizedFileURL
    static let inputs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/adagrad").standardizedFileURL

    static func loadGolden() throws -> Golden {
        let data = try Data(contentsOf: directory.appendingPathComponent("index.json"))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let numel = root["numel"] as? Int, let steps = root["steps"] as? Int,
              let every = root["snapshot_every"] as? Int, let change = root["lr_change_step"] as? Int,
              let sparse = root["sparse"] as? [String: Any], let nnz = sparse["nnz"] as? Int,
              let sparseSteps = sparse["steps"] as? Int, let sparseEvery = sparse["snapshot_every"] as? Int,
              let shapes = sparse["shapes"] as? [String: [Int]], let chunkedSteps = root["chunked_steps"] as? Int,
              let cases = root["cases"] as? [[String: Any]], let machines = root["machines"] as? [[String: Any]]
        else { throw CheckpointError(.corrupt, "index.json lacks a required field") }
        let parsed = try cases.map { entry -> GoldenCase in
            guard let name = entry["name"] as? String, let kind = (entry["kind"] as? String).flatMap(GoldenCase.Kind.init),
                  let dtype = (entry["dtype"] as? String).flatMap(DType.init(rawValue:)),
                  let pathName = entry["implementation"] as? String,
                  let lr = (entry["lr"] as? NSNumber)?.doubleValue, let dependsOn = entry["depends_on"] as? [String]
            else { throw CheckpointError(.corrupt, "case entry incomplete", found: "\(entry)") }
            let implementation: OptimizerImplementation = switch pathName {
            case "singleTensor": .singleTensor
            case "forEach": .forEach
            default: .fused
            }
            func number(_ key: String) -> Double { (entry[key] as? NSNumber)?.doubleValue ?? 0 }
            return GoldenCase(
                name: name, kind: kind, dtype: dtype, implementation: implementation, lr: lr, momentum: number("momentum"),
                dampening: number("dampening"), weightDecay: number("weight_decay"), nesterov: entry["nesterov"] as? Bool ?? false,
                maximize: entry["maximize"] as? Bool ?? false, newLR: (entry["new_lr"] as? NSNumber)?.doubleValue,
                tensorLR: entry["tensor_lr"] as? Bool ?? false, recordsGrad: entry["records_grad"] as? Bool ?? false,
                lateStart: entry["late_start"] as? Int, layout: entry["layout"] as? String, numel: entry["numel"] as? Int,
                dependsOn: dependsOn)
        }
        let parsedMachines = try machines.map { entry -> (torch: TorchMachine, results: [String: String]) in
            guard let results = entry["results"] as? [String: String] else {
                throw CheckpointError(.corrupt, "machine entry without results", found: "\(entry)")
            }
            return (try TorchMachine(facts: entry), results)
        }
        return Golden(directory: directory, numel: numel, steps: steps, snapshotEvery: every, lrChangeStep: change,
                      sparseNNZ: nnz, sparseSteps: sparseSteps, sparseSnapshotEvery: sparseEvery, sparseShapes: shapes,
                      chunkedSteps: chunkedSteps, cases: parsed, machines: parsedMachines)
    }

    static let golden: Golden? = try? loadGolden()

    /// Every distinct (case, result) pair from a machine whose ATen fuses multiply-adds: machines
    /// that recorded the same file (at the same thread count, where that matters) share one run.
    static let comparisons: [Comparison] = {
        guard let golden else { return [] }
        return golden.cases.flatMap { golden -> [Comparison] in
            var seen = Set<String>()
            return Self.golden!.machines.compactMap { machine in
                guard machine.torch.atenFusesMultiplyAdds, let file = machine.results[golden.name] else { return nil }
                let key = golden.dependsOn.contains("torch_threads") ? "\(file)@\(machine.torch.threads)" : file
                guard seen.insert(key).inserted else { return nil }
                return Comparison(golden: golden, machine: machine.torch, file: file)
            }
        }
    }()

    static let unreproducible: [String] = golden?.machines.filter { !$0.torch.atenFusesMultiplyAdds }.map { "\($0.torch)" } ?? []

    /// The instruction-set variants of our kernels this CPU runs.
    static let variants = [CKPT_ISA_BASELINE, CKPT_ISA_AVX2, CKPT_ISA_AVX512].filter { ckpt_isa_available($0) != 0 }

    @Test func goldenIndexCoversEveryPathDTypeAndKind() throws {
        let golden = try Self.loadGolden()
        #expect(golden.steps >= 200)
        #expect(!golden.machines.isEmpty)
        for implementation in [OptimizerImplementation.singleTensor, .forEach, .fused] {
            for dtype in [DType.float32, .float64, .float16, .bfloat16] {
                #expect(golden.cases.contains { $0.kind == .dense && $0.implementation == implementation && $0.dtype == dtype && $0.nesterov })
                #expect(golden.cases.contains { $0.kind == .dense && $0.implementation == implementation && $0.dtype == dtype && $0.dampening != 0 })
            }
        }
        for dtype in [DType.complex64, .complex128] { #expect(golden.cases.contains { $0.dtype == dtype }) }
        #expect(golden.cases.contains { $0.kind == .sparse && $0.layout == "wide_strided" })
        #expect(golden.cases.contains { $0.kind == .chunked })
        #expect(golden.cases.contains { $0.recordsGrad })
        #expect(golden.cases.contains { $0.lateStart != nil && $0.implementation == .forEach })
    }

    @Test(.enabled(if: !comparisons.isEmpty, "no recorded machine's ATen fuses multiply-adds (recorded: \(unreproducible))"),
          arguments: comparisons)
    func trajectoryMatchesTorch(_ comparison: Comparison) throws {
        let index = try #require(Self.golden)
        let expected = [UInt8](try Data(contentsOf: index.directory.appendingPathComponent(comparison.file)))
        try #require(!Self.variants.isEmpty)
        for isa in Self.variants {
            try TorchRounding.$instructionSet.withValue(isa) {
                try TorchRounding.$current.withValue(comparison.machine.rounding) {
                    let observed: [UInt8] = switch comparison.golden.kind {
                    case .dense: try Self.replayDense(comparison.golden, index)
                    case .sparse: try Self.replaySparse(comparison.golden, index)
                    case .chunked: try Self.replayChunked(comparison.golden, index)
                    }
                    try Self.expectSameBits(observed, expected, comparison.golden, isa: isa)
                }
            }
        }
    }

    static func expectSameBits(_ observed: [UInt8], _ expected: [UInt8], _ golden: GoldenCase, isa: ckpt_isa) throws {
        try #require(observed.count == expected.count, "\(golden.name): \(observed.count) bytes recorded, torch's file has \(expected.count)")
        guard observed != expected else { return }
        let scalarBytes = golden.dtype.itemSize / (golden.dtype.isComplex ? 2 : 1)
        let first = zip(observed, expected).enumerated().first { $0.element.0 != $0.element.1 }!.offset
        let ulp = AdagradFidelityTests.maxDistance(
            AdagradFidelityTests.orderedBits(Data(observed), scalarBytes), AdagradFidelityTests.orderedBits(Data(expected), scalarBytes))
        Issue.record("\(golden.name), ISA variant \(isa.rawValue): differs from byte \(first) on, by up to \(ulp) ulp")
    }

    // MARK: Replays

    static func makeOptimizer(_ params: [Parameter], _ golden: GoldenCase) throws -> SGD {
        let foreach: Bool? = golden.implementation == .fused ? nil : golden.implementation == .forEach
        let fused: Bool? = golden.implementation == .fused ? true : nil
        let momentum = golden.momentum == 0 ? nil : golden.momentum
        let dampening = golden.dampening == 0 ? nil : golden.dampening
        let weightDecay = golden.weightDecay == 0 ? nil : golden.weightDecay
        if golden.tensorLR {
            return try SGD(params, lr: Tensor([Float(golden.lr)], shape: []), momentum: momentum, dampening: dampening,
                           weightDecay: weightDecay, nesterov: golden.nesterov, maximize: golden.maximize, foreach: foreach, fused: fused)
        }
        return try SGD(params, lr: golden.lr, momentum: momentum, dampening: dampening, weightDecay: weightDecay,
                       nesterov: golden.nesterov, maximize: golden.maximize, foreach: foreach, fused: fused)
    }

    /// Each parameter's bytes, its momentum buffer's (when it has one) and its gradient's (when recorded).
    static func snapshot(_ params: [Parameter], _ optimizer: SGD, recordsGrad: Bool) throws -> [UInt8] {
        var bytes: [UInt8] = []
        for parameter in params {
            bytes += try parameter.data.contiguousBytes()
            if case .tensor(let buffer)? = optimizer.state(for: parameter)?[.string("momentum_buffer")] {
                bytes += try buffer.contiguousBytes()
            }
            if recordsGrad, case .dense(let grad)? = parameter.grad { bytes += try grad.contiguousBytes() }
        }
        return bytes
    }

    /// A tensor of `dtype` from little-endian bytes.
    static func tensor(_ bytes: some Collection<UInt8>, _ dtype: DType, _ shape: [Int]) throws -> Tensor {
        try Tensor(storage: Storage(bytes: Array(bytes)), dtype: dtype, shape: shape)
    }

    /// The elements in reverse order (`flip(0)` of a vector).
    static func reversed(_ bytes: [UInt8], itemSize: Int) -> [UInt8] {
        stride(from: bytes.count - itemSize, through: 0, by: -itemSize).flatMap { bytes[$0..<($0 + itemSize)] }
    }

    static func replayDense(_ golden: GoldenCase, _ index: Golden) throws -> [UInt8] {
        let initial = [UInt8](try Data(contentsOf: inputs.appendingPathComponent("init_\(golden.dtype.rawValue).bin")))
        let grads = [UInt8](try Data(contentsOf: inputs.appendingPathComponent("grads_\(golden.dtype.rawValue).bin")))
        let itemSize = golden.dtype.itemSize, elementBytes = index.numel * itemSize
        try #require(initial.count == elementBytes && grads.count == elementBytes * index.steps)
        var params = [Parameter(try tensor(initial, golden.dtype, [index.numel]))]
        if golden.lateStart != nil { params.append(Parameter(try tensor(reversed(initial, itemSize: itemSize), golden.dtype, [index.numel]))) }
        let optimizer = try makeOptimizer(params, golden)
        var bytes: [UInt8] = []
        for step in 1...index.steps {
            if let newLR = golden.newLR, step == index.lrChangeStep + 1 { try optimizer.setOption("lr", to: .float(newLR), inGroup: 0) }
            let grad = Array(grads[((step - 1) * elementBytes)..<(step * elementBytes)])
            params[0].grad = .dense(try tensor(grad, golden.dtype, [index.numel]))
            if let late = golden.lateStart {
                params[1].grad = step >= late ? .dense(try tensor(reversed(grad, itemSize: itemSize), golden.dtype, [index.numel])) : nil
            }
            try optimizer.step()
            if step % index.snapshotEvery == 0 { bytes += try snapshot(params, optimizer, recordsGrad: golden.recordsGrad) }
        }
        return bytes
    }

    /// A float32 formula value as `dtype` (every value the formulas give is exact in each dtype).
    static func tensor(_ values: [Float], _ dtype: DType, _ shape: [Int]) throws -> Tensor {
        switch dtype {
        case .float64: try Tensor(values.map(Double.init), shape: shape)
        case .float16: try Tensor(values.map { Float16($0) }, shape: shape)
        case .bfloat16: try Tensor(values.map { BFloat16($0) }, shape: shape)
        default: try Tensor(values, shape: shape)
        }
    }

    /// sparse_param() and sparse_grad() of the script.
    static func sparseGrad(_ golden: GoldenCase, _ index: Golden, shape: [Int], step: Int) throws -> SparseTensor {
        let nnz = index.sparseNNZ, block = shape.count > 1 ? shape[1] : 1
        let positions = (0..<nnz).map { Int64(($0 * 5 + step * 3) % 7 * 3 % shape[0]) }
        let values = (0..<(nnz * block)).map { Float(($0 * 13 + step * 7) % 31 - 15) / 32 }
        let valueTensor: Tensor = if golden.layout == "wide_strided" {
            // Element [k, j] at k + j * nnz: the transposed view torch's values are.
            try tensor(values, golden.dtype, [block, nnz]).viewed(shape: [nnz, block], strides: [1, nnz])
        } else {
            try tensor(values, golden.dtype, shape.count > 1 ? [nnz, block] : [nnz])
        }
        let grad = try SparseTensor(indices: Tensor(positions, shape: [1, nnz]), values: valueTensor, shape: shape)
        return golden.layout == "rows_coalesced" ? try grad.coalesced() : grad
    }

    static func replaySparse(_ golden: GoldenCase, _ index: Golden) throws -> [UInt8] {
        let shape = try #require(golden.layout.flatMap { index.sparseShapes[$0] })
        let count = shape.reduce(1, *)
        let parameter = Parameter(try tensor((0..<count).map { Float(($0 * 37) % 29 - 14) / 16 }, golden.dtype, shape))
        let optimizer = try makeOptimizer([parameter], golden)
        var bytes: [UInt8] = []
        for step in 1...index.sparseSteps {
            parameter.grad = .sparse(try sparseGrad(golden, index, shape: shape, step: step))
            try optimizer.step()
            if step % index.sparseSnapshotEvery == 0 { bytes += try parameter.data.contiguousBytes() }
        }
        return bytes
    }

    /// run_chunked() of the script: Adagrad's chunked inputs, the gradient rolled by the step.
    static func replayChunked(_ golden: GoldenCase, _ index: Golden) throws -> [UInt8] {
        let count = try #require(golden.numel)
        let (paramValues, gradValues) = AdagradFidelityTests.chunkedInputs(count)
        let parameter = Parameter(try tensor(paramValues, golden.dtype, [count]))
        let optimizer = try makeOptimizer([parameter], golden)
        for step in 0..<index.chunkedSteps {
            let rolled = (0..<count).map { gradValues[(($0 - step) % count + count) % count] }
            parameter.grad = .dense(try tensor(rolled, golden.dtype, [count]))
            try optimizer.step()
        }
        return try snapshot([parameter], optimizer, recordsGrad: false)
    }
}
