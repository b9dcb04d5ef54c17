import Checkpoint
import CheckpointTools

/// The `--json` document of `ckpt-tool diff` (schema `ckpt-tool/diff`, version 2; see docs/CLI.md).
struct DiffDocument: Encodable {
    struct Tolerance: Encodable {
        let rtol: Double
        let atol: Double
        let equalNaN: Bool

        enum CodingKeys: String, CodingKey {
            case rtol, atol, equalNaN = "equal_nan"
        }
    }

    /// One difference; `a` and `b` are short descriptions, null where the value is absent.
    struct Difference: Encodable {
        let kind: String
        let path: String
        let keyPath: [StateKeyJSON]
        @Nullable var a: String?
        @Nullable var b: String?

        enum CodingKeys: String, CodingKey {
            case kind, path, keyPath = "key_path", a, b
        }
    }

    /// One pair of same-shaped tensors compared element by element.
    struct TensorEntry: Encodable {
        let path: String
        let keyPath: [StateKeyJSON]
        let elements: Int
        let maxAbsDiff: Double
        let maxRelDiff: Double
        let mismatched: Int
        let nanMismatches: Int
        let close: Bool

        enum CodingKeys: String, CodingKey {
            case path, keyPath = "key_path", elements, maxAbsDiff = "max_abs_diff", maxRelDiff = "max_rel_diff", mismatched
            case nanMismatches = "nan_mismatches", close
        }
    }

    let schema = "ckpt-tool/diff"
    let schemaVersion = 2
    let a: String
    let b: String
    let equal: Bool
    let tolerance: Tolerance
    /// What the comparison left out: `dtype`, `container_types`.
    let ignored: [String]
    let differences: [Difference]
    let tensors: [TensorEntry]

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", a, b, equal, tolerance, ignored, differences, tensors
    }

    init(_ diff: StateDiff, a: String, b: String) {
        self.a = a
        self.b = b
        equal = diff.isEqual
        tolerance = Tolerance(rtol: diff.tolerance.relative, atol: diff.tolerance.absolute, equalNaN: diff.tolerance.equalNaN)
        ignored = [(StateDiff.Ignored.dtype, "dtype"), (.containerTypes, "container_types")].filter { diff.ignored.contains($0.0) }.map(\.1)
        differences = diff.differences.map {
            Difference(kind: $0.kind.rawValue, path: $0.path.pathString, keyPath: StateKeyJSON.path($0.path), a: $0.old, b: $0.new)
        }
        tensors = diff.tensorComparisons.map {
            TensorEntry(
                path: $0.path.pathString, keyPath: StateKeyJSON.path($0.path), elements: $0.elementCount,
                maxAbsDiff: $0.maxAbsoluteDifference, maxRelDiff: $0.maxRelativeDifference, mismatched: $0.mismatchedElements,
                nanMismatches: $0.nanMismatches, close: $0.isClose)
        }
    }
}
