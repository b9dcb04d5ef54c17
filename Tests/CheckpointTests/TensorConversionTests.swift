import Checkpoint
import Foundation
import Testing

// casts.pt holds source tensors and what torch's `source.to(target)` made of them
// (scripts/make_numeric_fixtures.py); ckpt's casts must match torch bit for bit.

private enum Casts {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/numeric/casts.pt")

    static let tree: [String: Tensor] = {
        guard case .dict(let dict)? = try? StateValue(contentsOf: url) else { return [:] }
        var tensors: [String: Tensor] = [:]
        for (key, value) in dict.items { if case .tensor(let tensor) = value { tensors[key.description] = tensor } }
        return tensors
    }()

    /// Every `source->target` pair in the fixture.
    static let pairs: [String] = tree.keys.filter { $0.contains("->") }.sorted()
}

/// Indices where two same-dtype tensors differ bitwise, for a readable failure.
private func mismatches(_ actual: Tensor, _ expected: Tensor) throws -> [Int] {
    let a = try actual.contiguousBytes(), e = try expected.contiguousBytes()
    let item = expected.dtype.itemSize
    return stride(from: 0, to: e.count, by: item).filter { a[$0..<$0 + item] != e[$0..<$0 + item] }.map { $0 / item }
}

@Suite("Tensor casts against torch")
struct TensorConversionTests {
    @Test func fixtureHoldsTheExpectedPairs() {
        #expect(Casts.pairs.count >= 40, "casts.pt missing or incomplete at \(Casts.url.path)")
    }

    @Test(arguments: Casts.pairs)
    func castMatchesTorchBitForBit(pair: String) throws {
        let sourceName = String(pair.split(separator: "-").first!)
        let source = try #require(Casts.tree[sourceName])
        let expected = try #require(Casts.tree[pair])
        let actual = try source.cast(to: expected.dtype)
        #expect(actual.dtype == expected.dtype)
        #expect(actual.shape == expected.shape)
        let wrong = try mismatches(actual, expected)
        let sourceBytes = try source.contiguousBytes(), actualBytes = try actual.contiguousBytes(), expectedBytes = try expected.contiguousBytes()
        let sItem = source.dtype.itemSize, tItem = expected.dtype.itemSize
        let examples = wrong.prefix(5).map { index in
            "element \(index): source \(sourceBytes[index * sItem..<(index + 1) * sItem].map { String($0, radix: 16) }) "
                + "ours \(actualBytes[index * tItem..<(index + 1) * tItem].map { String($0, radix: 16) }) "
                + "torch \(expectedBytes[index * tItem..<(index + 1) * tItem].map { String($0, radix: 16) })"
        }
        #expect(wrong.count == 0, "\(wrong.count) of \(expected.numel) differ: \(examples.joined(separator: "; "))")
    }

    @Test func castKeepsShapeOfStridedViewsAndFlags() throws {
        let base = try Tensor([Float(1), 2, 3, 4, 5, 6], shape: [2, 3])
        var view = try Tensor(storage: base.storage, dtype: .float32, shape: [3, 2], strides: [1, 3], requiresGrad: true)
        view.isParameter = true
        let cast = try view.cast(to: .bfloat16)
        #expect(cast.shape == [3, 2])
        #expect(cast.isContiguous)
        #expect(cast.requiresGrad && cast.isParameter)
        #expect(try cast.doubleValues() == [1, 4, 2, 5, 3, 6])
        #expect(try !view.cast(to: .int32).requiresGrad, "requires_grad is only allowed on floating tensors")
    }

    @Test(arguments: [Float.nan, .infinity, -.infinity, 3e9, -3e9, 1e20])
    func floatToIntWithoutDefinedResultThrows(value: Float) throws {
        let tensor = try Tensor([value])
        #expect(throws: CheckpointError.self) { try tensor.cast(to: .int32) }
    }

    @Test func doubleValuesOfComplexThrow() throws {
        let tensor = try Tensor(zeros: .complex64, shape: [2])
        #expect(throws: CheckpointError.self) { try tensor.doubleValues() }
    }

    /// A broadcast view of 12 TiB over three floats: casting it would need more memory than the
    /// machine has, so the cast refuses before allocating.
    @Test func hugeBroadcastViewIsRefusedNotAllocated() throws {
        let base = try Tensor([Float(1), 2, 3])
        let huge = try Tensor(storage: base.storage, dtype: .float32, shape: [1 << 40, 3], strides: [0, 1])
        #expect { try huge.cast(to: .float64) } throws: { ($0 as? CheckpointError)?.code == .outOfBounds }
    }

    @Test func emptyTensorCasts() throws {
        let empty = try Tensor(zeros: .float32, shape: [0, 4])
        let cast = try empty.cast(to: .float16)
        #expect(cast.shape == [0, 4] && cast.numel == 0 && cast.dtype == .float16)
    }
}
