import CStats
import Checkpoint
import Foundation

/// Summary numbers of one tensor: min, max, mean, standard deviation, L2 norm, and counts of
/// zeros, NaNs and infinities.
///
/// Everything is computed in float64 from the exactly decoded elements, so a float32 tensor's
/// mean can differ from `torch.mean` (which accumulates in float32) in the last float32 bits.
/// NaN and infinity propagate as in torch: one NaN makes min, max, mean, std and the norm NaN.
/// `std` is torch's default, the unbiased estimate (correction 1, divides by n − 1), so a
/// one-element tensor has std NaN. The variance is merged from per-chunk sums of squared
/// deviations (Chan et al.), which keeps it accurate where the naive Σx² − n·mean² cancels.
public struct TensorStatistics: Sendable, Equatable {
    /// Number of elements.
    public var count: Int
    /// Smallest element; nil when the tensor is empty or complex (complex numbers are not ordered).
    public var minimum: Double?
    /// Largest element; nil when the tensor is empty or complex.
    public var maximum: Double?
    /// Arithmetic mean (NaN when empty); nil for complex.
    public var mean: Double?
    /// Unbiased standard deviation, as `torch.std` (NaN when fewer than two elements); nil for complex.
    public var standardDeviation: Double?
    /// √Σ|x|², as `torch.linalg.vector_norm` (complex elements count by their modulus).
    public var l2Norm: Double
    /// Elements equal to zero (−0 included; a complex element when both parts are zero).
    public var zeroCount: Int
    /// NaN elements (a complex element when either part is NaN).
    public var nanCount: Int
    /// Infinite elements (a complex element when either part is infinite, as `torch.isinf`).
    public var infinityCount: Int

    /// Computes one tensor's statistics on every core.
    ///
    /// - Parameter tensor: Any dtype, any strides.
    /// - Throws: A failed storage verification (``CheckpointError`` `.checksumMismatch`).
    public init(_ tensor: Tensor) throws {
        self = try TensorStatistics.compute([tensor])[0]
    }

    /// Computes statistics of many tensors, splitting large tensors into chunks and spreading
    /// all chunks over the CPU cores; memory use is a small buffer per core.
    ///
    /// - Parameters:
    ///   - tensors: The tensors, any dtype and strides.
    ///   - progress: Called (from any thread) with the bytes done so far and the total: pending
    ///     CRC checks count each storage's bytes, then the statistics each tensor's bytes.
    /// - Returns: One result per tensor, in order.
    /// - Throws: A failed storage verification (``CheckpointError`` `.checksumMismatch`);
    ///   `.unsupported` for a view whose overlapping strides name more than 256 times its
    ///   storage's elements (and over 16 Mi elements).
    public static func compute(
        _ tensors: [Tensor], progress: (@Sendable (_ doneBytes: Int, _ totalBytes: Int) -> Void)? = nil
    ) throws -> [TensorStatistics] {
        // A broadcast dimension (stride 0, as `expand` makes) repeats the same elements: summarize
        // them once and scale, so a huge expanded view costs what its storage holds, not its shape.
        let collapsed = try tensors.map(collapsingBroadcastDimensions)
        let tensors = collapsed.map(\.tensor)
        var plan: [WorkItem] = []
        for (index, tensor) in tensors.enumerated() {
            var start = 0
            let count = tensor.numel
            repeat {
                let length = min(chunkElements, count - start)
                plan.append(WorkItem(tensor: index, start: start, count: length))
                start += length
            } while start < count
        }
        let pending = unverifiedStorages(tensors)
        let checkBytes = pending.reduce(0) { $0 + $1.byteCount }
        let totalBytes = checkBytes + tensors.reduce(0) { $0 + $1.byteCount }
        let done = ByteCounter()
        // Pending CRC checks run first, all cores at once; left to the statistics workers, two
        // chunks of one storage would wait on each other's check.
        for result in ParallelWork.map(count: pending.count, { index in
            try pending[index].verify()
            progress?(done.add(pending[index].byteCount), totalBytes)
        }) {
            try result.get()
        }
        let items = plan
        let results = ParallelWork.map(count: items.count, worker: { ChunkScratch() }) { scratch, position in
            let item = items[position]
            let tensor = tensors[item.tensor]
            let moments = try scratch.moments(of: tensor, start: item.start, count: item.count)
            progress?(done.add(item.count * tensor.dtype.itemSize), totalBytes)
            return moments
        }
        var merged = [Moments](repeating: Moments(), count: tensors.count)
        for (position, item) in items.enumerated() {
            merged[item.tensor].merge(try results[position].get())
        }
        return zip(merged, collapsed).map { TensorStatistics($0.repeated($1.repeats), isComplex: $1.tensor.dtype.isComplex) }
    }

