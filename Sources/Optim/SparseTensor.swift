import Checkpoint

/// A sparse COO tensor, as `torch.sparse_coo_tensor(indices, values, size)` builds it: `indices`
/// (int64, `[sparseDim, nnz]`) names the positions, `values` (`[nnz] + size[sparseDim...]`) the
/// entries there. Positions may repeat until the tensor is coalesced; repeats add up.
public struct SparseTensor {
    /// Positions, int64 `[sparseDim, nnz]`.
    public let indices: Tensor
    /// Entries, `[nnz]` followed by the dense dimensions of ``shape``.
    public let values: Tensor
    /// The dense shape this tensor stands for.
    public let shape: [Int]
    /// True once repeats are summed and positions sorted.
    public let isCoalesced: Bool

    /// Number of sparse dimensions (the leading ones of ``shape``).
    public var sparseDim: Int { indices.shape[0] }
    /// Number of stored entries.
    public var nnz: Int { indices.shape[1] }

    /// Creates a sparse tensor, checking every invariant torch leaves unchecked by default (a bad
    /// index there can crash; here it throws).
    ///
    /// - Parameters:
    ///   - indices: int64 `[sparseDim, nnz]` positions.
    ///   - values: `[nnz] + shape[sparseDim...]` entries.
    ///   - shape: The dense shape.
    ///   - isCoalesced: Declares positions unique and sorted; checked when true.
    /// - Throws: ``OptimizerError`` `.invalidValue` naming the broken invariant.
    public init(indices: Tensor, values: Tensor, shape: [Int], isCoalesced: Bool = false) throws {
        guard indices.dtype == .int64, indices.shape.count == 2 else {
            throw OptimizerError(.invalidValue, "sparse indices must be an int64 tensor of shape [sparseDim, nnz], found \(indices.dtype) \(indices.shape)")
        }
        let sparseDim = indices.shape[0], nnz = indices.shape[1]
        guard sparseDim >= 1, sparseDim <= shape.count else {
            throw OptimizerError(.invalidValue, "sparse indices have \(sparseDim) rows but the tensor has \(shape.count) dimensions")
        }
        guard values.shape == [nnz] + shape[sparseDim...] else {
            throw OptimizerError(.invalidValue, "sparse values have shape \(values.shape), expected \([nnz] + shape[sparseDim...])")
        }
        _ = try Tensor.checkedElementCount(shape)
        let positions = try indices.scalars(as: Int64.self)
        for row in 0..<sparseDim {
            for k in 0..<nnz {
                let index = positions[row * nnz + k]
                guard index >= 0, index < shape[row] else {
                    throw OptimizerError(.invalidValue, "sparse index \(index) out of bounds for dimension \(row) of size \(shape[row])")
                }
            }
        }
        self.indices = indices
        self.values = values
        self.shape = shape
        self.isCoalesced = isCoalesced
        if isCoalesced {
            let linear = linearIndices(positions)
            guard zip(linear, linear.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw OptimizerError(.invalidValue, "a sparse tensor declared coalesced has repeated or unsorted indices")
            }
        }
    }

    private init(unchecked indices: Tensor, values: Tensor, shape: [Int]) {
        self.indices = indices
        self.values = values
        self.shape = shape
        self.isCoalesced = true
    }

    /// The row-major position of each entry within the sparse dimensions.
    func linearIndices(_ positions: [Int64]) -> [Int] {
        (0..<nnz).map { k in
            var linear = 0
            for row in 0..<sparseDim { linear = linear * shape[row] + Int(positions[row * nnz + k]) }
            return linear
        }
    }

    /// This tensor with positions sorted and repeats summed, as torch's `coalesce()`: repeats are
    /// added in their original order (a stable sort), each addition rounded to the values' dtype.
    ///
    /// - Returns: A coalesced tensor (this one if it already is).
    /// - Throws: ``OptimizerError`` for a values dtype that cannot be added.
    public func coalesced() throws -> SparseTensor {
        if isCoalesced { return self }
        let positions = try indices.scalars(as: Int64.self)
        let linear = linearIndices(positions)
        let order = linear.indices.sorted { (linear[$0], $0) < (linear[$1], $1) }
        let block = shape[sparseDim...].reduce(1, *)
        let source = try values.contiguousCopy()
        var kept: [Int] = []
        var groups: [[Int]] = []
        for k in order {
            if let last = kept.last, linear[last] == linear[k] {
                groups[groups.count - 1].append(k)
            } else {
                kept.append(k)
                groups.append([k])
            }
        }
        let newValues = try Tensor(zeros: values.dtype, shape: [kept.count] + shape[sparseDim...])
        let dtype = values.dtype
        try source.storage.withUnsafeBytes { from in
            try newValues.storage.withUnsafeMutableBytes { to in
                guard let from = from.baseAddress, let to = to.baseAddress else { return }
                for (slot, members) in groups.enumerated() {
                    for element in 0..<block {
                        try SparseTensor.accumulate(
                            members.map { $0 * block + element }, from: from, into: slot * block + element, of: to, dtype: dtype)
                    }
                }
            }
        }
        var newPositions = [Int64](repeating: 0, count: sparseDim * kept.count)
        for (slot, k) in kept.enumerated() {
            for row in 0..<sparseDim { newPositions[row * kept.count + slot] = positions[row * nnz + k] }
        }
        let newIndices = try Tensor(newPositions, shape: [sparseDim, kept.count])
        return SparseTensor(unchecked: newIndices, values: newValues, shape: shape)
    }

