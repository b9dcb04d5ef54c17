import Checkpoint
import CheckpointTools
import Foundation
import Testing
import TestSupport

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
    /// torch's verdict, except the documented one difference: a NaN is close to a NaN of the same bits.
    @Test(arguments: torchVerdicts)
    func closenessFollowsTorchIsclose(_ c: ClosenessCase) throws {
        let diff = try StateDiff.compare(
            tree(try Tensor([c.a])), tree(try Tensor([c.b])),
            tolerance: .init(relative: c.rtol, absolute: c.atol, equalNaN: c.equalNaN))
        let comparison = try #require(diff.tensorComparisons.first)
        let close = c.torchSaysClose || (c.a.isNaN && c.a.bitPattern == c.b.bitPattern)
        #expect(comparison.isClose == close)
        #expect(diff.isEqual == close)
        #expect(diff.differences.map(\.kind) == (close ? [] : [.values]))
    }

    /// The kernels read float32, float64, bfloat16 and float16 in every pairing, four (AVX2) or
    /// eight (AVX-512) pairs at a time, then a scalar tail: each verdict at each position of a
    /// block of nineteen, the other positions equal, with every instruction-set variant.
    @Test(arguments: torchVerdicts, [(DType.float64, DType.float64), (.float32, .float64), (.float64, .bfloat16), (.float16, .float32)])
    func closenessIsTheSameInEveryFormatAndLane(_ c: ClosenessCase, _ dtypes: (DType, DType)) throws {
        // Only values every format holds exactly, so the verdict is torch's for the float64 values.
        let exact = [c.a, c.b].allSatisfy { $0.isInfinite || [1.0, 0.0, 100, 101, 111, 101.5].contains($0) }
        guard exact else { return }
        defer { TensorStatistics.limitInstructionSet(to: nil) }
        for variant in TensorStatistics.InstructionSet.allCases {
            TensorStatistics.limitInstructionSet(to: variant)
            for position in 0..<19 {
                var a = [Double](repeating: 0.5, count: 19), b = a
                a[position] = c.a
                b[position] = c.b
                let old = try Tensor(a).cast(to: dtypes.0), new = try Tensor(b).cast(to: dtypes.1)
                let diff = try StateDiff.compare(
                    tree(old), tree(new), tolerance: .init(relative: c.rtol, absolute: c.atol), ignoring: .dtype)
                #expect(diff.isEqual == c.torchSaysClose, "\(c) at \(position) as \(dtypes) with \(variant)")
                let comparison = try #require(diff.tensorComparisons.first)
                let expectedAbs = c.a == c.b ? 0 : c.a.isInfinite || c.b.isInfinite ? .infinity : abs(c.a - c.b)
                #expect(comparison.maxAbsoluteDifference == expectedAbs, "\(c) at \(position) as \(dtypes) with \(variant)")
            }
        }
    }

    @Test func aNaNIsCloseToANaNOfTheSameBitsOnly() throws {
        let quiet = Float.nan, payload = Float(bitPattern: 0x7FC0_0001)
        let withNaN = try Tensor([Float(1), quiet, 3])
        #expect(try StateDiff.compare(tree(withNaN), tree(withNaN)).isEqual)
        let other = try StateDiff.compare(tree(withNaN), tree(try Tensor([Float(1), payload, 3])))
        #expect(other.tensorComparisons.first?.nanMismatches == 1)
        #expect(try StateDiff.compare(tree(withNaN), tree(try Tensor([Float(1), payload, 3])), tolerance: .init(equalNaN: true)).isEqual)
        // Across dtypes the bits are compared widened to float64: bf16's NaN 0x7FC0 is float32's 0x7FC00000...
        let bf16NaN = try Tensor([BFloat16(1), BFloat16(bitPattern: 0x7FC0), BFloat16(3)])
        #expect(try StateDiff.compare(tree(withNaN), tree(bf16NaN), ignoring: .dtype).isEqual)
        // ...but torch's float32 → bfloat16 cast writes NaN as 0xFFFF: matched only with equal_nan.
        let cast = try withNaN.cast(to: .bfloat16)
        #expect(!(try StateDiff.compare(tree(withNaN), tree(cast), ignoring: .dtype).isEqual))
        #expect(try StateDiff.compare(tree(withNaN), tree(cast), tolerance: .init(equalNaN: true), ignoring: .dtype).isEqual)
        // Scalars follow the same rule, and NaNs of other bits read differently.
        let scalar = try StateDiff.compare(.dict(["x": .float(.nan)]), .dict(["x": .float(Double(bitPattern: 0x7FF8_0000_0000_0001))]))
        #expect(scalar.differences.map(\.kind) == [.value])
        let sides = try #require(scalar.differences.first)
        #expect(sides.old != sides.new, "\(sides)")
        #expect(try StateDiff.compare(.dict(["x": .float(.nan)]), .dict(["x": .float(.nan)])).isEqual)
    }

    @Test func ignoringDTypeComparesByValueAlone() throws {
        let original = try Tensor([Float(1), 2.5, -3])
        let diff = try StateDiff.compare(tree(original), tree(try original.cast(to: .bfloat16)))
        #expect(diff.differences.map(\.kind) == [.dtype])
        #expect(diff.tensorComparisons.first?.isClose == true)
        let lenient = try StateDiff.compare(tree(original), tree(try original.cast(to: .bfloat16)), ignoring: .dtype)
        #expect(lenient.isEqual)
        #expect(lenient.ignored == .dtype)
        let changed = try StateDiff.compare(tree(original), tree(try Tensor([Float(1), 2.5, -3.5]).cast(to: .bfloat16)), ignoring: .dtype)
        #expect(changed.differences.map(\.kind) == [.values])
    }

    @Test func ignoringContainerTypesLeavesOutOrderedDictAndAOneSidedMetadata() throws {
        let metadata: StateValue = .dict(["": .dict(["version": .int(1)])])
        var stateDict = StateDict(isOrderedDict: true, attributes: ["_metadata": metadata])
        stateDict["w"] = .tensor(try Tensor([Float(1), 2]))
        let plain: StateValue = .dict(["w": .tensor(try Tensor([Float(1), 2]))])
        let strict = try StateDiff.compare(.dict(stateDict), plain)
        #expect(strict.differences.map { "\($0.kind.rawValue) \($0.path.pathString)" } == ["type ", "removed _metadata"])
        #expect(try StateDiff.compare(.dict(stateDict), plain, ignoring: .containerTypes).isEqual)
        #expect(try StateDiff.compare(plain, .dict(stateDict), ignoring: .containerTypes).isEqual)
        // Both sides with _metadata: compared as any attribute.
        var newer = stateDict
        newer.attributes["_metadata"] = .dict(["": .dict(["version": .int(2)])])
        let versions = try StateDiff.compare(.dict(stateDict), .dict(newer), ignoring: .containerTypes)
        #expect(versions.differences.map(\.path.pathString) == ["_metadata//version"])
    }

    /// torch: `(a-b).abs()` max 0.5 and `((a-b).abs()/b.abs())` max 0.2 over the non-NaN pairs; one
    /// NaN pair (NaNs of different bits).
    @Test func maximaSkipNaNPairsAndCountThem() throws {
        let a = try Tensor([Float(1), 2, 3, .nan])
        let b = try Tensor([Float(1), 2.5, 3, -.nan])
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

/// Files whose tensors span several of the diff's chunks and checksum pieces, read lazily from disk.
@Suite("StateDiff on files")
struct StateDiffFileTests {
    let directory = try! TemporaryDirectory(prefix: "state-diff")

    /// Elements of `big` and `tied`: two chunks of the diff and a piece of a third, and 4000 bytes
    /// past 8 MiB, so the storage `tied` shares with `view` is checked in two pieces.
    static let count = (1 << 21) + 1000

    /// `big` on its own storage (checked as compared); `tied` and the strided `view` share one
    /// (checked on its own before the comparison); `change` adds 1 to element `change` of both.
    private func write(_ name: String, change: Int? = nil) throws -> String {
        var values = (0..<Self.count).map { Float($0 % 1000) * 0.001 }
        if let change { values[change] += 1 }
        let big = try Tensor(values)
        let tied = try Tensor(Array(values.reversed()))
        let view = try Tensor(storage: tied.storage, dtype: .float32, shape: [1000], strides: [3], storageOffset: 7)
        let path = directory.path(name)
        try StateValue.dict(["big": .tensor(big), "tied": .tensor(tied), "view": .tensor(view)])
            .write(to: URL(fileURLWithPath: path), options: SaveOptions(durable: false))
        return path
    }

    private func damage(_ path: String, entry: String, at offset: Int) throws {
        let blob = try ZipReader(path: path).requireEntry(named: entry)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[blob.dataOffset + offset] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    private func load(_ path: String) throws -> StateValue { try StateValue(contentsOf: URL(fileURLWithPath: path)) }

    @Test func chunksAndPiecesCombineIntoEachBlobsChecksum() throws {
        let a = try write("a.pt"), b = try write("b.pt", change: (1 << 20) + 5)
        let diff = try StateDiff.compare(try load(a), try load(b))
        #expect(diff.differences.map { "\($0.kind.rawValue) \($0.path.pathString)" } == ["values big", "values tied"])
        #expect(diff.tensorComparisons.map(\.mismatchedElements) == [1, 1, 0])
        #expect(try StateDiff.compare(try load(a), try load(a)).isEqual)
    }

    @Test(arguments: [("archive/data/0", (1 << 20) * 4 + 12), ("archive/data/1", (8 << 20) + 3)])
    func damageAnywhereIsAChecksumMismatch(_ entry: String, _ offset: Int) throws {
        let a = try write("clean.pt"), b = try write("damaged-\(offset).pt")
        try damage(b, entry: entry, at: offset)
        #expect {
            try StateDiff.compare(try load(a), try load(b))
        } throws: { error in
            (error as? CheckpointError)?.code == .checksumMismatch && "\(error)".contains(entry)
        }
    }

    @Test func progressCountsEveryByteReadOnce() throws {
        let a = try write("p.pt")
        let reports = Reports()
        _ = try StateDiff.compare(try load(a), try load(a)) { done, total in reports.add(done, total) }
        let storageBytes = Self.count * 4
        // Both sides of each pair, and the shared storage once per side before the comparison.
        let expected = 2 * (storageBytes + storageBytes + 1000 * 4) + 2 * storageBytes
        #expect(reports.totals == [expected])
        #expect(reports.last == expected)
    }
}

private final class Reports: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [(Int, Int)] = []
    func add(_ done: Int, _ total: Int) {
        lock.lock()
        values.append((done, total))
        lock.unlock()
    }
    var totals: Set<Int> { lock.withLock { Set(values.map(\.1)) } }
    var last: Int? { lock.withLock { values.map(\.0).max() } }
}
