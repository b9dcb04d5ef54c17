import Checkpoint
import Foundation

/// The differences between two state trees: structural ones (keys added or removed, a value whose
/// type, dtype or shape changed, a scalar or hyperparameter that changed) and numeric ones (per
/// tensor, the largest absolute and relative difference and whether every element is close).
///
/// Dict items are matched by key, list, tuple and set elements by position, OrderedDict attributes
/// by name, the parts of two placeholders of one global (``PickledObject``) by part name.
/// Non-tensor values (hyperparameters, epochs, strings) must be exactly equal (a float NaN equals a
/// NaN of the same bits). Tensors of the same shape are compared element by element with
/// `torch.allclose`'s rule (see ``Tolerance``), also when their dtypes differ, so a cast can be
/// judged: the dtype change is reported too unless ``Ignored/dtype`` is given.
///
/// Tensor data is read in chunks on every core, straight from the mapped files, and each chunk's
/// pages are released once compared, so memory use stays a few megabytes per core whatever the
/// files' sizes. A stored blob's CRC-32 is computed from the same chunks as they are compared (no
/// separate pass), and a mismatch is thrown before any result is returned.
public struct StateDiff: Sendable {
    /// `torch.isclose`'s test: `|a - b| <= atol + rtol * |b|`, where `a` is from the first tree and `b`
    /// from the second, computed in float64 from the exactly decoded elements.
    ///
    /// Equal values are close (so `inf` is close to `inf` of the same sign); any other pair with an
    /// infinity is not. A NaN is close to a NaN of the same bits, so a tensor with a NaN is equal to
    /// itself, which `torch.allclose` denies. Across dtypes the bits are compared once widened to
    /// float64 (bfloat16 `0x7FC0` matches float32 `0x7FC00000`), but casts rewrite NaNs (torch's
    /// float32 → bfloat16 gives `0xFFFF`), so NaNs across a cast need ``equalNaN``. With
    /// ``equalNaN`` any NaN is close to any NaN (as `equal_nan=True`). A NaN is never close to a
    /// number. Complex elements use the modulus of the difference and of `b`.
    public struct Tolerance: Sendable, Equatable {
        /// `rtol`: the allowed difference per unit of `|b|`.
        public var relative: Double
        /// `atol`: the allowed difference near zero.
        public var absolute: Double
        /// `equal_nan`: any NaN is close to any NaN (not only to one of the same bits).
        public var equalNaN: Bool

        /// Creates a tolerance; the defaults are torch.allclose's (`rtol=1e-05, atol=1e-08, equal_nan=False`).
        ///
        /// - Parameters:
        ///   - relative: `rtol`.
        ///   - absolute: `atol`.
        ///   - equalNaN: Treat any NaN as close to any NaN.
        public init(relative: Double = 1e-5, absolute: Double = 1e-8, equalNaN: Bool = false) {
            self.relative = relative
            self.absolute = absolute
            self.equalNaN = equalNaN
        }
    }

    /// Differences a comparison leaves out.
    public struct Ignored: OptionSet, Sendable, Hashable {
        /// One bit per kind of difference left out.
        public let rawValue: Int
        /// The set with these bits.
        ///
        /// - Parameter rawValue: Bits of the static members.
        public init(rawValue: Int) { self.rawValue = rawValue }

        /// Tensor dtypes: tensors are compared by value alone, no ``Kind/dtype`` is reported.
        public static let dtype = Ignored(rawValue: 1 << 0)
        /// Container bookkeeping that a format change alters: `OrderedDict` against `dict` (no
        /// ``Kind/type``), and an OrderedDict's `_metadata` attribute (torch's per-module versions,
        /// which `state_dict()` carries and safetensors cannot) when only one side has it. When
        /// both sides have `_metadata` it is compared as usual.
        public static let containerTypes = Ignored(rawValue: 1 << 1)
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
        /// Floats print as the shortest text that reads back as the same value, so two different
        /// values never print alike (a NaN shows its payload: `nan(0x1)`).
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
        /// Positions where exactly one side is NaN, or both are and they do not count as equal.
        public var nanMismatches: Int
        /// True when every element is close.
        public var isClose: Bool { mismatchedElements == 0 }
    }

    /// The closeness test the tensors were compared with.
    public var tolerance: Tolerance
    /// The differences that were left out.
    public var ignored: Ignored
    /// Every difference, in the first tree's order (additions where the second tree has them).
    public var differences: [Difference]
    /// Every pair of same-shaped tensors compared, including the ones that are close.
    public var tensorComparisons: [TensorComparison]

    /// True when the trees have the same structure, equal non-tensor values and close tensors.
    public var isEqual: Bool { differences.isEmpty }

