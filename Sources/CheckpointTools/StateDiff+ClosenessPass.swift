import Checkpoint
import Foundation

/// The element comparisons of a diff, all pairs at once: every pair is cut into chunks and the
/// chunks are spread over the cores (``ParallelWork``), each read straight from the mapped files
/// and its pages released once compared, so resident memory stays a few chunks per core however
/// large the files are.
///
/// A stored blob's CRC-32 is checked without a pass of its own when one tensor of the diff covers
/// it exactly: each chunk checksums the bytes it compares, and the chunks' CRCs are combined
/// (``CRC32/combine(_:_:secondCount:)``) and settled before any result is returned. Blobs shared by
/// several tensors, or read only in part, are checked first, in pieces on every core.
enum ClosenessPass {
    /// Elements per chunk: 4 MiB of float32, enough to amortize scheduling and page releases.
    static let chunkElements = 1 << 20
    /// Elements checksummed and compared together within a chunk: 32 KiB of float32 a side, so
    /// the three reads of each byte (two checksums and the comparison) after the first hit the cache.
    static let blockElements = 1 << 13
    /// Bytes per piece of a blob checked on its own.
    static let checksumPieceBytes = 8 << 20

    private struct Chunk {
        let pair: Int
        let start: Int
        let count: Int
    }

    /// What a chunk found, with the CRC-32 of each side's bytes where that side fuses its check.
    private struct ChunkResult {
        var closeness: Closeness
        var oldChecksum: UInt32?
        var newChecksum: UInt32?
    }

    /// Compares every pair's elements.
    ///
    /// - Returns: One result per pair, in order.
    /// - Throws: The first failed check (`.checksumMismatch`) or read error.
    static func run(
        _ pairs: [TensorPair], tolerance: StateDiff.Tolerance, progress: (@Sendable (Int, Int) -> Void)?
    ) throws -> [Closeness] {
        guard !pairs.isEmpty else { return [] }
        var uses: [ObjectIdentifier: Int] = [:]
        for pair in pairs {
            uses[ObjectIdentifier(pair.old.storage), default: 0] += 1
            uses[ObjectIdentifier(pair.new.storage), default: 0] += 1
        }
        func side(_ tensor: Tensor) -> PairSide {
            let storage = tensor.storage
            let coversStorage = tensor.isContiguous && tensor.storageOffset == 0 && tensor.byteCount == storage.byteCount
            return PairSide(tensor: tensor, fusesChecksum: storage.pendingChecksum != nil && uses[ObjectIdentifier(storage)] == 1 && coversStorage)
        }
        let sides = pairs.map { (old: side($0.old), new: side($0.new)) }

        var seen = Set<ObjectIdentifier>()
        let checkedFirst = sides.flatMap { [$0.old, $0.new] }
            .filter { !$0.fusesChecksum && !$0.tensor.storage.isVerified && seen.insert(ObjectIdentifier($0.tensor.storage)).inserted }
            .map(\.tensor.storage)
        var chunks: [Chunk] = []
        for (index, pair) in pairs.enumerated() {
            var start = 0
            let count = pair.old.numel
            repeat {
                let length = min(chunkElements, count - start)
                chunks.append(Chunk(pair: index, start: start, count: length))
                start += length
            } while start < count
        }
        let compareBytes = pairs.reduce(0) { $0 + $1.old.byteCount + $1.new.byteCount }
        let totalBytes = checkedFirst.reduce(0) { $0 + $1.byteCount } + compareBytes
        let done = ByteCounter()
        let report: @Sendable (Int) -> Void = { bytes in progress?(done.add(bytes), totalBytes) }

        try verify(checkedFirst, report: report)

        let countdown = PairCountdown(chunks.map(\.pair), pairs: pairs.count)
        let plan = chunks
        let results = ParallelWork.map(count: plan.count, worker: { ChunkScratch() }) { scratch, position in
            let chunk = plan[position]
            let pair = sides[chunk.pair]
            var result = ChunkResult(closeness: Closeness())
            let oldType = pair.old.tensor.dtype, newType = pair.new.tensor.dtype
            try scratch.old.withBlock(of: pair.old, start: chunk.start, count: chunk.count) { a in
                try scratch.new.withBlock(of: pair.new, start: chunk.start, count: chunk.count) { b in
                    guard let a, let b else { return }
                    // Block by block, so the checksums and the comparison read each byte while it
                    // is in cache: memory is read once.
                    var oldChecksum: UInt32 = 0, newChecksum: UInt32 = 0
                    var position = 0
                    while position < chunk.count {
                        let length = min(blockElements, chunk.count - position)
                        let x = a + position * oldType.itemSize, y = b + position * newType.itemSize
                        if pair.old.fusesChecksum {
                            oldChecksum = CRC32.checksum(UnsafeRawBufferPointer(start: x, count: length * oldType.itemSize), initial: oldChecksum)
                        }
                        if pair.new.fusesChecksum {
                            newChecksum = CRC32.checksum(UnsafeRawBufferPointer(start: y, count: length * newType.itemSize), initial: newChecksum)
                        }
                        result.closeness.merge(scratch.comparer.compare(x, oldType, y, newType, count: length, tolerance: tolerance))
                        position += length
                    }
                    result.oldChecksum = pair.old.fusesChecksum ? oldChecksum : nil
                    result.newChecksum = pair.new.fusesChecksum ? newChecksum : nil
                }
            }
            if countdown.finish(chunk.pair) {
                // A view's chunks touch pages all over its storage: released once the pair is done.
                for side in [pair.old, pair.new] where !side.tensor.isContiguous {
                    side.tensor.storage.releasePages(0..<side.tensor.storage.byteCount)
                }
            }
            report(chunk.count * (pair.old.tensor.dtype.itemSize + pair.new.tensor.dtype.itemSize))
            return result
        }

        var closeness = [Closeness](repeating: Closeness(), count: pairs.count)
        var oldChecksums = [UInt32](repeating: 0, count: pairs.count)
        var newChecksums = [UInt32](repeating: 0, count: pairs.count)
        for (position, chunk) in plan.enumerated() {
            let result = try results[position].get()
            closeness[chunk.pair].merge(result.closeness)
            let old = pairs[chunk.pair].old, new = pairs[chunk.pair].new
            if let piece = result.oldChecksum {
                oldChecksums[chunk.pair] = CRC32.combine(oldChecksums[chunk.pair], piece, secondCount: chunk.count * old.dtype.itemSize)
            }
            if let piece = result.newChecksum {
                newChecksums[chunk.pair] = CRC32.combine(newChecksums[chunk.pair], piece, secondCount: chunk.count * new.dtype.itemSize)
            }
        }
        for (index, pair) in sides.enumerated() {
            if pair.old.fusesChecksum { try pair.old.tensor.storage.settleChecksum(oldChecksums[index]) }
            if pair.new.fusesChecksum { try pair.new.tensor.storage.settleChecksum(newChecksums[index]) }
        }
        return closeness
    }