    /// Sums the source elements at `members` in order into `slot`, rounding after each addition.
    private static func accumulate(
        _ members: [Int], from: UnsafeRawPointer, into slot: Int, of to: UnsafeMutableRawPointer, dtype: DType
    ) throws {
        switch dtype {
        case .complex64, .complex128:
            let part: DType = dtype == .complex64 ? .float32 : .float64
            for component in 0..<2 {
                var total = try Tensor.readElement(from, members[0] * 2 + component, part)
                for k in members.dropFirst() {
                    total = try roundedSum(total, Tensor.readElement(from, k * 2 + component, part), part)
                }
                try Tensor.writeFloatingElement(to, slot * 2 + component, part, total)
            }
        default:
            var total = try Tensor.readElement(from, members[0], dtype)
            for k in members.dropFirst() {
                total = try roundedSum(total, Tensor.readElement(from, k, dtype), dtype)
            }
            try Tensor.writeFloatingElement(to, slot, dtype, total)
        }
    }

    private static func roundedSum(_ a: Double, _ b: Double, _ dtype: DType) throws -> Double {
        switch dtype {
        case .float64: return a + b
        case .float32: return Double(Float(a) + Float(b))
        case .float16: return Double(ElementCodec.roundedToFloat16(Float(a) + Float(b)))
        case .bfloat16: return Double(BFloat16.round(Float(a) + Float(b)))
        default: throw OptimizerError(.unsupported, "sparse values of dtype \(dtype) are not supported")
        }
    }

    /// A dense copy (`to_dense()`), repeats summed.
    ///
    /// - Returns: A contiguous tensor of ``shape``.
    /// - Throws: ``OptimizerError`` for a values dtype that cannot be added.
    public func dense() throws -> Tensor {
        let coalesced = try coalesced()
        let result = try Tensor(zeros: values.dtype, shape: shape)
        let block = shape[sparseDim...].reduce(1, *)
        let itemSize = values.dtype.itemSize
        let linear = coalesced.linearIndices(try coalesced.indices.scalars(as: Int64.self))
        let valueBytes = try coalesced.values.contiguousBytes()
        try result.storage.withUnsafeMutableBytes { to in
            valueBytes.withUnsafeBytes { from in
                guard let to = to.baseAddress, let from = from.baseAddress else { return }
                for (k, position) in linear.enumerated() {
                    (to + position * block * itemSize).copyMemory(from: from + k * block * itemSize, byteCount: block * itemSize)
                }
            }
        }
        return result
    }
}

extension SparseTensor {
    /// Where each stored element lands in `tensor` (a dense tensor of ``shape``, any strides): for
    /// every entry in order, the storage offset (in elements, `storageOffset` included) of each
    /// element of its dense block, row-major.
    ///
    /// - Parameter tensor: The dense tensor the entries address.
    /// - Returns: `nnz` times the dense block's element count offsets.
    /// - Throws: A failed read of the indices.
    func elementOffsets(in tensor: Tensor) throws -> [Int] {
        let denseShape = Array(shape[sparseDim...])
        let denseStrides = Array(tensor.strides[sparseDim...])
        let block = denseShape.reduce(1, *)
        var within: [Int] = []
        within.reserveCapacity(block)
        var index = [Int](repeating: 0, count: denseShape.count)
        for _ in 0..<block {
            within.append(zip(index, denseStrides).reduce(0) { $0 + $1.0 * $1.1 })
            var dim = denseShape.count - 1
            while dim >= 0 {
                index[dim] += 1
                if index[dim] < denseShape[dim] { break }
                index[dim] = 0
                dim -= 1
            }
        }
        let positions = try indices.scalars(as: Int64.self)
        var offsets: [Int] = []
        offsets.reserveCapacity(nnz * block)
        for k in 0..<nnz {
            var base = tensor.storageOffset
            for row in 0..<sparseDim { base += Int(positions[row * nnz + k]) * tensor.strides[row] }
            for element in within { offsets.append(base + element) }
        }
        return offsets
    }
}
