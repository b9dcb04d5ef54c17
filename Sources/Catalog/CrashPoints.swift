import Foundation

/// The steps of a save and a prune between which a crash leaves a distinct state on disk. The
/// crash tests stop a process at each of them (as well as at random times) and check that
/// reconcile repairs what it finds.
package enum CrashPoint: String, CaseIterable, Sendable {
    /// An async save's background work begins: its snapshot is not copied yet, nothing is written.
    case asyncSaveStarted
    /// The `writing` row is committed; the file is not written yet.
    case rowInserted
    /// The file is durable under its final name; the row still says `writing`.
    case fileWritten
    /// The row says `committed`.
    case rowCommitted
    /// Rows to prune say `deleting`; their files still exist.
    case rowsMarkedDeleting
    /// One pruned file is unlinked.
    case fileUnlinked
    /// The pruned rows are deleted.
    case rowsDeleted
}

/// A hook the crash tests set in a helper process: called at each ``CrashPoint`` with the run
/// directory (it may kill the process, or block to hold a save in flight). Unset in normal use.
package enum CrashHooks {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var handler: (@Sendable (CrashPoint, URL) -> Void)?

    /// Sets or clears the hook.
    package static func set(_ hook: (@Sendable (CrashPoint, URL) -> Void)?) {
        lock.withLock { handler = hook }
    }

    static func reach(_ point: CrashPoint, _ directory: URL) {
        let hook = lock.withLock { handler }
        hook?(point, directory)
    }
}
