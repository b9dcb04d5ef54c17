import Checkpoint
import Foundation

/// The differences between two state trees: structural ones (keys added or removed, a value whose
/// type, dtype or shape changed, a scalar or hyperparameter that changed) and numeric ones (per
/// tensor, the largest absolute and relative difference and whether every element is close).
///
/// Dict items are matched by key, list, tuple and set elements by position, OrderedDict attributes
/// by name, the parts of two placeholders of one global (``PickledObject``) by part name. Non-tensor values (hyperparameters, epochs, strings) must be exactly equal. Tensors of
/// the same shape are compared element by element with `torch.allclose`'s rule (see ``Tolerance``),
/// also when their dtypes differ (the dtype change is reported as well), so a cast can be judged.
public struct StateDiff: Sendable {
    /// `torch.isclose`'s test: `|a - b| <= atol + rtol * |b|`, where `a` is from the first tree and `b`
    /// from the second.
    ///
    /// Equal values are close (so `inf` is close to `inf` of the same sign); any other pair with an
    /// infinity is not. A NaN is close to nothing unless ``equalNaN`` is set, in which case a NaN is
    /// close to a NaN (as `equal_nan=True`). Complex elements use the modulus of the difference and of `b`.
    public struct Tolerance: Sendable, Equatable {
        /// `rtol`: the allowed difference per unit of `|b|`.
        public var relative: Double
        /// `atol`: the allowed difference near zero.
        public var absolute: Double
        /// `equal_nan`: a NaN is close to a NaN.
        public var equalNaN: Bool

        /// Creates a tolerance; the defaults are torch.allclose's (`rtol=1e-05, atol=1e-08, equal_nan=False`).
        ///
        /// - Parameters:
        ///   - relative: `rtol`.
        ///   - absolute: `atol`.
        ///   - equalNaN: Treat NaN as close to NaN.
        public init(relative: Double = 1e-5, absolute: Double = 1e-8, equalNaN: Bool = false) {
            self.relative = relative
            self.absolute = absolute
            self.equalNaN = equalNaN
        }
    }

    /// What changed at a key path.
    public enum Kind: String, Sendable, CaseIterable {
        /// Present only in the second tree.
        case added
        /// Present only in the first tree.
        case removed
        /// The Python type differs (`int` vs `float`, `dict` vs `OrderedDict`, `Tensor` vs `Parameter`).
        case type
        /// A non-tensor value differs.
        case value
        /// A tensor's dtype differs.
        case dtype
        /// A tensor's shape differs (its elements are then not compared).
        case shape
        /// A tensor's `requires_grad` differs.
        case requiresGrad = "requires_grad"
        /// A tensor has elements that are not close within the tolerance.
        case values
    }

    /// One difference.
    public struct Difference: Sendable {
        public var kind: Kind
        /// The keys from the root to the value that differs.
        public var path: [StateKey]
        /// The first tree's side in short form (`float 0.1`, `Tensor float32 [3, 4]`), nil when added.
        public var old: String?
        /// The second tree's side, nil when removed.
        public var new: String?
    }

    /// How two same-shaped tensors compare, element by element.
    public struct TensorComparison: Sendable {
        /// The keys from the root to the tensor.
        public var path: [StateKey]
        /// Elements compared (the tensors' common numel).
        public var elementCount: Int
        /// The largest `|a - b|` over pairs where neither is NaN (0 when there are none); `inf` when
        /// one side is infinite and the other is not.
        public var maxAbsoluteDifference: Double
        /// The largest `|a - b| / |b|` over pairs where neither is NaN; `inf` when `b` is 0 and `a` is not.
        public var maxRelativeDifference: Double
        /// Elements that are not close within the tolerance (NaN pairs included).
        public var mismatchedElements: Int
        /// Positions where exactly one side is NaN, or both are and NaN is not equal to NaN.
        public var nanMismatches: Int
        /// True when every element is close.
        public var isClose: Bool { mismatchedElements == 0 }
    }

