/// Which committed checkpoints to keep: the union of the newest ``keepLast``, the ``keepBest``
/// best by ``metric``, every step that is a multiple of ``keepEvery``, and (when keeping the
/// best) those without the metric if ``keepCheckpointsWithoutMetrics``. A policy with none of
/// the three set keeps everything.
///
/// Checkpoints are ordered by their step number, never by file name or modification time.
/// Only committed checkpoints are considered: one being written, deleted, or found corrupt is
/// neither kept nor deleted by a policy.
public struct RetentionPolicy: Sendable, Equatable {
    /// Keep the N newest (by step), or nil for no limit from this rule. At least 1.
    public var keepLast: Int?
    /// Keep the K best by ``metric``, or nil. At least 1; needs ``metric``.
    public var keepBest: Int?
    /// The metric ``keepBest`` ranks by.
    public var metric: String?
    /// Whether smaller or larger values of ``metric`` are better.
    public var mode: MetricMode
    /// Keep every checkpoint whose step is a multiple of M, or nil. At least 1.
    public var keepEvery: Int?
    /// With ``keepBest``: keep checkpoints that have no value for ``metric`` (true, the default),
    /// or let them go unless another rule keeps them. A NaN value counts as a value, the worst.
    public var keepCheckpointsWithoutMetrics: Bool

    /// Creates a policy.
    ///
    /// - Parameters:
    ///   - keepLast: Keep the N newest.
    ///   - keepBest: Keep the K best by `metric`.
    ///   - metric: The metric to rank by.
    ///   - mode: `.min` when smaller is better.
    ///   - keepEvery: Keep steps that are multiples of M.
    ///   - keepCheckpointsWithoutMetrics: With `keepBest`, keep checkpoints lacking the metric.
    public init(
        keepLast: Int? = nil, keepBest: Int? = nil, metric: String? = nil, mode: MetricMode = .min, keepEvery: Int? = nil,
        keepCheckpointsWithoutMetrics: Bool = true
    ) {
        self.keepLast = keepLast
        self.keepBest = keepBest
        self.metric = metric
        self.mode = mode
        self.keepEvery = keepEvery
        self.keepCheckpointsWithoutMetrics = keepCheckpointsWithoutMetrics
    }

    /// Keeps every checkpoint.
    public static let keepAll = RetentionPolicy()

    /// True when some rule limits what is kept.
    public var prunes: Bool { keepLast != nil || keepBest != nil || keepEvery != nil }

    /// Checks the numbers and that ``keepBest`` names a metric.
    ///
    /// - Throws: ``CatalogError`` `.invalidArgument` naming the bad setting.
    public func validate() throws {
        for (name, value) in [("keepLast", keepLast), ("keepBest", keepBest), ("keepEvery", keepEvery)] {
            if let value, value < 1 {
                throw CatalogError(.invalidArgument, "retention \(name) must be at least 1 (found \(value)); leave it nil for no limit")
            }
        }
        if keepBest != nil, metric?.isEmpty ?? true {
            throw CatalogError(.invalidArgument, "retention keepBest needs a metric to rank by")
        }
    }

    /// Decides which of `entries` to keep and which to delete, without touching anything.
    ///
    /// - Parameter entries: Checkpoints of one run; only committed ones are considered.
    /// - Returns: The kept ones (newest first) with the rules that keep each, and the ones to
    ///   delete (newest first).
    public func plan(_ entries: [CheckpointEntry]) -> PrunePlan {
        let committed = entries.filter { $0.status == .committed }.sorted { $0.step > $1.step }
        guard prunes else {
            return PrunePlan(kept: committed.map { KeptCheckpoint(entry: $0, reasons: .policyKeepsAll) }, deleted: [])
        }
        var reasons = [KeptCheckpoint.Reasons](repeating: [], count: committed.count)
        if let keepLast {
            for index in committed.indices.prefix(keepLast) { reasons[index].insert(.last) }
        }
        if let keepEvery {
            for (index, entry) in committed.enumerated() where entry.step % keepEvery == 0 { reasons[index].insert(.every) }
        }
        if let keepBest, let metric {
            var ranked: [(index: Int, value: Double)] = []
            for (index, entry) in committed.enumerated() {
                if let value = entry.metrics[metric] {
                    ranked.append((index, value))
                } else if keepCheckpointsWithoutMetrics {
                    reasons[index].insert(.withoutMetric)
                }
            }
            // Best first; NaN last; among equal values the newer step (smaller index) first.
            ranked.sort { a, b in
                if a.value.isNaN != b.value.isNaN { return !a.value.isNaN }
                if a.value != b.value, !a.value.isNaN { return mode == .min ? a.value < b.value : a.value > b.value }
                return a.index < b.index
            }
            for item in ranked.prefix(keepBest) { reasons[item.index].insert(.best) }
        }
        var plan = PrunePlan(kept: [], deleted: [])
        for (index, entry) in committed.enumerated() {
            if reasons[index].isEmpty {
                plan.deleted.append(entry)
            } else {
                plan.kept.append(KeptCheckpoint(entry: entry, reasons: reasons[index]))
            }
        }
        return plan
    }
}

/// A checkpoint a retention policy keeps, and why.
public struct KeptCheckpoint: Sendable, Hashable {
    /// Which rules keep a checkpoint.
    public struct Reasons: OptionSet, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Among the newest `keepLast`.
        public static let last = Reasons(rawValue: 1)
        /// Among the `keepBest` best by the metric.
        public static let best = Reasons(rawValue: 2)
        /// Its step is a multiple of `keepEvery`.
        public static let every = Reasons(rawValue: 4)
        /// It has no value for the metric, and the policy keeps those.
        public static let withoutMetric = Reasons(rawValue: 8)
        /// The policy sets no limit.
        public static let policyKeepsAll = Reasons(rawValue: 16)

        /// `last,best`.
        public var description: String {
            let names: [(Reasons, String)] = [(.last, "last"), (.best, "best"), (.every, "every"), (.withoutMetric, "without-metric"), (.policyKeepsAll, "all")]
            return names.filter { contains($0.0) }.map(\.1).joined(separator: ",")
        }
    }

    /// The checkpoint.
    public var entry: CheckpointEntry
    /// The rules that keep it (never empty).
    public var reasons: Reasons
}

/// What a retention policy keeps and deletes among one run's committed checkpoints.
public struct PrunePlan: Sendable, Hashable {
    /// Kept, newest first, each with its reasons.
    public var kept: [KeptCheckpoint]
    /// To delete (or deleted), newest first.
    public var deleted: [CheckpointEntry]
}

/// The result of ``CheckpointManager/prune(policy:dryRun:)``.
public struct PruneReport: Sendable {
    /// What the policy decided.
    public var plan: PrunePlan
    /// True when nothing was deleted because the caller asked only for the plan.
    public var dryRun: Bool
}