    /// Compares two trees.
    ///
    /// Filter the trees first to compare part of them (``StateValue/filtered(by:)``); only the
    /// tensors left are read.
    ///
    /// - Parameters:
    ///   - old: The first tree (`a` in the tolerance test).
    ///   - new: The second tree (`b`, whose magnitude scales the relative tolerance).
    ///   - tolerance: The closeness test for tensor elements.
    ///   - ignoring: Differences to leave out.
    ///   - comparesElements: False compares only structure and tensor metadata, reading no tensor data.
    ///   - progress: Called (from any thread) with the bytes of tensor data read so far and the
    ///     total to read: both sides of every pair compared, plus any blob whose CRC-32 must be
    ///     checked on its own first (one shared by several tensors).
    /// - Returns: The differences.
    /// - Throws: ``CheckpointError`` from reading tensor bytes (`.checksumMismatch` for damaged data).
    public static func compare(
        _ old: StateValue, _ new: StateValue, tolerance: Tolerance = Tolerance(), ignoring: Ignored = [],
        comparesElements: Bool = true, progress: (@Sendable (_ doneBytes: Int, _ totalBytes: Int) -> Void)? = nil
    ) throws -> StateDiff {
        var walker = Walker(ignored: ignoring, comparesElements: comparesElements)
        var path: [StateKey] = []
        walker.compare(old, new, path: &path)
        let results = try ClosenessPass.run(walker.pairs, tolerance: tolerance, progress: progress)
        var comparisons: [TensorComparison] = []
        let differences = walker.entries.map { entry -> Difference? in
            switch entry {
            case .difference(let difference):
                return difference
            case .elements(let index):
                let pair = walker.pairs[index]
                let comparison = results[index].comparison(path: pair.path, elementCount: pair.old.numel)
                comparisons.append(comparison)
                guard !comparison.isClose else { return nil }
                return Difference(
                    kind: .values, path: pair.path,
                    old: "\(comparison.mismatchedElements) of \(Plural.count(comparison.elementCount, "element")) not close",
                    new: "max abs diff \(NumberText.distinguishing(comparison.maxAbsoluteDifference, from: tolerance.absolute)), "
                        + "max rel diff \(NumberText.distinguishing(comparison.maxRelativeDifference, from: tolerance.relative))")
            }
        }
        return StateDiff(tolerance: tolerance, ignored: ignoring, differences: differences.compactMap { $0 }, tensorComparisons: comparisons)
    }

