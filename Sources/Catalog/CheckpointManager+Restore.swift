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

/// What ``CheckpointManager/searchVerified(bestBy:mode:)`` found.
public struct VerifiedSearch: Sendable {
    /// The checkpoint that verified, or nil when none did.
    public var found: CheckpointEntry?
    /// The candidates passed over before it (every candidate when none verified), most preferred first.
    public var skipped: [SkippedCheckpoint]
    /// How many candidates were looked at: all of them when none verified (0: there were none).
    public var candidates: Int
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
        try firstVerified(newestFirst(step: step), keepState: true, step: step).map {
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
        try firstVerified(bestFirst(metric: metric, mode: mode), keepState: true).map { RestoredCheckpoint(entry: $0.0, state: $0.1!, skipped: $0.2) }
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
        let search = try searchVerified(bestBy: metric, mode: mode)
        if let found = search.found { return VerifiedCheckpoint(entry: found, skipped: search.skipped) }
        try requireOnlyUncommitted(search.skipped, candidates: search.candidates, required: false)
        return nil
    }

    /// Looks for the newest (or best) checkpoint whose file loads and verifies, and reports every
    /// checkpoint passed over whatever the outcome: what `ckpt-tool latest` prints, with its
    /// report of the skipped ones on stderr.
    ///
    /// Candidates are read from the catalog a few at a time and only those up to the first that
    /// verifies are opened: with a whole newest checkpoint, the cost does not grow with the
    /// catalog. Nothing is changed.
    ///
    /// - Parameters:
    ///   - metric: Rank by this metric instead of by step.
    ///   - mode: Whether smaller or larger is better; nil takes the retention policy's.
    /// - Returns: The checkpoint that verified, if any, and those passed over.
    /// - Throws: ``CatalogError`` if the catalog cannot be read.
    public func searchVerified(bestBy metric: String? = nil, mode: MetricMode? = nil) throws -> VerifiedSearch {
        let walk = try walk(metric == nil ? newestFirst(step: nil) : bestFirst(metric: metric, mode: mode), keepState: false)
        return VerifiedSearch(found: walk.found, skipped: walk.skipped, candidates: walk.examined)
    }

    /// Reads candidates a page at a time, in order of preference: `(offset, limit)` → entries.
    private typealias CandidatePages = (_ offset: Int, _ limit: Int) throws -> [CheckpointEntry]

    /// The run's checkpoints (or its one step), newest first.
    private func newestFirst(step: Int?) -> CandidatePages {
        { offset, limit in
            try self.rows(
                where: step == nil ? "1" : "c.step = ?", step.map { [.integer(Int64($0))] } ?? [],
                orderBy: "c.step DESC LIMIT \(limit) OFFSET \(offset)"
            ).map(\.entry)
        }
    }

    /// The run's committed checkpoints that have a metric, best first.
    private func bestFirst(metric: String?, mode: MetricMode?) -> CandidatePages {
        { offset, limit in try self.bestRows(metric: metric, mode: mode, limit: limit, offset: offset).map(\.entry) }
    }

    /// Walks candidates in order of preference and returns the first that is committed and
    /// verifies, or throws when none does.
    ///
    /// - Parameter step: The step asked for by number, if any: no row for it is `.notFound`, and
    ///   only uncommitted saves of it throw rather than return nil.
    private func firstVerified(
        _ pages: CandidatePages, keepState: Bool, step: Int? = nil
    ) throws -> (CheckpointEntry, StateValue?, [SkippedCheckpoint])? {
        let walk = try walk(pages, keepState: keepState)
        if let found = walk.found { return (found, walk.state, walk.skipped) }
        if let step, walk.examined == 0 {
            throw CatalogError(.notFound, "the run \"\(run)\" has no checkpoint at this step", file: directory.path, step: step)
        }
        try requireOnlyUncommitted(walk.skipped, candidates: walk.examined, required: step != nil)
        return nil
    }

