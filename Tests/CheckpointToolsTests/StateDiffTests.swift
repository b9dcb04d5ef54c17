import Checkpoint
import CheckpointTools
import Foundation
import Testing

/// One pair of elements and the verdict `torch.isclose` gave for it.
struct ClosenessCase: Sendable, CustomTestStringConvertible {
    var a: Double
    var b: Double
    var rtol: Double
    var atol: Double
    var equalNaN: Bool
    var torchSaysClose: Bool
    var testDescription: String { "isclose(\(a), \(b), rtol=\(rtol), atol=\(atol), equal_nan=\(equalNaN))" }
}

// Expected verdicts printed by torch 2.15 (`torch.isclose` on float64 tensors), not by this library.
private let torchVerdicts: [ClosenessCase] = [
    .init(a: 1.0, b: 1.000001, rtol: 1e-5, atol: 1e-8, equalNaN: false, torchSaysClose: true),
    .init(a: 1.0, b: 1.00002, rtol: 1e-5, atol: 1e-8, equalNaN: false, torchSaysClose: false),
    .init(a: 0.0, b: 1e-9, rtol: 1e-5, atol: 1e-8, equalNaN: false, torchSaysClose: true),
    .init(a: 0.0, b: 2e-8, rtol: 1e-5, atol: 1e-8, equalNaN: false, torchSaysClose: false),
    .init(a: 1.001e-05, b: 1.0, rtol: 1e-5, atol: 1e-8, equalNaN: false, torchSaysClose: false),
    .init(a: .infinity, b: .infinity, rtol: 1e-5, atol: 1e-8, equalNaN: false, torchSaysClose: true),
    .init(a: .infinity, b: -.infinity, rtol: 1e-5, atol: 1e-8, equalNaN: false, torchSaysClose: false),
    .init(a: .infinity, b: 1e300, rtol: 1e-5, atol: 1e-8, equalNaN: false, torchSaysClose: false),
    .init(a: .nan, b: .nan, rtol: 1e-5, atol: 1e-8, equalNaN: false, torchSaysClose: false),
    .init(a: .nan, b: .nan, rtol: 1e-5, atol: 1e-8, equalNaN: true, torchSaysClose: true),
    .init(a: .nan, b: 1.0, rtol: 1e-5, atol: 1e-8, equalNaN: true, torchSaysClose: false),
    .init(a: 100, b: 101, rtol: 0, atol: 1, equalNaN: false, torchSaysClose: true),
    .init(a: 100, b: 101.5, rtol: 0, atol: 1, equalNaN: false, torchSaysClose: false),
    // The rule is not symmetric: b's magnitude scales rtol.
    .init(a: 100, b: 111, rtol: 0.1, atol: 0, equalNaN: false, torchSaysClose: true),
    .init(a: 111, b: 100, rtol: 0.1, atol: 0, equalNaN: false, torchSaysClose: false),
]

private func tree(_ tensor: Tensor) -> StateValue { .dict(["t": .tensor(tensor)]) }

@Suite("StateDiff")
struct StateDiffTests {
    @Test(arguments: torchVerdicts)
    func closenessFollowsTorchIsclose(_ c: ClosenessCase) throws {
        let diff = try StateDiff.compare(
            tree(try Tensor([c.a])), tree(try Tensor([c.b])),
            tolerance: .init(relative: c.rtol, absolute: c.atol, equalNaN: c.equalNaN))
        let comparison = try #require(diff.tensorComparisons.first)
        #expect(comparison.isClose == c.torchSaysClose)
        #expect(diff.isEqual == c.torchSaysClose)
        #expect(diff.differences.map(\.kind) == (c.torchSaysClose ? [] : [.values]))
    }

    /// torch: `(a-b).abs()` max 0.5 and `((a-b).abs()/b.abs())` max 0.2 over the non-NaN pairs; one NaN pair.
    @Test func maximaSkipNaNPairsAndCountThem() throws {
        let a = try Tensor([Float(1), 2, 3, .nan])
        let b = try Tensor([Float(1), 2.5, 3, .nan])
        let comparison = try #require(try StateDiff.compare(tree(a), tree(b)).tensorComparisons.first)
        #expect(comparison.maxAbsoluteDifference == 0.5)
        #expect(abs(comparison.maxRelativeDifference - 0.2) < 1e-7)
        #expect(comparison.nanMismatches == 1)
        #expect(comparison.mismatchedElements == 2)
        let nanEqual = try StateDiff.compare(tree(a), tree(b), tolerance: .init(relative: 0.25, equalNaN: true))
        #expect(nanEqual.isEqual)
    }

