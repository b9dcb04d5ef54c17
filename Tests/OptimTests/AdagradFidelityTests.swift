import CKernels
import Checkpoint
import Foundation
import Testing

@testable import Optim

/// Replays the torch trajectories written by scripts/make_adagrad_goldens.py through
/// `AdagradKernels.denseUpdate` and compares param and sum with torch's bits at every snapshot.
/// Every expected value comes from the torch files.
///
/// torch's own results depend on the CPU (MKL picks its square-root kernel by vendor and ISA; ATen
/// its vector length), so the files only bind machines of the kind that made them: the test says so
/// instead of comparing when the CPU vendor or ATen's vector width differ.
struct AdagradFidelityTests {
    /// One trajectory from index.json.
    struct GoldenCase: Sendable, CustomTestStringConvertible {
        let name: String
        let file: String
        let dtype: DType
        let implementation: AdagradImplementation
        let lr: Double
        let newLR: Double?
        let lrDecay: Double
        let weightDecay: Double
        let eps: Double
        let maximize: Bool
        let initialAccumulatorValue: Double
        var testDescription: String { name }
    }

    struct Golden: Sendable {
        let directory: URL
        let numel: Int
        let steps: Int
        let snapshotEvery: Int
        let lrChangeStep: Int
        let cpuVendor: String
        let vectorBytes: Int
        let inputs: [String: (initial: String, grads: String)]
        let cases: [GoldenCase]
    }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/adagrad").standardizedFileURL

    static func loadGolden() throws -> Golden {
        let data = try Data(contentsOf: directory.appendingPathComponent("index.json"))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let numel = root["numel"] as? Int, let steps = root["steps"] as? Int,
              let every = root["snapshot_every"] as? Int, let change = root["lr_change_step"] as? Int,
              let vendor = root["cpu_vendor"] as? String, let capability = root["cpu_capability"] as? String,
              let inputs = root["inputs"] as? [String: [String: String]], let cases = root["cases"] as? [[String: Any]]
        else { throw CheckpointError(.corrupt, "index.json lacks a required field") }
        var parsedInputs: [String: (initial: String, grads: String)] = [:]
        for (dtype, files) in inputs {
            guard let initFile = files["init"], let grads = files["grads"] else {
                throw CheckpointError(.corrupt, "inputs entry incomplete", path: dtype)
            }
            parsedInputs[dtype] = (initFile, grads)
        }
        let parsed = try cases.map { entry -> GoldenCase in
            guard let name = entry["name"] as? String, let file = entry["file"] as? String,
                  let dtypeName = entry["dtype"] as? String, let dtype = DType(rawValue: dtypeName),
                  let pathName = entry["implementation"] as? String,
                  let lr = (entry["lr"] as? NSNumber)?.doubleValue,
                  let lrDecay = (entry["lr_decay"] as? NSNumber)?.doubleValue,
                  let wd = (entry["weight_decay"] as? NSNumber)?.doubleValue,
                  let eps = (entry["eps"] as? NSNumber)?.doubleValue,
                  let maximize = entry["maximize"] as? Bool,
                  let iav = (entry["initial_accumulator_value"] as? NSNumber)?.doubleValue
            else { throw CheckpointError(.corrupt, "case entry incomplete", found: "\(entry)") }
            let implementation: AdagradImplementation = switch pathName {
            case "singleTensor": .singleTensor
            case "forEach": .forEach
            default: .fused
            }
            return GoldenCase(
                name: name, file: file, dtype: dtype, implementation: implementation, lr: lr,
                newLR: (entry["new_lr"] as? NSNumber)?.doubleValue, lrDecay: lrDecay, weightDecay: wd, eps: eps,
                maximize: maximize, initialAccumulatorValue: iav)
        }
        return Golden(directory: directory, numel: numel, steps: steps, snapshotEvery: every, lrChangeStep: change,
                      cpuVendor: vendor, vectorBytes: capability == "AVX512" ? 64 : 32, inputs: parsedInputs, cases: parsed)
    }

    static let golden: Golden? = try? loadGolden()
    static var allCases: [GoldenCase] { golden?.cases ?? [] }

    @Test func goldenIndexLoadsWithEveryPathAndDType() throws {
        let golden = try Self.loadGolden()
        #expect(golden.cases.count == 56)
        #expect(golden.steps >= 200)
        for implementation in [AdagradImplementation.singleTensor, .forEach, .fused] {
            for dtype in [DType.float32, .float64, .float16, .bfloat16] {
                #expect(golden.cases.contains { $0.implementation == implementation && $0.dtype == dtype })
            }
        }
    }

    /// The vendor_id of this machine's CPU, as /proc/cpuinfo names it.
    static var machineCPUVendor: String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("vendor_id") }),
              let value = line.split(separator: ":", maxSplits: 1).last
        else { return "unknown" }
        return value.trimmingCharacters(in: .whitespaces)
    }

    @Test(arguments: allCases)
    func trajectoryMatchesTorch(_ golden: GoldenCase) throws {
        let index = try #require(Self.golden)
        guard index.cpuVendor == Self.machineCPUVendor, index.vectorBytes == Int(ckpt_torch_vector_bytes()) else {
            Issue.record("""
                goldens come from a \(index.cpuVendor) CPU with \(index.vectorBytes)-byte vectors; this is a \(Self.machineCPUVendor) \
                CPU with \(ckpt_torch_vector_bytes())-byte vectors, where torch rounds differently: rerun scripts/make_adagrad_goldens.py here
                """)
            return
        }
        let (paramBits, sumBits) = try Self.replay(golden, index)
        let expected = try Data(contentsOf: index.directory.appendingPathComponent(golden.file))
        let realCount = index.numel * (golden.dtype.isComplex ? 2 : 1)
        let scalarBytes = golden.dtype.itemSize / (golden.dtype.isComplex ? 2 : 1)
        let snapshotBytes = 2 * realCount * scalarBytes
        try #require(expected.count == snapshotBytes * paramBits.count)
        for (snapshot, (param, sum)) in zip(paramBits, sumBits).enumerated() {
            let base = snapshot * snapshotBytes
            let torchParam = Self.orderedBits(expected.subdata(in: base..<(base + snapshotBytes / 2)), scalarBytes)
            let torchSum = Self.orderedBits(expected.subdata(in: (base + snapshotBytes / 2)..<(base + snapshotBytes)), scalarBytes)
            let ulp = max(Self.maxDistance(param, torchParam), Self.maxDistance(sum, torchSum))
            #expect(ulp == 0, "\(golden.name): step \((snapshot + 1) * index.snapshotEvery) differs by up to \(ulp) ulp")
            if ulp != 0 { return }
        }
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