    /// The tensor with every stride-0 dimension cut to size 1, and how often each remaining
    /// element repeats in the original.
    private static func collapsingBroadcastDimensions(_ tensor: Tensor) throws -> (tensor: Tensor, repeats: Int) {
        var shape = tensor.shape
        var repeats = 1
        for dim in shape.indices where tensor.strides[dim] == 0 && shape[dim] > 1 {
            repeats *= shape[dim]
            shape[dim] = 1
        }
        let view = repeats > 1
            ? try Tensor(
                storage: tensor.storage, dtype: tensor.dtype, shape: shape, strides: tensor.strides, storageOffset: tensor.storageOffset)
            : tensor
        // Overlapping strides (as_strided) can still name far more elements than the storage holds;
        // beyond what sliding windows need, a crafted shape would only make the walk endless.
        let storageElements = tensor.storage.byteCount / max(tensor.dtype.itemSize, 1)
        let (limit, overflow) = max(storageElements, 1).multipliedReportingOverflow(by: overlapFactorLimit)
        guard overflow || view.numel <= max(limit, 1 << 24) else {
            throw CheckpointError(
                .unsupported, "view overlaps its storage too many times to summarize",
                expected: "at most \(overlapFactorLimit) × its storage's \(storageElements) elements", found: "\(view.numel) elements")
        }
        return (view, repeats)
    }

    /// How many times over an overlapping view may read its storage.
    static let overlapFactorLimit = 256

    /// The vector instruction sets the statistics kernels may use.
    public enum InstructionSet: Int32, Sendable, CaseIterable {
        /// Plain C, any CPU.
        case portable = 0
        /// AVX2, FMA and F16C.
        case avx2 = 1
        /// AVX-512 (F, DQ, BW, VL).
        case avx512 = 2
    }

    /// Caps the instruction set the kernels use, these statistics' and ``StateDiff``'s element
    /// comparisons (the best the CPU has is the default), so tests and benchmarks can run every
    /// variant on one machine. Results agree across variants to rounding; the cap applies
    /// process-wide.
    ///
    /// - Parameter limit: The widest set to use; nil restores the default.
    public static func limitInstructionSet(to limit: InstructionSet?) {
        ckpt_stats_limit_level(limit?.rawValue ?? -1)
    }

    /// The distinct storages with a CRC check still pending, largest first.
    private static func unverifiedStorages(_ tensors: [Tensor]) -> [Storage] {
        var seen = Set<ObjectIdentifier>()
        return tensors.map(\.storage).filter { !$0.isVerified && seen.insert(ObjectIdentifier($0)).inserted }
            .sorted { $0.byteCount > $1.byteCount }
    }

    /// Elements per work item: large enough to amortize scheduling, small enough to balance cores.
    static let chunkElements = 1 << 18

    private init(_ moments: Moments, isComplex: Bool) {
        count = moments.count
        zeroCount = moments.zeros
        nanCount = moments.nans
        infinityCount = moments.infinities
        l2Norm = moments.nans > 0 ? .nan : moments.infinities > 0 ? .infinity : moments.sumOfSquares.squareRoot()
        if isComplex || count == 0 {
            minimum = nil
            maximum = nil
            mean = isComplex ? nil : .nan
            standardDeviation = isComplex ? nil : .nan
            return
        }
        let poisoned = moments.nans > 0
        minimum = poisoned ? .nan : moments.minimum
        maximum = poisoned ? .nan : moments.maximum
        let infinite = moments.infinities > 0
        mean = poisoned ? .nan : infinite ? moments.sum / Double(count) : moments.mean
        standardDeviation = poisoned || infinite || count < 2 ? .nan : (moments.m2 / Double(count - 1)).squareRoot()
    }
}

/// Running count, extremes, mean, sum of squared deviations (m2) and sum of squares of a set of values.
struct Moments {
    var count = 0
    var minimum = Double.infinity
    var maximum = -Double.infinity
    /// The mean as an unevaluated sum `meanHigh + meanLow`: chunks' high parts are close to one
    /// another, so their differences are exact and the merge keeps the digits a single Double
    /// would round away when the data sit far from zero (1e8 ± 1e-3).
    var meanHigh = 0.0
    var meanLow = 0.0
    var mean: Double { meanHigh + meanLow }
    /// The plain sum, for the mean when infinities make the pairwise update undefined (∞ − ∞).
    var sum = 0.0
    var m2 = 0.0
    var sumOfSquares = 0.0
    var zeros = 0
    var nans = 0
    var infinities = 0

