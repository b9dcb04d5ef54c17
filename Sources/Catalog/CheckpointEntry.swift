import Foundation

/// Where a checkpoint is in its life, as the catalog records it.
///
/// A save inserts its row as ``writing``, makes the file durable, then marks it ``committed``;
/// pruning marks ``deleting``, unlinks the file, then deletes the row. Only ``committed``
/// checkpoints are ever reported as latest or best, or restored.
public enum CheckpointStatus: String, Sendable, CaseIterable, CustomStringConvertible {
    /// A save has started and not yet committed (or crashed; ``CheckpointManager/reconcile(verify:)`` decides).
    case writing
    /// The file is whole and durable.
    case committed
    /// Pruning has started deleting the file.
    case deleting
    /// The file exists but does not verify (found by reconcile); kept for inspection.
    case corrupt

    public var description: String { rawValue }
}

/// One checkpoint as the catalog records it: what `ckpt-tool ls` lists.
public struct CheckpointEntry: Sendable, Hashable {
    /// The run it belongs to.
    public var run: String
    /// The training step.
    public var step: Int
    /// The run directory.
    public var directory: URL
    /// The file relative to the run directory (`checkpoints/main/step-000000100.ckpt`).
    public var relativePath: String
    /// The file, absolute.
    public var url: URL { directory.appendingPathComponent(relativePath) }
    /// Where the checkpoint is in its life.
    public var status: CheckpointStatus
    /// The file's size in bytes, once committed.
    public var bytes: Int?
    /// The CRC-32 of the file's `manifest.json` (the zip header's), once committed: a cheap
    /// fingerprint that changes when the file is replaced.
    public var manifestCRC32: UInt32?
    /// When the save started.
    public var created: Date
    /// When the row was committed.
    public var committed: Date?
    /// The metrics saved with the checkpoint, and any recorded later (``CheckpointManager/recordMetrics(step:metrics:)``).
    /// NaN is kept.
    public var metrics: [String: Double]

    /// Creates an entry (the catalog creates them; tests and tools may too).
    ///
    /// - Parameters:
    ///   - run: The run.
    ///   - step: The training step.
    ///   - directory: The run directory.
    ///   - relativePath: The file relative to the run directory.
    ///   - status: Where the checkpoint is in its life.
    ///   - bytes: The file's size.
    ///   - manifestCRC32: The CRC-32 of the file's manifest.
    ///   - created: When the save started.
    ///   - committed: When the row was committed.
    ///   - metrics: The metrics.
    public init(
        run: String, step: Int, directory: URL, relativePath: String, status: CheckpointStatus, bytes: Int?,
        manifestCRC32: UInt32?, created: Date, committed: Date?, metrics: [String: Double]
    ) {
        self.run = run
        self.step = step
        self.directory = directory
        self.relativePath = relativePath
        self.status = status
        self.bytes = bytes
        self.manifestCRC32 = manifestCRC32
        self.created = created
        self.committed = committed
        self.metrics = metrics
    }
}

/// One run recorded in a catalog: what `ckpt-tool runs` lists.
public struct RunInfo: Sendable, Hashable {
    /// The run's name (a directory name under `checkpoints/`).
    public var name: String
    /// When the run was first recorded.
    public var created: Date
    /// Checkpoints per status.
    public var counts: [CheckpointStatus: Int]
    /// The newest committed step, if any.
    public var latestStep: Int?
    /// Bytes of all committed checkpoints.
    public var committedBytes: Int

    /// Creates a run summary.
    ///
    /// - Parameters:
    ///   - name: The run's name.
    ///   - created: When it was first recorded.
    ///   - counts: Checkpoints per status.
    ///   - latestStep: The newest committed step.
    ///   - committedBytes: Bytes of all committed checkpoints.
    public init(name: String, created: Date, counts: [CheckpointStatus: Int], latestStep: Int?, committedBytes: Int) {
        self.name = name
        self.created = created
        self.counts = counts
        self.latestStep = latestStep
        self.committedBytes = committedBytes
    }
}

/// Whether a smaller or a larger value of a metric is better.
public enum MetricMode: String, Sendable, CaseIterable {
    /// Smaller is better (a loss).
    case min
    /// Larger is better (an accuracy).
    case max
}
