import Foundation
import Testing
import TestSupport
@testable import Checkpoint

@Test func contiguousStridesAreRowMajor() {
    #expect(Tensor.contiguousStrides(for: [2, 3, 4]) == [12, 4, 1])
    #expect(Tensor.contiguousStrides(for: []) == [])
}

@Test func writeBarriersRunBeforeEachWriteUntilRemoved() throws {
    let storage = Storage(byteCount: 8)
    final class Log: @unchecked Sendable { var calls: [String] = [] }
    let log = Log(), first = Log(), second = Log()
    storage.addWriteBarrier(owner: first) { log.calls.append("first") }
    try storage.withUnsafeBytes { _ in }
    #expect(log.calls == [])
    try storage.withUnsafeMutableBytes { bytes in
        #expect(log.calls == ["first"])
        bytes[0] = 7
    }
    // Each owner keeps its own; one that removes itself leaves the other.
    storage.addWriteBarrier(owner: second) { [storage] in
        log.calls.append("second")
        storage.removeWriteBarrier(owner: second)
    }
    try storage.withUnsafeMutableBytes { $0[1] = 8 }
    #expect(log.calls.sorted() == ["first", "first", "second"])
    storage.removeWriteBarrier(owner: first)
    try storage.withUnsafeMutableBytes { $0[2] = 9 }
    #expect(log.calls.count == 3)
    #expect(try storage.withUnsafeBytes { Array($0.prefix(3)) } == [7, 8, 9])
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

/// The outside probe of the API review: a view widened past its storage. The layout is immutable
/// (`t.shape = [1 << 20]` does not compile); the only ways to another view check it.
@Test func widenedViewsOfAStorageAreRejected() throws {
    let t = try Tensor(storage: Storage(byteCount: 16), dtype: .float32, shape: [4])
    let error = #expect(throws: CheckpointError.self) { _ = try t.viewed(shape: [1 << 20]) }
    #expect(error?.code == .outOfBounds)
    #expect(throws: CheckpointError.self) { _ = try t.viewed(shape: [2], storageOffset: 3) }
    #expect(throws: CheckpointError.self) { _ = try t.viewed(shape: [2], strides: [-1]) }
    let window = try t.viewed(shape: [2], strides: [2], storageOffset: 1)
    #expect(window.storage === t.storage && window.strides == [2] && window.storageOffset == 1)
}

@Test func reshapingKeepsTheElementsOfAContiguousTensor() throws {
    var t = try Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
    t.requiresGrad = true
    let reshaped = try t.reshaped([3, 2])
    #expect(reshaped.shape == [3, 2] && reshaped.requiresGrad && reshaped.storage === t.storage)
    #expect(try reshaped.scalars(as: Float.self) == [1, 2, 3, 4, 5, 6])
    #expect(throws: CheckpointError.self) { _ = try t.reshaped([4, 2]) }
    let transposed = try t.viewed(shape: [3, 2], strides: [1, 3])
    #expect(throws: CheckpointError.self) { _ = try transposed.reshaped([6]) }
}

@Test func storageFromBytesHoldsACopy() throws {
    var bytes: [UInt8] = [1, 2, 3, 4, 5]
    let storage = Storage(bytes: bytes)
    bytes[0] = 9
    #expect(try storage.withUnsafeBytes { Array($0) } == [1, 2, 3, 4, 5])
    #expect(Storage(bytes: []).byteCount == 0)
}

/// Readers inside `withUnsafeBytes` of a mapped storage while another thread writes it (which moves
/// the bytes to owned memory and drops the storage's mapping): the mapping must outlive the readers.
/// Before, the last reference to the mapping went with the switch and readers faulted.
@Test func readersOfAMappedStorageSurviveAWriteThatCopiesIt() throws {
    let directory = try TemporaryDirectory(prefix: "ckpt-storage")
    let count = 1 << 22
    let path = directory.path("bytes")
    try Data(repeating: 7, count: count).write(to: URL(fileURLWithPath: path))
    for _ in 0..<8 {
        let storage = try Storage(mapping: try MappedFile(path: path), offset: 0, byteCount: count)
        let readers = 3
        let sums = ReaderSums()
        DispatchQueue.concurrentPerform(iterations: readers + 1) { index in
            if index == readers {
                try? storage.withUnsafeMutableBytes { $0[0] = 1 }
                return
            }
            sums.append((try? storage.withUnsafeBytes { bytes in
                var total = 0
                for pass in 0..<4 { for offset in stride(from: pass, to: bytes.count, by: 4096) { total &+= Int(bytes[offset]) } }
                return total
            }) ?? -1)
        }
        #expect(!storage.isMapped)
        #expect(try storage.withUnsafeBytes { $0[0] } == 1)
        // Each reader saw the file's bytes (all 7) or the copy, whose first byte is 1.
        let pages = 4 * (count / 4096)
        #expect(sums.values.count == readers)
        #expect(sums.values.allSatisfy { $0 == 7 * pages || $0 == 7 * pages - 6 })
    }
}

private final class ReaderSums: @unchecked Sendable {
    private let lock = NSLock()
    private var collected: [Int] = []
    func append(_ value: Int) { lock.lock(); collected.append(value); lock.unlock() }
    var values: [Int] { lock.lock(); defer { lock.unlock() }; return collected }
}
