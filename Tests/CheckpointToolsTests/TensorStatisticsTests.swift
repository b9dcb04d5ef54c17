import Checkpoint
import CheckpointTools
import Foundation
import Testing

// stats_input.pt and stats_expected.json come from torch (scripts/make_numeric_fixtures.py): every
// expected number is torch's, computed in float64 (`t.double().min()`, `.std()`, `linalg.vector_norm`).

enum StatsFixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/numeric")

    struct Expected: Decodable, Sendable, CustomTestStringConvertible {
        var path: String
        var dtype: String
        var count: Int
        var min: Number?
        var max: Number?
        var mean: Number?
        var std: Number?
        var l2_norm: Number
        var zeros: Int
        var nans: Int
        var infs: Int
        var testDescription: String { path }
    }

    /// A float as the sidecar writes it: a JSON number, or "nan", "inf", "-inf".
    struct Number: Decodable, Sendable {
        var value: Double
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(Double.self) {
                value = number
            } else {
                switch try container.decode(String.self) {
                case "nan": value = .nan
                case "inf": value = .infinity
                case "-inf": value = -.infinity
                case let other: throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a number: \(other)")
                }
            }
        }
    }

    private struct File: Decodable { var tensors: [Expected] }

    static let expected: [Expected] = {
        guard let data = try? Data(contentsOf: directory.appendingPathComponent("stats_expected.json")) else { return [] }
        return (try? JSONDecoder().decode(File.self, from: data).tensors) ?? []
    }()
}

/// Equal within a relative tolerance, NaN equal to NaN, infinities equal by sign.
func close(_ actual: Double?, _ expected: Double?, relative: Double = 1e-12) -> Bool {
    switch (actual, expected) {
    case (nil, nil): return true
    case let (a?, e?):
        if a.isNaN || e.isNaN { return a.isNaN && e.isNaN }
        if a.isInfinite || e.isInfinite { return a == e }
        return abs(a - e) <= relative * max(abs(e), 1e-300) || a == e
    default: return false
    }
}

// Serialized: one test caps the kernels' instruction set process-wide, and another compares results bit for bit.
@Suite("TensorStatistics against torch", .serialized)
struct TensorStatisticsTests {
    static let tree = try? StateValue(contentsOf: StatsFixture.directory.appendingPathComponent("stats_input.pt"))

    @Test func fixtureIsPresent() {
        #expect(Self.tree != nil)
        #expect(StatsFixture.expected.count >= 20)
    }

    @Test(arguments: StatsFixture.expected)
    fileprivate func statisticsMatchTorch(_ expected: StatsFixture.Expected) throws {
        let tree = try #require(Self.tree)
        guard case .tensor(let tensor)? = tree.value(atPath: expected.path) else {
            Issue.record("no tensor at \(expected.path)")
            return
        }
        #expect(tensor.dtype.rawValue == expected.dtype)
        let stats = try TensorStatistics(tensor)
        #expect(stats.count == expected.count)
        #expect(stats.zeroCount == expected.zeros)
        #expect(stats.nanCount == expected.nans)
        #expect(stats.infinityCount == expected.infs)
        #expect(close(stats.minimum, expected.min?.value), "min \(String(describing: stats.minimum))")
        #expect(close(stats.maximum, expected.max?.value), "max \(String(describing: stats.maximum))")
        #expect(close(stats.mean, expected.mean?.value), "mean \(String(describing: stats.mean))")
        // The variance is summed in a different order than torch's; 1e-10 is far below float32 noise.
        #expect(close(stats.standardDeviation, expected.std?.value, relative: 1e-10), "std \(String(describing: stats.standardDeviation))")
        #expect(close(stats.l2Norm, expected.l2_norm.value, relative: 1e-12), "l2 \(stats.l2Norm)")
    }

