import Foundation

/// A strided view of a ``Storage``: dtype, shape, strides and storage offset (in elements), as
/// in PyTorch.
///
/// Views and shared storages survive a save and load: two tensors that view one storage are
/// saved as one blob and come back sharing one storage.
///
/// The layout (storage, dtype, shape, strides, offset) is fixed at creation, where it is checked
/// against the storage: no tensor can reach past its bytes. ``viewed(shape:strides:storageOffset:)``
/// and ``reshaped(_:)`` make other views, checked the same way.
public struct Tensor: Sendable {
    /// The bytes this tensor views, possibly shared with other tensors.
    public let storage: Storage
    public let dtype: DType
    public let shape: [Int]
    /// Element strides per dimension.
    public let strides: [Int]
    /// Offset of the first element in the storage, in elements.
    public let storageOffset: Int
    /// PyTorch's `requires_grad` flag, kept through save and load.
    public var requiresGrad: Bool
    /// True for an `nn.Parameter` (saved through `torch._utils._rebuild_parameter`).
    public var isParameter: Bool
    /// Set for a numpy array or scalar read as data (see ``DataGlobals``): written back as numpy
    /// pickles it. Nil for a torch tensor.
    public var numpyOrigin: NumpyOrigin? = nil

    /// Creates a view of a storage, checking that every element it can reach lies inside it.
    ///
    /// - Parameters:
    ///   - storage: The bytes viewed.
    ///   - dtype: Element type.
    ///   - shape: Size of each dimension.
    ///   - strides: Element strides; nil for contiguous (row-major) strides.
    ///   - storageOffset: Elements to skip at the start of the storage.
    ///   - requiresGrad: PyTorch's `requires_grad`.
    ///   - isParameter: True for an `nn.Parameter`.
    /// - Throws: ``CheckpointError`` `.outOfBounds` when the view does not fit in the storage or its
    ///   size overflows, `.invalidArgument` when shape and strides disagree or are negative.
    public init(
        storage: Storage, dtype: DType, shape: [Int], strides: [Int]? = nil, storageOffset: Int = 0,
        requiresGrad: Bool = false, isParameter: Bool = false
    ) throws {
        let strides = strides ?? Tensor.contiguousStrides(for: shape)
        guard strides.count == shape.count else {
            throw CheckpointError(
                .invalidArgument, "shape and strides differ in rank",
                expected: "\(shape.count) strides", found: "\(strides.count)")
        }
        guard shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }), storageOffset >= 0 else {
            throw CheckpointError(
                .invalidArgument, "negative size, stride or offset",
                found: "shape \(shape), strides \(strides), offset \(storageOffset)")
        }
        // A broadcast view (stride 0) may have far more elements than its storage holds bytes;
        // its logical size must still be representable, so `byteCount` can never overflow.
        guard !(try Tensor.checkedElementCount(shape)).multipliedReportingOverflow(by: dtype.itemSize).overflow else {
            throw CheckpointError(.outOfBounds, "tensor's logical size overflows a 64-bit integer", found: "shape \(shape), \(dtype)")
        }
        let needed = try Tensor.requiredStorageBytes(
            shape: shape, strides: strides, storageOffset: storageOffset, itemSize: dtype.itemSize)
        guard needed <= storage.byteCount else {
            throw CheckpointError(
                .outOfBounds, "tensor view reaches past its storage",
                expected: "at most \(storage.byteCount) bytes", found: "\(needed) bytes needed")
        }
        self.storage = storage
        self.dtype = dtype
        self.shape = shape
        self.strides = strides
        self.storageOffset = storageOffset
        self.requiresGrad = requiresGrad
        self.isParameter = isParameter
    }

    /// Another view of the same storage, checked as ``init(storage:dtype:shape:strides:storageOffset:requiresGrad:isParameter:)``
    /// checks a new one; `requiresGrad`, `isParameter` and `numpyOrigin` carry over.
    ///
    /// - Parameters:
    ///   - shape: Size of each dimension.
    ///   - strides: Element strides; nil for contiguous (row-major) strides.
    ///   - storageOffset: Elements to skip at the start of the storage; nil keeps this tensor's.
    /// - Returns: The view.
    /// - Throws: ``CheckpointError`` `.outOfBounds` when the view does not fit in the storage,
    ///   `.invalidArgument` when shape and strides disagree or are negative.
    public func viewed(shape: [Int], strides: [Int]? = nil, storageOffset: Int? = nil) throws -> Tensor {
        var view = try Tensor(
            storage: storage, dtype: dtype, shape: shape, strides: strides, storageOffset: storageOffset ?? self.storageOffset,
            requiresGrad: requiresGrad, isParameter: isParameter)
        view.numpyOrigin = numpyOrigin
        return view
    }

    /// The same elements in another shape, as `torch.Tensor.view` gives them: this tensor must be
    /// contiguous, and the shapes must hold as many elements.
    ///
    /// - Parameter shape: The new shape.
    /// - Returns: A view of the same storage.
    /// - Throws: ``CheckpointError`` `.invalidArgument` for a non-contiguous tensor or a different
    ///   element count.
    public func reshaped(_ shape: [Int]) throws -> Tensor {
        guard isContiguous else {
            throw CheckpointError(.invalidArgument, "only a contiguous tensor can be reshaped in place",
                                  expected: "contiguous strides", found: "\(strides)")
        }
        let count = try Tensor.checkedElementCount(shape)
        guard count == numel else {
            throw CheckpointError(.invalidArgument, "reshaping changes the element count", expected: "\(numel)", found: "\(count) for shape \(shape)")
        }
        return try viewed(shape: shape)
    }

    /// A new contiguous tensor of zeros.
    public init(zeros dtype: DType, shape: [Int]) throws {
        let count = try Tensor.checkedElementCount(shape)
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow else { throw CheckpointError(.outOfBounds, "tensor size overflows", found: "shape \(shape)") }
        try self.init(storage: Storage(byteCount: bytes), dtype: dtype, shape: shape)
    }

    /// A new contiguous tensor holding `values` in row-major order.
    ///
    /// - Parameters:
    ///   - values: The elements.
    ///   - shape: The shape; nil for a 1-D tensor of `values.count` elements.
    /// - Throws: ``CheckpointError`` `.invalidArgument` if the shape's element count is not `values.count`.
    public init<T: TensorScalar>(_ values: [T], shape: [Int]? = nil) throws {
        let shape = shape ?? [values.count]
        let count = try Tensor.checkedElementCount(shape)
        guard count == values.count else {
            throw CheckpointError(
                .invalidArgument, "element count does not match shape", expected: "\(count) for shape \(shape)",
                found: "\(values.count)")
        }
        let storage = values.withUnsafeBytes { Storage(copying: $0) }
        try self.init(storage: storage, dtype: T.dtype, shape: shape)
    }

    /// Row-major strides for a shape.
    public static func contiguousStrides(for shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for index in shape.indices.reversed() {
            strides[index] = running
            running = running &* max(shape[index], 1)
        }
        return strides
    }

    /// The product of a shape, or an error if it overflows or a dimension is negative.
    public static func checkedElementCount(_ shape: [Int]) throws -> Int {
        var count = 1
        for dim in shape {
            guard dim >= 0 else { throw CheckpointError(.invalidArgument, "negative dimension", found: "shape \(shape)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else {
                throw CheckpointError(.outOfBounds, "shape's element count overflows a 64-bit integer", found: "shape \(shape)")
            }
            count = product
        }
        return count
    }

    /// Bytes of storage a view needs: (offset + largest reachable index + 1) × item size, or 0
    /// for an empty view; throws on overflow.
    public static func requiredStorageBytes(shape: [Int], strides: [Int], storageOffset: Int, itemSize: Int) throws -> Int {
        // Built only when thrown: describing the shape eagerly cost more than the whole check.
        func overflow() -> CheckpointError {
            CheckpointError(
                .outOfBounds, "tensor extent overflows a 64-bit integer",
                found: "shape \(shape), strides \(strides), offset \(storageOffset)")
        }
        if try checkedElementCount(shape) == 0 { return 0 }
        var last = storageOffset
        for (dim, stride) in zip(shape, strides) {
            let (span, o1) = (dim - 1).multipliedReportingOverflow(by: stride)
            let (sum, o2) = last.addingReportingOverflow(span)
            guard !o1, !o2 else { throw overflow() }
            last = sum
        }
        let (elements, o3) = last.addingReportingOverflow(1)
        let (bytes, o4) = elements.multipliedReportingOverflow(by: itemSize)
        guard !o3, !o4 else { throw overflow() }
        return bytes
    }

    /// Number of elements.
    public var numel: Int { shape.reduce(1, *) }

    /// Bytes of the logical elements (numel × item size), not of the whole storage.
    public var byteCount: Int { numel * dtype.itemSize }

    /// True if the elements lie row-major and packed (dimensions of size 1 may have any stride).
    public var isContiguous: Bool {
        var expected = 1
        for index in shape.indices.reversed() where shape[index] != 1 {
            if shape[index] == 0 { return true }
            if strides[index] != expected { return false }
            expected *= shape[index]
        }
        return true
    }

    /// The logical elements in row-major order, as bytes (a copy; strided views are gathered).
    ///
    /// - Throws: A failed storage verification.
    public func contiguousBytes() throws -> [UInt8] {
        let item = dtype.itemSize
        // A broadcast view can name far more bytes than its storage holds (a hostile file can make
        // one of terabytes); refuse what cannot fit in memory instead of trapping in the allocator.
        guard UInt64(byteCount) <= ProcessInfo.processInfo.physicalMemory else {
            throw CheckpointError(
                .outOfBounds, "tensor is too large to copy into memory",
                expected: "at most \(ProcessInfo.processInfo.physicalMemory) bytes", found: "\(byteCount) bytes (shape \(shape))")
        }
        var out = [UInt8](repeating: 0, count: byteCount)
        guard !out.isEmpty else { return out }
        try storage.withUnsafeBytes { source in
            out.withUnsafeMutableBytes { destination in
                if isContiguous {
                    destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[(storageOffset * item)...].prefix(byteCount)))
                    return
                }
                var written = 0
                forEachElementOffset { offset in
                    let from = (storageOffset + offset) * item
                    destination.baseAddress!.advanced(by: written)
                        .copyMemory(from: source.baseAddress!.advanced(by: from), byteCount: item)
                    written += item
                }
            }
        }
        return out
    }

    /// Calls `body` with each element's offset from `storageOffset` (in elements), row-major.
    ///
    /// - Parameters:
    ///   - start: The row-major index of the first element visited.
    ///   - count: How many elements to visit; nil for all from `start` on.
    ///   - body: Receives each element's storage offset relative to `storageOffset`.
    public func forEachElementOffset(from start: Int = 0, count: Int? = nil, _ body: (Int) -> Void) {
        let total = numel
        guard start >= 0, start < total else { return }
        let count = min(count ?? total - start, total - start)
        if shape.isEmpty { body(0); return }
        // An odometer over the index, started at `start` and stepped by the strides.
        var index = [Int](repeating: 0, count: shape.count)
        var remainder = start
        var offset = 0
        for dim in shape.indices.reversed() {
            index[dim] = remainder % shape[dim]
            remainder /= shape[dim]
            offset += index[dim] * strides[dim]
        }
        for _ in 0..<count {
            body(offset)
            var dim = shape.count - 1
            while dim >= 0 {
                index[dim] += 1
                offset += strides[dim]
                if index[dim] < shape[dim] { break }
                offset -= strides[dim] * shape[dim]
                index[dim] = 0
                dim -= 1
            }
        }
    }

    /// The elements in row-major order.
    ///
    /// - Parameter type: The Swift element type; must match ``dtype``.
    /// - Throws: ``CheckpointError`` `.typeMismatch` if `T` is not this tensor's dtype; a failed
    ///   storage verification.
    public func scalars<T: TensorScalar>(as type: T.Type = T.self) throws -> [T] {
        guard T.dtype == dtype else {
            throw CheckpointError(.typeMismatch, "element type differs from the tensor's dtype", expected: "\(dtype)", found: "\(T.dtype)")
        }
        let bytes = try contiguousBytes()
        return bytes.withUnsafeBytes { raw in Array(raw.bindMemory(to: T.self)) }
    }

    /// A contiguous copy in new owned storage (flags kept).
    public func contiguousCopy() throws -> Tensor {
        var copy = try Tensor(storage: Storage(bytes: contiguousBytes()), dtype: dtype, shape: shape)
        copy.requiresGrad = requiresGrad
        copy.isParameter = isParameter
        copy.numpyOrigin = numpyOrigin
        return copy
    }

    /// True when dtype, shape and every element's bits are equal (strides and storages may differ).
    public func isBitwiseEqual(to other: Tensor) throws -> Bool {
        guard dtype == other.dtype, shape == other.shape else { return false }
        return try contiguousBytes() == other.contiguousBytes()
    }
}

