import Checkpoint
import Foundation

/// A checkpoint passed over while looking for one to restore, and why.
public struct SkippedCheckpoint: Sendable, CustomStringConvertible {
    /// Why a checkpoint was passed over.
    public enum Reason: String, Sendable {
        /// Its file does not exist.
        case missing
        /// Its file does not load or verify, or is not the file the catalog recorded.
        case corrupt
        /// Its save has not committed (in flight, or its process died).
        case writing
        /// Pruning is deleting it.
        case deleting
    }

    /// The checkpoint passed over.
    public var entry: CheckpointEntry
    /// Why.
    public var reason: Reason
    /// What failed, for `missing` and `corrupt`.
    public var error: CatalogError?

    /// `step 300 (checkpoints/main/step-000000300.ckpt): corrupt: ...`
    public var description: String {
        "step \(entry.step) (\(entry.relativePath)): \(reason.rawValue)" + (error.map { ": \($0)" } ?? "")
    }
}

/// A checkpoint that loaded and verified, with its state.
public struct RestoredCheckpoint: Sendable {
    /// The catalog's record of it.
    public var entry: CheckpointEntry
    /// The loaded tree, every blob's CRC-32 already checked.
    public var state: StateValue
    /// Checkpoints preferred over this one that were passed over, most preferred first.
    public var skipped: [SkippedCheckpoint]
}

/// A checkpoint whose file verified, without its state kept: what `ckpt-tool latest` prints.
public struct VerifiedCheckpoint: Sendable {
    /// The checkpoint that verified.
    public var entry: CheckpointEntry
    /// Checkpoints preferred over this one that were passed over, most preferred first.
    public var skipped: [SkippedCheckpoint]
}

extension CheckpointManager {
    /// Loads the checkpoint to resume from: the newest (or the given step) that loads and whose
    /// every blob verifies against its CRC-32.
    ///
    /// Newer checkpoints that cannot be used are passed over and reported in
    /// ``RestoredCheckpoint/skipped``: one still being written (or whose save crashed before
    /// committing), one being deleted, one whose file is missing, and one whose file is corrupt
    /// or is not the file the catalog recorded. The catalog is not changed; ``reconcile(verify:)``
    /// repairs it.
    ///
    /// - Parameter step: A step to restore exactly; nil for the newest that verifies.
    /// - Returns: The checkpoint, or nil when the run has no checkpoint that ever committed (a
    ///   fresh run, or one whose only save has not committed).
    /// - Throws: ``CatalogError`` `.noValidCheckpoint` when checkpoints exist but none verifies
    ///   (the message lists each and why); for a given `step`, `.notFound` when the catalog has
    ///   no such step, and `.noValidCheckpoint` saying why when it cannot be used (including a
    ///   save of it that has not committed).
    public func restore(step: Int? = nil) throws -> RestoredCheckpoint? {
        let candidates = try rows(where: step == nil ? "1" : "c.step = ?", step.map { [.integer(Int64($0))] } ?? [], orderBy: "c.step DESC")
        if let step, candidates.isEmpty {
            throw CatalogError(.notFound, "the run \"\(run)\" has no checkpoint at this step", file: directory.path, step: step)
        }
        return try firstVerified(candidates.map(\.entry), keepState: true, required: step != nil).map {
            RestoredCheckpoint(entry: $0.0, state: $0.1!, skipped: $0.2)
        }
    }

    /// Loads the committed checkpoint with the best value of a metric that loads and verifies.
    ///
    /// - Parameters:
    ///   - metric: The metric; nil takes the retention policy's.
    ///   - mode: Whether smaller or larger is better; nil takes the retention policy's.
    /// - Returns: The checkpoint, or nil when no committed checkpoint has the metric.
    /// - Throws: ``CatalogError`` `.noValidCheckpoint` when some have it but none verifies.
    public func restore(bestBy metric: String?, mode: MetricMode? = nil) throws -> RestoredCheckpoint? {
        let candidates = try bestRows(metric: metric, mode: mode, limit: nil)
        return try firstVerified(candidates.map(\.entry), keepState: true).map { RestoredCheckpoint(entry: $0.0, state: $0.1!, skipped: $0.2) }
    }

    /// Finds the newest (or best) checkpoint whose file loads and verifies, without keeping its
    /// state: what `ckpt-tool latest` prints.
    ///
    /// - Parameters:
    ///   - metric: Rank by this metric instead of by step.
    ///   - mode: Whether smaller or larger is better; nil takes the retention policy's.
    /// - Returns: The checkpoint and those passed over, or nil when there are no candidates.
    /// - Throws: ``CatalogError`` `.noValidCheckpoint` when candidates exist but none verifies.
    public func latestVerified(bestBy metric: String? = nil, mode: MetricMode? = nil) throws -> VerifiedCheckpoint? {
        let candidates = metric == nil ? try rows(orderBy: "c.step DESC") : try bestRows(metric: metric, mode: mode, limit: nil)
        return try firstVerified(candidates.map(\.entry), keepState: false).map { VerifiedCheckpoint(entry: $0.0, skipped: $0.2) }
    }

    /// Walks candidates in order of preference and returns the first that is committed and verifies.
    ///
    /// - Parameter required: Throw rather than return nil when only uncommitted saves were found
    ///   (a step asked for by number).
    private func firstVerified(
        _ candidates: [CheckpointEntry], keepState: Bool, required: Bool = false
    ) throws -> (CheckpointEntry, StateValue?, [SkippedCheckpoint])? {
        guard !candidates.isEmpty else { return nil }
        var skipped: [SkippedCheckpoint] = []
        for entry in candidates {
            switch entry.status {
            case .writing: skipped.append(SkippedCheckpoint(entry: entry, reason: .writing))
            case .deleting: skipped.append(SkippedCheckpoint(entry: entry, reason: .deleting))
            case .corrupt: skipped.append(SkippedCheckpoint(entry: entry, reason: .corrupt))
            case .committed:
                guard FileManager.default.fileExists(atPath: entry.url.path) else {
                    skipped.append(SkippedCheckpoint(
                        entry: entry, reason: .missing, error: CatalogError(.checkpoint, "the file is missing", file: entry.url.path, step: entry.step)))
                    continue
                }
                do {
                    let info = try CheckpointFileInfo.read(entry.url)
                    guard info.step == entry.step, entry.manifestCRC32 == nil || info.manifestCRC32 == entry.manifestCRC32 else {
                        throw CatalogError(
                            .checkpoint, "the file is not the one the catalog recorded (step \(info.step), manifest CRC-32 \(info.manifestCRC32))",
                            file: entry.url.path, step: entry.step)
                    }
                    let state = try CheckpointFileInfo.loadVerified(entry.url)
                    return (entry, keepState ? state : nil, skipped)
                } catch let error as CatalogError {
                    skipped.append(SkippedCheckpoint(entry: entry, reason: .corrupt, error: error))
                }
            }
        }
        // Only saves that never committed (or are being deleted): as for a fresh run.
        if !required, skipped.allSatisfy({ $0.reason == .writing || $0.reason == .deleting }) { return nil }
        throw CatalogError(
            .noValidCheckpoint,
            "none of the \(candidates.count) checkpoints of run \"\(run)\" loads and verifies:\n  " + skipped.map(\.description).joined(separator: "\n  "),
            file: directory.path, remedy: "run reconcile to update the catalog, or restore a specific step")
    }
}
