import Checkpoint
import CheckpointTools

/// The `--json` document of `ckpt-tool stats` (schema `ckpt-tool/stats`, version 1; see docs/CLI.md).
struct StatsDocument: Encodable {
    /// One tensor's statistics; a nil value is undefined for the tensor (see docs/CLI.md).
    struct TensorEntry: Encodable {
        let path: String
        let keyPath: [StateKeyJSON]
        let dtype: String
        let shape: [Int]
        let count: Int
        @Nullable var min: Double?
        @Nullable var max: Double?
        @Nullable var mean: Double?
        @Nullable var std: Double?
        let l2Norm: Double
        let zeros: Int
        let nans: Int
        let infs: Int

        enum CodingKeys: String, CodingKey {
            case path, keyPath = "key_path", dtype, shape, count, min, max, mean, std, l2Norm = "l2_norm", zeros, nans, infs
        }

        init(_ row: StatsRow) {
            let s = row.statistics
            path = row.path.pathString
            keyPath = StateKeyJSON.path(row.path)
            dtype = row.tensor.dtype.rawValue
            shape = row.tensor.shape
            count = s.count
            min = s.minimum
            max = s.maximum
            mean = s.mean
            std = s.standardDeviation
            l2Norm = s.l2Norm
            zeros = s.zeroCount
            nans = s.nanCount
            infs = s.infinityCount
        }
    }

    /// Sums over the listed tensors.
    struct Totals: Encodable {
        let tensors: Int
        let elements: Int
        let bytes: Int
        let zeros: Int
        let nans: Int
        let infs: Int
    }

    let schema = "ckpt-tool/stats"
    let schemaVersion = 1
    let file: String
    @Nullable var pattern: String?
    let tensors: [TensorEntry]
    let totals: Totals

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", file, pattern, tensors, totals
    }

    init(_ rows: [StatsRow], file: String, pattern: String?) {
        self.file = file
        self.pattern = pattern
        tensors = rows.map(TensorEntry.init)
        totals = Totals(
            tensors: rows.count,
            elements: StatsRow.saturatingSum(rows.map(\.statistics.count)),
            bytes: StatsRow.saturatingSum(rows.map { $0.tensor.byteCount }),
            zeros: StatsRow.saturatingSum(rows.map(\.statistics.zeroCount)),
            nans: StatsRow.saturatingSum(rows.map(\.statistics.nanCount)),
            infs: StatsRow.saturatingSum(rows.map(\.statistics.infinityCount)))
    }
}