    /// torch: isclose(1+1j, 1+1.00001j) is True with the defaults; |3+4j - (3+4.0004j)| / |b| ≈ 8e-5 is not.
    @Test func complexUsesTheModulus() throws {
        let a = try Tensor(storage: Storage(bytes: bytes([1.0, 1.0])), dtype: .complex128, shape: [1])
        let near = try Tensor(storage: Storage(bytes: bytes([1.0, 1.00001])), dtype: .complex128, shape: [1])
        #expect(try StateDiff.compare(tree(a), tree(near)).isEqual)
        let c = try Tensor(storage: Storage(bytes: bytes([3.0, 4.0])), dtype: .complex128, shape: [1])
        let far = try Tensor(storage: Storage(bytes: bytes([3.0, 4.0004])), dtype: .complex128, shape: [1])
        let comparison = try #require(try StateDiff.compare(tree(c), tree(far)).tensorComparisons.first)
        #expect(!comparison.isClose)
        #expect(abs(comparison.maxAbsoluteDifference - 4e-4) < 1e-12)
    }

    @Test func structuralDifferencesAreNamedByKeyPath() throws {
        let old: StateValue = .dict([
            "model": .dict(["w": .tensor(try Tensor([Float(1), 2])), "gone": .tensor(try Tensor([Int64(1)]))]),
            "groups": .list([.dict(["lr": .float(0.1), "eps": .float(1e-10)])]),
            "epoch": .int(3),
            "shape": .tensor(try Tensor([Float(1), 2])),
        ])
        let new: StateValue = .dict([
            "model": .dict(["w": .tensor(try Tensor([Double(1), 2])), "new": .none]),
            "groups": .list([.dict(["lr": .float(0.05), "eps": .float(1e-10)]), .dict([:])]),
            "epoch": .float(3),
            "shape": .tensor(try Tensor([Float(1), 2], shape: [2, 1])),
        ])
        let diff = try StateDiff.compare(old, new)
        let found = diff.differences.map { "\($0.kind.rawValue) \($0.path.pathString)" }
        #expect(found == [
            "dtype model/w", "removed model/gone", "added model/new", "value groups/0/lr", "added groups/1", "type epoch",
            "shape shape",
        ])
        let lr = try #require(diff.differences.first { $0.kind == .value })
        #expect(lr.old == "float 0.1")
        #expect(lr.new == "float 0.05")
        // A cast with equal values is close: only the dtype is reported.
        #expect(diff.tensorComparisons.map(\.path.pathString) == ["model/w"])
        #expect(diff.tensorComparisons.first?.isClose == true)
    }

    @Test func metadataOnlyComparisonReadsNoData() throws {
        // Copied inside the closure: the array's bytes are valid only there.
        let damaged = [UInt8](repeating: 0, count: 8).withUnsafeBytes { bytes in
            Storage(copying: bytes) { _ in throw CheckpointError(.checksumMismatch, "must not be read") }
        }
        let tensor = try Tensor(storage: damaged, dtype: .float32, shape: [2])
        let diff = try StateDiff.compare(tree(tensor), tree(tensor), comparesElements: false)
        #expect(diff.isEqual)
        #expect(diff.tensorComparisons.isEmpty)
        #expect(throws: CheckpointError.self) { try StateDiff.compare(tree(tensor), tree(tensor)) }
    }

    @Test func stridedViewsCompareByLogicalElements() throws {
        let base = try Tensor([Float(1), 2, 3, 4, 5, 6], shape: [2, 3])
        let transposed = try Tensor(storage: base.storage, dtype: .float32, shape: [3, 2], strides: [1, 3])
        let packed = try Tensor([Float(1), 4, 2, 5, 3, 6], shape: [3, 2])
        #expect(try StateDiff.compare(tree(transposed), tree(packed)).isEqual)
        #expect(!(try StateDiff.compare(tree(base), tree(try Tensor([Float(1), 2, 3, 4, 5, 6.5], shape: [2, 3]))).isEqual))
    }
}

private func bytes(_ values: [Double]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