    /// The closeness test the tensors were compared with.
    public var tolerance: Tolerance
    /// Every difference, in the first tree's order (additions where the second tree has them).
    public var differences: [Difference]
    /// Every pair of same-shaped tensors compared, including the ones that are close.
    public var tensorComparisons: [TensorComparison]

    /// True when the trees have the same structure, equal non-tensor values and close tensors.
    public var isEqual: Bool { differences.isEmpty }

    /// Compares two trees.
    ///
    /// - Parameters:
    ///   - old: The first tree (`a` in the tolerance test).
    ///   - new: The second tree (`b`, whose magnitude scales the relative tolerance).
    ///   - tolerance: The closeness test for tensor elements.
    ///   - comparesElements: False compares only structure and tensor metadata, reading no tensor data.
    /// - Returns: The differences.
    /// - Throws: ``CheckpointError`` from reading tensor bytes (`.checksumMismatch` for damaged data).
    public static func compare(
        _ old: StateValue, _ new: StateValue, tolerance: Tolerance = Tolerance(), comparesElements: Bool = true
    ) throws -> StateDiff {
        var walker = Walker(tolerance: tolerance, comparesElements: comparesElements)
        var path: [StateKey] = []
        try walker.compare(old, new, path: &path)
        return StateDiff(tolerance: tolerance, differences: walker.differences, tensorComparisons: walker.comparisons)
    }

    /// A short description of a value for a difference: its type and, for scalars, its value.
    ///
    /// - Parameter value: Any tree value.
    /// - Returns: `float 0.1`, `str 'cpu'`, `Tensor float32 [3, 4]`, `dict (2 items)`.
    public static func describe(_ value: StateValue) -> String {
        let type = value.pythonTypeName
        switch value {
        case .dict(let dict): return "\(type) (\(dict.items.count) items)"
        case .list(let xs), .tuple(let xs), .set(let xs): return "\(type) (\(xs.count) items)"
        case .tensor(let tensor): return "\(type) \(tensor.dtype.rawValue) \(tensor.shape)"
        case .string(let text): return "\(type) \(text.debugDescription)"
        case .int(let integer): return "\(type) \(integer)"
        case .float(let number): return "\(type) \(number)"
        case .bool(let flag): return "\(type) \(flag ? "True" : "False")"
        case .none: return "None"
        case .bytes(let bytes), .bytearray(let bytes): return "\(type) (\(bytes.count) bytes)"
        case .size(let dims): return "\(type) \(dims)"
        case .device(let name): return "\(type) \(name)"
        case .dtype(let dtype): return "\(type) \(dtype)"
        case .complex(let real, let imaginary): return "\(type) (\(real), \(imaginary))"
        case .object(let object): return object.summary
        case .record(let record):
            if let path = record.pathString { return "\(type) \(path.debugDescription)" }
            return "\(type) (\(record.attributes.count) attributes)"
        }
    }
}

/// The recursive comparison behind ``StateDiff/compare(_:_:tolerance:comparesElements:)``.
private struct Walker {
    let tolerance: StateDiff.Tolerance
    let comparesElements: Bool
    var differences: [StateDiff.Difference] = []
    var comparisons: [StateDiff.TensorComparison] = []

    private mutating func record(_ kind: StateDiff.Kind, _ path: [StateKey], _ old: StateValue?, _ new: StateValue?) {
        differences.append(StateDiff.Difference(
            kind: kind, path: path, old: old.map(StateDiff.describe), new: new.map(StateDiff.describe)))
    }

