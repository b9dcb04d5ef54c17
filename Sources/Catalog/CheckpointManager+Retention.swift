import Checkpoint
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension CheckpointManager {
    /// Deletes the committed checkpoints a retention policy does not keep.
    ///
    /// The policy is applied inside one catalog write transaction, so a concurrent save cannot
    /// commit between deciding and marking. Each checkpoint to delete is marked `deleting`
    /// (committed), its file unlinked, the directory synced, then its row deleted: a crash
    /// between these steps leaves rows that ``reconcile(verify:)`` finishes deleting, and a
    /// `deleting` checkpoint is never restored.
    ///
    /// - Parameters:
    ///   - policy: The policy; nil applies ``Options/retention``.
    ///   - dryRun: Only compute the plan; change nothing.
    /// - Returns: What was kept (and why) and what was deleted.
    /// - Throws: ``CatalogError`` `.invalidArgument` for an invalid policy; `.io` when a file
    ///   cannot be unlinked (its row stays `deleting`); what the catalog reports.
    @discardableResult
    public func prune(policy: RetentionPolicy? = nil, dryRun: Bool = false) throws -> PruneReport {
        let policy = policy ?? options.retention
        try policy.validate()
        if dryRun {
            return PruneReport(plan: policy.plan(try rows(where: "c.status = 'committed'").map(\.entry)), dryRun: true)
        }
        let me = WriterIdentity.current.text
        let (plan, victims) = try store.write { db -> (PrunePlan, [CheckpointRow]) in
            let rows = try CatalogStore.rows(db, directory: directory, where: "r.name = ? AND c.status = 'committed'", [.text(run)])
            let plan = policy.plan(rows.map(\.entry))
            let doomed = Set(plan.deleted.map(\.step))
            let victims = rows.filter { doomed.contains($0.entry.step) }
            for victim in victims {
                try db.run(
                    "UPDATE checkpoints SET status = 'deleting', writer = ? WHERE id = ? AND status = 'committed'",
                    [.text(me), .integer(victim.id)])
            }
            return (plan, victims)
        }
        if !victims.isEmpty {
            CrashHooks.reach(.rowsMarkedDeleting, directory)
            try finishDeleting(victims)
        }
        return PruneReport(plan: plan, dryRun: false)
    }

    /// Unlinks the files of rows marked `deleting`, syncs their directories, and deletes the rows.
    ///
    /// Each file is opened before it is unlinked and closed on another thread once its directory
    /// is synced (``Checkpoint/DurableFile/release(_:)``): the last close is what frees a file's
    /// blocks, which takes 0.3 s per GiB on ext4 mounted with `discard`, a third of writing it.
    /// Freed inside the directory sync it would make that sync wait too; freed on the caller's
    /// thread it would add that to every save that prunes. A crash before the close leaves an
    /// unlinked inode that the file system frees when it mounts.
    ///
    /// - Throws: ``CatalogError`` `.io` for a file that cannot be unlinked (other than missing).
    func finishDeleting(_ rows: [CheckpointRow]) throws {
        var directories = Set<String>()
        var failure: CatalogError?
        var done: [Int64] = []
        var unlinked: [Int32] = []
        defer { for descriptor in unlinked { DurableFile.release(descriptor) } }
        for row in rows {
            let descriptor = open(row.entry.url.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            if unlink(row.entry.url.path) == 0 || errno == ENOENT {
                if descriptor >= 0 { unlinked.append(descriptor) }
                done.append(row.id)
                directories.insert(row.entry.url.deletingLastPathComponent().path)
                CrashHooks.reach(.fileUnlinked, directory)
            } else {
                let cause = errno
                if descriptor >= 0 { _ = Glibc.close(descriptor) }
                errno = cause
                failure = failure ?? CatalogError(
                    .io, "cannot delete the checkpoint: \(String(cString: strerror(errno)))", file: row.entry.url.path, step: row.entry.step)
            }
        }
        // The unlinks are made durable before the rows go, so after a power loss a file can
        // reappear only while its row still says `deleting`.
        if options.durable { for directory in directories { Self.syncDirectory(directory) } }
        if !done.isEmpty {
            try store.write { db in
                try db.run("DELETE FROM checkpoints WHERE status = 'deleting' AND id IN (\(done.map(String.init).joined(separator: ",")))")
            }
            CrashHooks.reach(.rowsDeleted, directory)
        }
        if let failure { throw failure }
    }

    static func syncDirectory(_ path: String) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        _ = Glibc.close(descriptor)
    }
}