    /// Chan, Golub and LeVeque's pairwise update, so chunks combine without losing precision.
    mutating func merge(_ other: Moments) {
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            return
        }
        let total = count + other.count
        let delta = (other.meanHigh - meanHigh) + (other.meanLow - meanLow)
        let weight = Double(other.count) / Double(total)
        meanLow += delta * weight
        m2 += other.m2 + delta * delta * Double(count) * weight
        count = total
        sum += other.sum
        minimum = Swift.min(minimum, other.minimum)
        maximum = Swift.max(maximum, other.maximum)
        sumOfSquares += other.sumOfSquares
        zeros += other.zeros
        nans += other.nans
        infinities += other.infinities
    }

    /// No values yet.
    init() {}

    /// The moments of these values, each taken `factor` times (mean, extremes unchanged).
    func repeated(_ factor: Int) -> Moments {
        guard factor > 1 else { return self }
        var result = self
        let scale = Double(factor)
        result.count = count * factor
        result.sum = sum * scale
        result.m2 = m2 * scale
        result.sumOfSquares = sumOfSquares * scale
        result.zeros = zeros * factor
        result.nans = nans * factor
        result.infinities = infinities * factor
        return result
    }

    /// A block summarized by a C kernel: the corrected two-pass variance
    /// (Σd² − (Σd)²/n, d = x − first-pass mean) removes the first pass's rounding of the mean.
    init(_ block: ckpt_block_moments, count n: Int) {
        count = n
        guard n > 0 else { return }
        minimum = block.minimum
        maximum = block.maximum
        sum = block.sum
        meanHigh = block.center
        let correction = block.offset / Double(n)
        if correction.isFinite { meanLow = correction }
        m2 = block.deviations - block.offset * correction
        // Σx² = Σd² + 2c·Σd + n·c²: a sum of non-negative terms plus a small one, so no cancellation.
        sumOfSquares = block.deviations + 2 * block.center * block.offset + Double(n) * block.center * block.center
        zeros = Int(block.zeros)
        nans = Int(block.nans)
        infinities = Int(block.infinities)
    }
}

private struct WorkItem {
    var tensor: Int
    var start: Int
    var count: Int
}

/// One worker's buffers: gathered bytes of a strided chunk and decoded doubles.
private final class ChunkScratch {
    static let blockElements = 4096
    private let gathered = GatherBuffer()
    private var doubles = [Double](repeating: 0, count: blockElements)

    /// Statistics of elements `start ..< start + count` (row-major) of a tensor.
    func moments(of tensor: Tensor, start: Int, count: Int) throws -> Moments {
        var result = Moments()
        let item = tensor.dtype.itemSize
        try tensor.storage.withUnsafeBytes { storage in
            var position = start
            while position < start + count {
                let length = min(ChunkScratch.blockElements, start + count - position)
                let block: UnsafeRawPointer
                if tensor.isContiguous {
                    block = storage.baseAddress! + (tensor.storageOffset + position) * item
                } else {
                    block = gathered.gather(tensor, storage, start: position, count: length)
                }
                result.merge(decode(block, dtype: tensor.dtype, count: length))
                position += length
            }
        }
        return result
    }

    /// Summarizes a packed block: float32, float64, bfloat16 and float16 directly in C; other real
    /// dtypes decoded to doubles first; complex elements one by one.
    private func decode(_ block: UnsafeRawPointer, dtype: DType, count: Int) -> Moments {
        var summary = ckpt_block_moments()
        switch dtype {
        case .float32: ckpt_block_moments_f32(block, count, &summary)
        case .float64: ckpt_block_moments_f64(block, count, &summary)
        case .bfloat16: ckpt_block_moments_bf16(block, count, &summary)
        case .float16: ckpt_block_moments_f16(block, count, &summary)
        case .complex64, .complex128: return ChunkScratch.complexMoments(block, dtype: dtype, count: count)
        default:
            doubles.withUnsafeMutableBufferPointer { out in
                if dtype == .float8_e4m3fn || dtype == .float8_e5m2 {
                    let bytes = block.assumingMemoryBound(to: UInt8.self)
                    let table = dtype == .float8_e4m3fn ? ChunkScratch.e4m3Table : ChunkScratch.e5m2Table
                    for index in 0..<count { out[index] = Double(table[Int(bytes[index])]) }
                } else {
                    let raw = UnsafeRawBufferPointer(start: block, count: count * dtype.itemSize)
                    for index in 0..<count {
                        switch Tensor.element(raw, at: index, of: dtype) {
                        case .signed(let value): out[index] = Double(value)
                        case .unsigned(let value): out[index] = Double(value)
                        case .real(let value), .complex(let value, _): out[index] = value
                        }
                    }
                }
                ckpt_block_moments_f64(out.baseAddress!, count, &summary)
            }
        }
        return Moments(summary, count: count)
    }

    private static func complexMoments(_ block: UnsafeRawPointer, dtype: DType, count: Int) -> Moments {
        var result = Moments()
        result.count = count
        let raw = UnsafeRawBufferPointer(start: block, count: count * dtype.itemSize)
        for index in 0..<count {
            guard case .complex(let re, let im) = Tensor.element(raw, at: index, of: dtype) else { continue }
            result.sumOfSquares += re * re + im * im
            if re == 0 && im == 0 { result.zeros += 1 }
            if re.isNaN || im.isNaN { result.nans += 1 }
            if re.isInfinite || im.isInfinite { result.infinities += 1 }
        }
        return result
    }

    static let e4m3Table: [Float] = (0...0xFF).map { ElementCodec.float(fromFloat8E4M3FNBits: UInt8($0)) }
    static let e5m2Table: [Float] = (0...0xFF).map { ElementCodec.float(fromFloat8E5M2Bits: UInt8($0)) }
}
