import Checkpoint
import Foundation
import TestSupport
import Testing

/// One lazily mapped checkpoint read from many threads at once: the first read of each storage
/// runs its pending CRC-32 check while other threads wait for it or read other storages. Run under
/// ThreadSanitizer by `make sanitize`.
@Suite struct ConcurrentReadTests {
    @Test(arguments: ["model.ckpt", "model.pt", "model.safetensors"])
    func threadsReadingOneMappedCheckpointSeeTheSavedValues(name: String) throws {
        let directory = try TemporaryDirectory()
        let url = directory.url.appendingPathComponent(name)
        let items = (0..<12).map { index in ("t\(index)", (0..<(4096 * (index + 1))).map { Float(index) + Float($0 % 977) / 977 }) }
        let pairs = try items.map { key, values in (StateKey.string(key), StateValue.tensor(try Tensor(values, shape: [values.count]))) }
        try StateValue.dict(StateDict(pairs)).write(to: url)

        let loaded = try StateValue(contentsOf: url)
        let readers = 8
        let mismatches = Counter()
        DispatchQueue.concurrentPerform(iterations: readers) { reader in
            // Each thread starts at another tensor, so first reads (and their checks) overlap.
            for step in 0..<items.count {
                let (key, values) = items[(reader + step) % items.count]
                guard case .tensor(let tensor)? = loaded[.string(key)] else { return mismatches.add() }
                let read = try? tensor.scalars(as: Float.self)
                if read != values { mismatches.add() }
            }
        }
        #expect(mismatches.value == 0)
        loaded.forEachTensor { _, tensor in #expect(tensor.storage.isVerified || name.hasSuffix(".safetensors")) }
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