    /// The portable and AVX2 kernels must agree with torch as well (the CPU picks AVX-512 when it can).
    @Test(arguments: TensorStatistics.InstructionSet.allCases)
    func everyKernelVariantMatchesTorch(_ variant: TensorStatistics.InstructionSet) throws {
        let tree = try #require(Self.tree)
        TensorStatistics.limitInstructionSet(to: variant)
        defer { TensorStatistics.limitInstructionSet(to: nil) }
        for expected in StatsFixture.expected {
            guard case .tensor(let tensor)? = tree.value(atPath: expected.path) else { continue }
            let stats = try TensorStatistics(tensor)
            let what = "\(variant) \(expected.path)"
            #expect(stats.zeroCount == expected.zeros && stats.nanCount == expected.nans && stats.infinityCount == expected.infs, "\(what)")
            #expect(close(stats.minimum, expected.min?.value) && close(stats.maximum, expected.max?.value), "\(what)")
            #expect(close(stats.mean, expected.mean?.value), "\(what) mean")
            #expect(close(stats.standardDeviation, expected.std?.value, relative: 1e-10), "\(what) std")
            #expect(close(stats.l2Norm, expected.l2_norm.value), "\(what) l2")
        }
    }

    @Test func manyTensorsAtOnceEqualOneByOne() throws {
        let tree = try #require(Self.tree)
        let tensors = tree.tensors(matching: nil).map(\.tensor)
        let together = try TensorStatistics.compute(tensors)
        for (tensor, result) in zip(tensors, together) {
            let alone = try TensorStatistics(tensor)
            #expect(alone.count == result.count && alone.nanCount == result.nanCount)
            #expect(close(alone.mean, result.mean, relative: 0) && close(alone.standardDeviation, result.standardDeviation, relative: 0))
        }
    }

    /// Σx² − n·mean² would lose every digit here; the chunked deviations must not.
    @Test func varianceSurvivesALargeOffset() throws {
        let values = (0..<1_000_000).map { 1e9 + Double($0 % 2 == 0 ? 1 : -1) }
        let stats = try TensorStatistics(Tensor(values))
        #expect(stats.mean == 1e9)
        let expected = (1_000_000.0 / 999_999.0).squareRoot()
        #expect(abs(stats.standardDeviation! - expected) < 1e-9)
    }

    /// A stride-0 view of 3·2⁵⁸ elements over three floats: summarized from the three, not walked.
    /// (Its logical size, 12·2⁵⁸ bytes, is just within what a tensor may have.)
    @Test func hugeBroadcastViewIsSummarizedFromItsStorage() throws {
        let base = try Tensor([Float(1), 2, 6])
        let huge = try Tensor(storage: base.storage, dtype: .float32, shape: [1 << 56, 4, 3], strides: [0, 0, 1])
        let stats = try TensorStatistics(huge)
        #expect(stats.count == 3 << 58)
        #expect(stats.minimum == 1 && stats.maximum == 6 && stats.mean == 3)
        #expect(stats.zeroCount == 0)
        // Population variance 14/3; the n − 1 correction vanishes at this size.
        #expect(abs(stats.standardDeviation! - (14.0 / 3).squareRoot()) < 1e-12)
    }

    /// Strides [1, 1] over 2²⁰ floats claim 2⁴⁰ elements: refused instead of walked for hours.
    @Test func endlesslyOverlappingViewIsRefused() throws {
        let base = try Tensor([Float](repeating: 1, count: 1 << 21))
        let view = try Tensor(storage: base.storage, dtype: .float32, shape: [1 << 20, 1 << 20], strides: [1, 1])
        #expect { try TensorStatistics(view) } throws: { ($0 as? CheckpointError)?.code == .unsupported }
        let windows = try Tensor(storage: base.storage, dtype: .float32, shape: [1024, 64], strides: [1, 1])
        #expect(try TensorStatistics(windows).count == 65536)
    }

    @Test func progressReportsEveryByte() throws {
        let tensor = try Tensor([Float](repeating: 1.5, count: 1_000_000))
        let seen = Maximum()
        _ = try TensorStatistics.compute([tensor]) { done, total in seen.record(done, total) }
        #expect(seen.value == (4_000_000, 4_000_000))
    }

    @Test func corruptedStorageThrowsChecksumMismatch() throws {
        let good = try Tensor([Float](repeating: 2, count: 10))
        let bytes = try good.contiguousBytes()
        let storage = bytes.withUnsafeBytes {
            Storage(copying: $0) { _ in throw CheckpointError(.checksumMismatch, "bad crc") }
        }
        let tensor = try Tensor(storage: storage, dtype: .float32, shape: [10])
        #expect { try TensorStatistics(tensor) } throws: { ($0 as? CheckpointError)?.code == .checksumMismatch }
    }
}

private final class Maximum: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var value = (0, 0)
    func record(_ done: Int, _ total: Int) {
        lock.lock()
        if done > value.0 { value = (done, total) }
        lock.unlock()
    }
}