/// A Swift type whose values are laid out as one element of a ``DType``.
public protocol TensorScalar: BitwiseCopyable {
    static var dtype: DType { get }
}

extension Double: TensorScalar { public static var dtype: DType { .float64 } }
extension Float: TensorScalar { public static var dtype: DType { .float32 } }
#if !(os(macOS) && arch(x86_64))
extension Float16: TensorScalar { public static var dtype: DType { .float16 } }
#endif
extension Int64: TensorScalar { public static var dtype: DType { .int64 } }
extension Int32: TensorScalar { public static var dtype: DType { .int32 } }
extension Int16: TensorScalar { public static var dtype: DType { .int16 } }
extension Int8: TensorScalar { public static var dtype: DType { .int8 } }
extension UInt8: TensorScalar { public static var dtype: DType { .uint8 } }
extension Bool: TensorScalar { public static var dtype: DType { .bool } }
extension UInt16: TensorScalar { public static var dtype: DType { .uint16 } }
extension UInt32: TensorScalar { public static var dtype: DType { .uint32 } }
extension UInt64: TensorScalar { public static var dtype: DType { .uint64 } }

/// A bfloat16 value, stored as its 16 bits (Swift has no bfloat16 type).
public struct BFloat16: TensorScalar, Hashable, Sendable, CustomStringConvertible {
    public static var dtype: DType { .bfloat16 }
    public var bitPattern: UInt16

    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds a Float to the nearest bfloat16, ties to even, as PyTorch does; NaN stays a quiet NaN.
    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: (bits >> 16) | 0x0040)
            return
        }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        bitPattern = UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// The exact Float value.
    public var floatValue: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    public var description: String { floatValue.description }
}