    mutating func compare(_ old: StateValue, _ new: StateValue, path: inout [StateKey]) throws {
        switch (old, new) {
        case let (.dict(a), .dict(b)):
            if old.pythonTypeName != new.pythonTypeName || a.defaultFactory != b.defaultFactory { record(.type, path, old, new) }
            try compareKeyed(
                a.items.elements.map { ($0.key, $0.value) }, b.items.elements.map { ($0.key, $0.value) }, path: &path)
            try compareKeyed(
                a.attributes.map { (.string($0.key), $0.value) },
                b.attributes.map { (.string($0.key), $0.value) }, path: &path)
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)), let (.set(a), .set(b)):
            try comparePositional(a, b, path: &path)
        case let (.tensor(a), .tensor(b)):
            if old.pythonTypeName != new.pythonTypeName { record(.type, path, old, new) }
            try compareTensors(a, b, path: path)
        case let (.record(a), .record(b)):
            if a.kind != b.kind { record(.type, path, old, new) }
            try compareKeyed(
                a.attributes.map { (.string($0.key), $0.value) }, b.attributes.map { (.string($0.key), $0.value) }, path: &path)
        case let (.object(a), .object(b)):
            // Placeholders of the same global made the same way are compared part by part.
            if a.qualifiedName != b.qualifiedName || a.construction != b.construction { record(.type, path, old, new) }
            try compareKeyed(
                a.parts.map { (.string($0.key), $0.value) }, b.parts.map { (.string($0.key), $0.value) }, path: &path)
        default:
            if old.pythonTypeName != new.pythonTypeName {
                record(.type, path, old, new)
                if case .list(let a) = old, case .tuple(let b) = new { try comparePositional(a, b, path: &path) }
                if case .tuple(let a) = old, case .list(let b) = new { try comparePositional(a, b, path: &path) }
            } else if old != new {
                record(.value, path, old, new)
            }
        }
    }

    private mutating func compareKeyed(_ old: [(StateKey, StateValue)], _ new: [(StateKey, StateValue)], path: inout [StateKey]) throws {
        var newByKey: [StateKey: StateValue] = [:]
        for (key, value) in new { newByKey[key] = value }
        var oldKeys = Set<StateKey>()
        for (key, value) in old {
            oldKeys.insert(key)
            path.append(key)
            if let other = newByKey[key] {
                try compare(value, other, path: &path)
            } else {
                record(.removed, path, value, nil)
            }
            path.removeLast()
        }
        for (key, value) in new where !oldKeys.contains(key) {
            record(.added, path + [key], nil, value)
        }
    }

    private mutating func comparePositional(_ old: [StateValue], _ new: [StateValue], path: inout [StateKey]) throws {
        for index in 0..<max(old.count, new.count) {
            path.append(.int(Int64(index)))
            switch (index < old.count ? old[index] : nil, index < new.count ? new[index] : nil) {
            case let (a?, b?): try compare(a, b, path: &path)
            case let (a?, nil): record(.removed, path, a, nil)
            case let (nil, b?): record(.added, path, nil, b)
            case (nil, nil): break
            }
            path.removeLast()
        }
    }

    private mutating func compareTensors(_ old: Tensor, _ new: Tensor, path: [StateKey]) throws {
        let oldValue = StateValue.tensor(old)
        let newValue = StateValue.tensor(new)
        if old.isParameter != new.isParameter { record(.type, path, oldValue, newValue) }
        if old.requiresGrad != new.requiresGrad {
            differences.append(StateDiff.Difference(
                kind: .requiresGrad, path: path, old: String(old.requiresGrad), new: String(new.requiresGrad)))
        }
        if old.dtype != new.dtype { record(.dtype, path, oldValue, newValue) }
        guard old.shape == new.shape else {
            record(.shape, path, oldValue, newValue)
            return
        }
        guard comparesElements else { return }
        let comparison = try TensorCloseness.compare(old, new, tolerance: tolerance, path: path)
        comparisons.append(comparison)
        if !comparison.isClose {
            differences.append(StateDiff.Difference(
                kind: .values, path: path,
                old: "\(comparison.mismatchedElements) of \(comparison.elementCount) elements not close",
                new: "max abs diff \(comparison.maxAbsoluteDifference), max rel diff \(comparison.maxRelativeDifference)"))
        }
    }
}