    /// A short description of a value for a difference: its type and, for scalars, its value.
    ///
    /// - Parameter value: Any tree value.
    /// - Returns: `float 0.1`, `str 'cpu'`, `Tensor float32 [3, 4]`, `dict (2 items)`.
    public static func describe(_ value: StateValue) -> String {
        let type = value.pythonTypeName
        switch value {
        case .dict(let dict): return "\(type) (\(Plural.count(dict.items.count, "item")))"
        case .list(let xs), .tuple(let xs), .set(let xs): return "\(type) (\(Plural.count(xs.count, "item")))"
        case .tensor(let tensor): return "\(type) \(tensor.dtype.rawValue) \(tensor.shape)"
        case .string(let text): return "\(type) \(text.debugDescription)"
        case .int(let integer): return "\(type) \(integer)"
        case .float(let number): return "\(type) \(number)"
        case .bool(let flag): return "\(type) \(flag ? "True" : "False")"
        case .none: return "None"
        case .bytes(let bytes), .bytearray(let bytes): return "\(type) (\(Plural.count(bytes.count, "byte")))"
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

/// One pair of same-shaped tensors whose elements are to be compared.
struct TensorPair {
    let path: [StateKey]
    let old: Tensor
    let new: Tensor
}

/// The recursive comparison behind ``StateDiff/compare(_:_:tolerance:ignoring:comparesElements:progress:)``:
/// structural differences now, element comparisons collected for ``ClosenessPass`` to run at once.
private struct Walker {
    /// A difference found, or the place of a pair's element comparison among them.
    enum Entry {
        case difference(StateDiff.Difference)
        case elements(pair: Int)
    }

    let ignored: StateDiff.Ignored
    let comparesElements: Bool
    var entries: [Entry] = []
    var pairs: [TensorPair] = []

    private mutating func record(_ kind: StateDiff.Kind, _ path: [StateKey], _ old: StateValue?, _ new: StateValue?) {
        entries.append(.difference(StateDiff.Difference(
            kind: kind, path: path, old: old.map(StateDiff.describe), new: new.map(StateDiff.describe))))
    }

    mutating func compare(_ old: StateValue, _ new: StateValue, path: inout [StateKey]) {
        switch (old, new) {
        case let (.dict(a), .dict(b)):
            let lenient = ignored.contains(.containerTypes)
            if (a.isOrderedDict != b.isOrderedDict && !lenient) || a.defaultFactory != b.defaultFactory { record(.type, path, old, new) }
            compareKeyed(
                a.items.elements.map { ($0.key, $0.value) }, b.items.elements.map { ($0.key, $0.value) }, path: &path)
            var oldAttributes = a.attributes.map { (StateKey.string($0.key), $0.value) }
            var newAttributes = b.attributes.map { (StateKey.string($0.key), $0.value) }
            if lenient, (a.attributes[Walker.metadata] == nil) != (b.attributes[Walker.metadata] == nil) {
                oldAttributes.removeAll { $0.0 == .string(Walker.metadata) }
                newAttributes.removeAll { $0.0 == .string(Walker.metadata) }
            }
            compareKeyed(oldAttributes, newAttributes, path: &path)
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)), let (.set(a), .set(b)):
            comparePositional(a, b, path: &path)
        case let (.tensor(a), .tensor(b)):
            // A numpy array and a torch tensor of the same values are different types.
            if old.pythonTypeName != new.pythonTypeName { record(.type, path, old, new) }
            compareTensors(a, b, path: path)
        case let (.record(a), .record(b)):
            if a.kind != b.kind { record(.type, path, old, new) }
            compareKeyed(
                a.attributes.map { (.string($0.key), $0.value) }, b.attributes.map { (.string($0.key), $0.value) }, path: &path)
        case let (.object(a), .object(b)):
            // Placeholders of the same global made the same way are compared part by part.
            if a.qualifiedName != b.qualifiedName || a.construction != b.construction { record(.type, path, old, new) }
            compareKeyed(
                a.parts.map { (.string($0.key), $0.value) }, b.parts.map { (.string($0.key), $0.value) }, path: &path)
        default:
            if old.pythonTypeName != new.pythonTypeName {
                record(.type, path, old, new)
                if case .list(let a) = old, case .tuple(let b) = new { comparePositional(a, b, path: &path) }
                if case .tuple(let a) = old, case .list(let b) = new { comparePositional(a, b, path: &path) }
            } else if old != new {
                record(.value, path, old, new)
            }
        }
    }

    /// The OrderedDict attribute `nn.Module.state_dict()` sets: `{prefix: {"version": n}}` per module.
    private static let metadata = "_metadata"

    private mutating func compareKeyed(_ old: [(StateKey, StateValue)], _ new: [(StateKey, StateValue)], path: inout [StateKey]) {
        var newByKey: [StateKey: StateValue] = [:]
        for (key, value) in new { newByKey[key] = value }
        var oldKeys = Set<StateKey>()
        for (key, value) in old {
            oldKeys.insert(key)
            path.append(key)
            if let other = newByKey[key] {
                compare(value, other, path: &path)
            } else {
                record(.removed, path, value, nil)
            }
            path.removeLast()
        }
        for (key, value) in new where !oldKeys.contains(key) {
            record(.added, path + [key], nil, value)
        }
    }

    private mutating func comparePositional(_ old: [StateValue], _ new: [StateValue], path: inout [StateKey]) {
        for index in 0..<max(old.count, new.count) {
            path.append(.int(Int64(index)))
            switch (index < old.count ? old[index] : nil, index < new.count ? new[index] : nil) {
            case let (a?, b?): compare(a, b, path: &path)
            case let (a?, nil): record(.removed, path, a, nil)
            case let (nil, b?): record(.added, path, nil, b)
            case (nil, nil): break
            }
            path.removeLast()
        }
    }

    private mutating func compareTensors(_ old: Tensor, _ new: Tensor, path: [StateKey]) {
        let oldValue = StateValue.tensor(old)
        let newValue = StateValue.tensor(new)
        if old.isParameter != new.isParameter { record(.type, path, oldValue, newValue) }
        if old.requiresGrad != new.requiresGrad {
            entries.append(.difference(StateDiff.Difference(
                kind: .requiresGrad, path: path, old: String(old.requiresGrad), new: String(new.requiresGrad))))
        }
        if old.dtype != new.dtype && !ignored.contains(.dtype) { record(.dtype, path, oldValue, newValue) }
        guard old.shape == new.shape else {
            record(.shape, path, oldValue, newValue)
            return
        }
        guard comparesElements else { return }
        entries.append(.elements(pair: pairs.count))
        pairs.append(TensorPair(path: path, old: old, new: new))
    }
}
