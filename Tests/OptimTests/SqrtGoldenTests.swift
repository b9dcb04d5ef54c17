import CKernels
import Foundation
import Testing

@testable import Optim

/// torch.sqrt of float32 and float64 values of every magnitude (subnormals, zeros, negatives,
/// infinities and NaN included), as torch recorded it on each kind of machine
/// (scripts/make_sqrt_goldens.py), against `ckpt_torch_sqrt_f32/_f64` with that machine's kernel —
/// wherever this CPU can reproduce it. `CKPT_SQRT_GOLDENS` points at another index directory.
struct SqrtGoldenTests {
    struct Recorded: Sendable, CustomTestStringConvertible {
        let machine: TorchMachine
        let float64: Bool
        let file: String
        var testDescription: String { "\(float64 ? "float64" : "float32") on \(machine)" }
    }

    static let directory: URL = ProcessInfo.processInfo.environment["CKPT_SQRT_GOLDENS"].map { URL(fileURLWithPath: $0) }
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/sqrt").standardizedFileURL

    static func index() throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent("index.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Every recorded (machine, dtype) result.
    static let recorded: [Recorded] = {
        guard let machines = (try? index())?["machines"] as? [[String: Any]] else { return [] }
        return machines.flatMap { entry -> [Recorded] in
            guard let machine = try? TorchMachine(facts: entry), let files = entry["results"] as? [String: String] else { return [] }
            return [(false, "f32"), (true, "f64")].compactMap { float64, key in
                files[key].map { Recorded(machine: machine, float64: float64, file: $0) }
            }
        }
    }()

    static let reproducible = recorded.filter { $0.machine.rounding.sqrtIsReproducible(float64: $0.float64) }

    @Test func indexHoldsFloat32AndFloat64Results() throws {
        #expect(Self.recorded.contains { !$0.float64 })
        #expect(Self.recorded.contains { $0.float64 })
    }

    @Test(.enabled(if: !reproducible.isEmpty, "no recorded torch.sqrt comes from a CPU whose kernel this one reproduces (\(TorchRounding.native))"),
          arguments: reproducible)
    func rootsMatchTorch(_ recorded: Recorded) throws {
        let inputs = try Self.index()["inputs"] as? [String: String]
        let input = try Data(contentsOf: Self.directory.appendingPathComponent(try #require(inputs?[recorded.float64 ? "f64" : "f32"])))
        let expected = try Data(contentsOf: Self.directory.appendingPathComponent(recorded.file))
        try #require(input.count == expected.count && !input.isEmpty)
        let rounding = recorded.machine.rounding
        if recorded.float64 {
            var values = input.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
            let torch = expected.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
            ckpt_torch_sqrt_f64(&values, Int64(values.count), rounding.sqrtF64)
            let differing = zip(values, torch).filter { $0.bitPattern != $1.bitPattern && !($0.isNaN && $1.isNaN) }.count
            #expect(differing == 0, "\(differing) of \(values.count) roots differ from torch's")
        } else {
            var values = input.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let torch = expected.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            ckpt_torch_sqrt_f32(&values, Int64(values.count), rounding.sqrtF32)
            let differing = zip(values, torch).filter { $0.bitPattern != $1.bitPattern && !($0.isNaN && $1.isNaN) }.count
            #expect(differing == 0, "\(differing) of \(values.count) roots differ from torch's")
        }
    }
}