/// Element-by-element closeness of two same-shaped tensors, in one pass without copying
/// contiguous data.
enum TensorCloseness {
    static func compare(_ a: Tensor, _ b: Tensor, tolerance: StateDiff.Tolerance, path: [StateKey]) throws -> StateDiff.TensorComparison {
        var result = StateDiff.TensorComparison(
            path: path, elementCount: a.numel, maxAbsoluteDifference: 0, maxRelativeDifference: 0, mismatchedElements: 0,
            nanMismatches: 0)
        try a.withPackedBytes { left in
            try b.withPackedBytes { right in
                switch (a.dtype, b.dtype) {
                case (.float32, .float32): compareReal(left, Float.self, right, Float.self, a.numel, tolerance, &result)
                case (.float64, .float64): compareReal(left, Double.self, right, Double.self, a.numel, tolerance, &result)
                case (.float32, .float64): compareReal(left, Float.self, right, Double.self, a.numel, tolerance, &result)
                case (.float64, .float32): compareReal(left, Double.self, right, Float.self, a.numel, tolerance, &result)
                default:
                    for index in 0..<a.numel {
                        let (x, xi) = Self.parts(Tensor.element(left, at: index, of: a.dtype))
                        let (y, yi) = Self.parts(Tensor.element(right, at: index, of: b.dtype))
                        result.include(x, xi, y, yi, tolerance)
                    }
                }
            }
        }
        return result
    }

    /// The common float32/float64 cases without decoding each element through ``ConversionElement``
    /// (about 3x faster on large tensors).
    private static func compareReal<X: BinaryFloatingPoint, Y: BinaryFloatingPoint>(
        _ left: UnsafeRawBufferPointer, _: X.Type, _ right: UnsafeRawBufferPointer, _: Y.Type, _ count: Int,
        _ tolerance: StateDiff.Tolerance, _ result: inout StateDiff.TensorComparison
    ) {
        for index in 0..<count {
            let x = Double(left.loadUnaligned(fromByteOffset: index * MemoryLayout<X>.stride, as: X.self))
            let y = Double(right.loadUnaligned(fromByteOffset: index * MemoryLayout<Y>.stride, as: Y.self))
            if x == y { continue }
            result.include(x, 0, y, 0, tolerance)
        }
    }

    /// Real and imaginary parts; integers beyond 2⁵³ are rounded to the nearest Double.
    private static func parts(_ element: ConversionElement) -> (Double, Double) {
        switch element {
        case .signed(let value): return (Double(value), 0)
        case .unsigned(let value): return (Double(value), 0)
        case .real(let value): return (value, 0)
        case .complex(let real, let imaginary): return (real, imaginary)
        }
    }
}

extension StateDiff.TensorComparison {
    /// Adds one pair `a = x + xi·i`, `b = y + yi·i` with torch.isclose's rule.
    fileprivate mutating func include(_ x: Double, _ xi: Double, _ y: Double, _ yi: Double, _ tolerance: StateDiff.Tolerance) {
        let aIsNaN = x.isNaN || xi.isNaN
        let bIsNaN = y.isNaN || yi.isNaN
        if aIsNaN || bIsNaN {
            if !(aIsNaN && bIsNaN && tolerance.equalNaN) {
                nanMismatches += 1
                mismatchedElements += 1
            }
            return
        }
        if x == y && xi == yi { return }
        let difference = xi == 0 && yi == 0 ? abs(x - y) : hypot(x - y, xi - yi)
        let magnitude = yi == 0 ? abs(y) : hypot(y, yi)
        // An infinity on either side that is not equal to the other side gives an infinite or NaN
        // difference: never close, and reported as an infinite difference.
        let isInfinite = x.isInfinite || xi.isInfinite || y.isInfinite || yi.isInfinite
        let absolute = isInfinite ? Double.infinity : difference
        let relative = isInfinite ? Double.infinity : (magnitude == 0 ? Double.infinity : difference / magnitude)
        maxAbsoluteDifference = max(maxAbsoluteDifference, absolute)
        maxRelativeDifference = max(maxRelativeDifference, relative)
        if isInfinite || !(difference <= tolerance.absolute + tolerance.relative * magnitude) { mismatchedElements += 1 }
    }
}

extension Tensor {
    /// Calls `body` with the logical elements packed row-major: the storage itself for a contiguous
    /// tensor, a gathered copy for a strided view.
    func withPackedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if isContiguous {
            let start = storageOffset * dtype.itemSize
            return try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<start + byteCount])) }
        }
        return try contiguousBytes().withUnsafeBytes(body)
    }
}