    /// Runs the pending checks of `storages` on every core: a CRC-32 in pieces, released as they
    /// are read, and combined; any other check whole.
    private static func verify(_ storages: [Storage], report: @Sendable (Int) -> Void) throws {
        var pieces: [(storage: Int, range: Range<Int>)] = []
        for (index, storage) in storages.enumerated() {
            guard storage.pendingChecksum != nil else {
                pieces.append((index, 0..<storage.byteCount))
                continue
            }
            var start = 0
            repeat {
                let end = min(start + checksumPieceBytes, storage.byteCount)
                pieces.append((index, start..<end))
                start = end
            } while start < storage.byteCount
        }
        let plan = pieces
        let results = ParallelWork.map(count: plan.count) { position -> UInt32? in
            let piece = plan[position]
            let storage = storages[piece.storage]
            defer { report(piece.range.count) }
            guard storage.pendingChecksum != nil else {
                try storage.verify()
                return nil
            }
            let checksum = try storage.withUnverifiedBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[piece.range])) }
            storage.releasePages(piece.range)
            return checksum
        }
        var checksums = [UInt32](repeating: 0, count: storages.count)
        for (position, piece) in plan.enumerated() {
            if let checksum = try results[position].get() {
                checksums[piece.storage] = CRC32.combine(checksums[piece.storage], checksum, secondCount: piece.range.count)
            }
        }
        for (index, storage) in storages.enumerated() where storage.pendingChecksum != nil {
            try storage.settleChecksum(checksums[index])
        }
    }
}

/// One side of a pair, and whether its blob's CRC-32 comes from the chunks that compare it.
private struct PairSide {
    let tensor: Tensor
    let fusesChecksum: Bool
}

/// One worker thread's buffers: a block reader for each side and the comparer's decoding buffers.
private final class ChunkScratch {
    let old = BlockReader()
    let new = BlockReader()
    let comparer = BlockComparer()
}

/// Hands a worker the packed bytes of a chunk of one side.
private final class BlockReader {
    private let gathered = GatherBuffer()

    /// Calls `body` with elements `start ..< start + count` (row-major) packed; a contiguous
    /// chunk's pages are released afterwards. An empty chunk has no address.
    func withBlock(of side: PairSide, start: Int, count: Int, _ body: (UnsafeRawPointer?) throws -> Void) throws {
        let tensor = side.tensor
        let storage = tensor.storage
        let item = tensor.dtype.itemSize
        let read = { (bytes: UnsafeRawBufferPointer) throws in
            guard tensor.isContiguous || count == 0 else {
                try body(self.gathered.gather(tensor, bytes, start: start, count: count))
                return
            }
            let range = (tensor.storageOffset + start) * item..<(tensor.storageOffset + start + count) * item
            let block = UnsafeRawBufferPointer(rebasing: bytes[range])
            try body(count > 0 ? block.baseAddress : nil)
            storage.releasePages(range)
        }
        if side.fusesChecksum {
            try storage.withUnverifiedBytes(read)
        } else {
            try storage.withUnsafeBytes(read)
        }
    }
}

/// Chunks still to finish per pair, counted down from any thread.
private final class PairCountdown: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining: [Int]

    init(_ chunkPairs: [Int], pairs: Int) {
        remaining = Array(repeating: 0, count: pairs)
        for pair in chunkPairs { remaining[pair] += 1 }
    }

    /// Counts one chunk of `pair` done; true for its last.
    func finish(_ pair: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        remaining[pair] -= 1
        return remaining[pair] == 0
    }
}
