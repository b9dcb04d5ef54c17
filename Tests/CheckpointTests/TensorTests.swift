import Testing
@testable import Checkpoint

@Test func contiguousStridesAreRowMajor() {
    #expect(Tensor.contiguousStrides(for: [2, 3, 4]) == [12, 4, 1])
    #expect(Tensor.contiguousStrides(for: []) == [])
}

@Test func viewPastItsStorageIsRejected() throws {
    let storage = Storage(byteCount: 16)
    #expect(throws: CheckpointError.self) {
        _ = try Tensor(storage: storage, dtype: .float32, shape: [5])
    }
    let ok = try Tensor(storage: storage, dtype: .float32, shape: [2], strides: [2], storageOffset: 1)
    #expect(ok.numel == 2)
}

@Test func shapeProductOverflowIsAnError() {
    #expect(throws: CheckpointError.self) {
        _ = try Tensor(zeros: .float32, shape: [Int.max / 2, 4])
    }
}

@Test func transposedViewGathersElements() throws {
    let t = try Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
    let transposed = try Tensor(storage: t.storage, dtype: .float32, shape: [3, 2], strides: [1, 3])
    #expect(!transposed.isContiguous)
    #expect(try transposed.scalars(as: Float.self) == [1, 4, 2, 5, 3, 6])
}

@Test(arguments: [(Float(1.0), UInt16(0x3F80)), (Float(3.140625), UInt16(0x4049)), (Float(1.00390625), UInt16(0x3F80)), (Float(1.01171875), UInt16(0x3F82))])
func bfloat16RoundsToNearestEven(value: Float, bits: UInt16) {
    #expect(BFloat16(value).bitPattern == bits)
}

@Test func broadcastViewWhoseLogicalSizeOverflowsIsRejected() throws {
    let storage = Storage(byteCount: 4)
    let error = try #require(throws: CheckpointError.self) {
        _ = try Tensor(storage: storage, dtype: .float32, shape: [1 << 62], strides: [0])
    }
    #expect(error.code == .outOfBounds)
    let fine = try Tensor(storage: storage, dtype: .float32, shape: [1 << 20], strides: [0])
    #expect(fine.byteCount == 4 << 20)
}

@Test func gatheringAHugeBroadcastViewIsRefusedNotAllocated() throws {
    let base = try Tensor([Float(1), 2, 3])
    let huge = try Tensor(storage: base.storage, dtype: .float32, shape: [1 << 40, 3], strides: [0, 1])
    let error = try #require(throws: CheckpointError.self) { _ = try huge.contiguousBytes() }
    #expect(error.code == .outOfBounds)
}