    /// What ``walk(_:keepState:)`` found.
    private struct Walk {
        /// The first candidate that is committed and verifies.
        var found: CheckpointEntry?
        /// Its state, when kept.
        var state: StateValue?
        /// The candidates passed over before it.
        var skipped: [SkippedCheckpoint] = []
        /// The candidates looked at: all of them when none verifies.
        var examined = 0
    }

    /// Walks candidates in order of preference up to the first that is committed and verifies,
    /// reading them a page at a time (8, then 64, ... up to 4,096). A save or prune committed
    /// between two pages may shift the second, so that a candidate is looked at twice or not at
    /// all; that matters only when every candidate before it failed, and a new save is newer still.
    private func walk(_ pages: CandidatePages, keepState: Bool) throws -> Walk {
        var walk = Walk()
        var limit = 8
        while true {
            let page = try pages(walk.examined, limit)
            for entry in page {
                walk.examined += 1
                switch Self.check(entry) {
                case .skipped(let skipped):
                    walk.skipped.append(skipped)
                case .verified(let state):
                    walk.found = entry
                    walk.state = keepState ? state : nil
                    return walk
                }
            }
            guard page.count == limit else { return walk }
            limit = min(limit * 8, 4096)
        }
    }

    /// What ``check(_:)`` found about a candidate.
    private enum Check {
        /// Committed, the file recorded, loads and verifies.
        case verified(StateValue)
        /// Cannot be restored, and why.
        case skipped(SkippedCheckpoint)
    }

    /// Whether a candidate can be restored: committed, and its file is the one recorded, loads
    /// and verifies.
    private static func check(_ entry: CheckpointEntry) -> Check {
        switch entry.status {
        case .writing: return .skipped(SkippedCheckpoint(entry: entry, reason: .writing))
        case .deleting: return .skipped(SkippedCheckpoint(entry: entry, reason: .deleting))
        case .corrupt: return .skipped(SkippedCheckpoint(entry: entry, reason: .corrupt))
        case .committed: break
        }
        guard FileManager.default.fileExists(atPath: entry.url.path) else {
            return .skipped(SkippedCheckpoint(
                entry: entry, reason: .missing, error: CatalogError(.checkpoint, "the file is missing", file: entry.url.path, step: entry.step)))
        }
        do {
            let info = try CheckpointFileInfo.read(entry.url)
            guard info.step == entry.step, entry.manifestCRC32 == nil || info.manifestCRC32 == entry.manifestCRC32 else {
                throw CatalogError(
                    .checkpoint, "the file is not the one the catalog recorded (step \(info.step), manifest CRC-32 \(info.manifestCRC32))",
                    file: entry.url.path, step: entry.step)
            }
            return .verified(try CheckpointFileInfo.loadVerified(entry.url))
        } catch {
            return .skipped(SkippedCheckpoint(
                entry: entry, reason: .corrupt,
                error: error as? CatalogError ?? CatalogError(
                    .checkpoint, "the checkpoint cannot be read", file: entry.url.path, step: entry.step, cause: CheckpointFileInfo.sendable(error))))
        }
    }

    /// Returns when every candidate passed over is a save that never committed or is being
    /// deleted (as for a fresh run), unless `required`; otherwise throws `.noValidCheckpoint`
    /// listing each and why.
    private func requireOnlyUncommitted(_ skipped: [SkippedCheckpoint], candidates: Int, required: Bool) throws {
        if !required, skipped.allSatisfy({ $0.reason == .writing || $0.reason == .deleting }) { return }
        throw CatalogError(
            .noValidCheckpoint,
            "none of the \(Plural.count(candidates, "checkpoint")) of run \"\(run)\" loads and verifies:\n  " + skipped.map(\.description).joined(separator: "\n  "),
            file: directory.path, remedy: "run reconcile to update the catalog, or restore a specific step")
    }
}
