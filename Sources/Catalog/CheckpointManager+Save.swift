import Checkpoint
import Foundation

extension CheckpointManager {
    /// Saves a checkpoint atomically and durably, records it, and applies the retention policy.
    ///
    /// The order of operations makes a crash at any point recoverable: the row is inserted as
    /// `writing` (committed to the catalog); the file is written to a temporary name, fsynced and
    /// renamed into place (``Checkpoint/DurableFile``); the row is marked `committed`; then
    /// pruning runs (``prune(policy:dryRun:)``). Until the row is committed, ``latest()`` and
    /// ``restore(step:)`` never pick the checkpoint. Saving a step that already has a checkpoint
    /// replaces it.
    ///
    /// Waits for an async save in flight first, so saves commit in the order they were asked for.
    ///
    /// - Parameters:
    ///   - step: The training step (at least 0).
    ///   - state: The tree to save (`{"model": ..., "optimizer": ..., ...}`).
    ///   - metrics: Values to rank checkpoints by (`["loss": 0.25]`); stored in the file and the catalog.
    /// - Returns: The committed entry.
    /// - Throws: ``CatalogError``: the error of an earlier async save not yet reported;
    ///   `.checkpoint` when the file cannot be written (the catalog is left as it was);
    ///   `.conflict` when another live process is writing or deleting the same step;
    ///   `.locked`, `.io`, or what the catalog reports.
    @discardableResult
    public func save(step: Int, state: StateValue, metrics: [String: Double] = [:]) throws -> CheckpointEntry {
        try wait()
        return try performSave(step: step, state: state, metrics: metrics)
    }

    /// The whole save, on the caller's thread or the async worker.
    func performSave(step: Int, state: StateValue, metrics: [String: Double]) throws -> CheckpointEntry {
        guard step >= 0 else { throw CatalogError(.invalidArgument, "a step must be at least 0", step: step) }
        // Files pruned or replaced by earlier saves are freed on another thread; a save that
        // starts before that is done waits for it, so that it has their space (a disk sized for
        // the checkpoints kept plus one stays enough). In a training loop it is long done.
        DurableFile.waitForReleasedFiles()
        let relative = Self.relativePath(run: run, step: step)
        let url = directory.appendingPathComponent(relative)
        let created = Date()
        let rowID = try beginWriting(step: step, relativePath: relative, created: created)
        CrashHooks.reach(.rowInserted, directory)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let metadata = CheckpointFileInfo.metadata(run: run, step: step, metrics: metrics, created: created)
            try state.write(to: url, format: .ckpt, options: SaveOptions(durable: options.durable, metadata: metadata))
        } catch {
            // The final name still holds the previous file or nothing (the write is atomic): put
            // the row back to what that file says, so a failed save leaves the catalog as it was.
            _ = try? store.write { db in
                try settleWriting(db, id: rowID, step: step, url: url, verify: false, force: true)
            }
            throw CatalogError(.checkpoint, "cannot write the checkpoint", file: url.path, step: step, cause: CheckpointFileInfo.sendable(error))
        }
        CrashHooks.reach(.fileWritten, directory)
        let committed = Date()
        let info: CheckpointFileInfo
        do {
            info = try CheckpointFileInfo.read(url)
            try store.write { db in
                let changed = try db.run(
                    "UPDATE checkpoints SET status = 'committed', bytes = ?, manifest_crc32 = ?, committed = ?, writer = NULL WHERE id = ? AND status = 'writing'",
                    [.integer(Int64(info.bytes)), .integer(Int64(info.manifestCRC32)), .real(committed.timeIntervalSince1970), .integer(rowID)])
                guard changed == 1 else {
                    throw CatalogError(.conflict, "another process changed the checkpoint's row during the save", file: url.path, step: step)
                }
                try CatalogStore.setMetrics(db, checkpoint: rowID, metrics, replacingAll: true)
            }
        } catch {
            // Not left `writing` under this (live) process, where reconcile would wait for it.
            _ = try? store.write { db in
                try settleWriting(db, id: rowID, step: step, url: url, verify: true, force: true)
            }
            throw error
        }
        CrashHooks.reach(.rowCommitted, directory)
        if options.pruneAfterSave, options.retention.prunes {
            try prune()
        }
        return CheckpointEntry(
            run: run, step: step, directory: directory, relativePath: relative, status: .committed, bytes: info.bytes,
            manifestCRC32: info.manifestCRC32, created: created, committed: committed, metrics: metrics)
    }

    /// Inserts (or takes over) the step's row as `writing`, owned by this process.
    ///
    /// - Returns: The row id.
    /// - Throws: ``CatalogError`` `.conflict` when a live process is writing or deleting the step.
    private func beginWriting(step: Int, relativePath: String, created: Date) throws -> Int64 {
        let me = WriterIdentity.current.text
        return try store.write { db in
            let runID = try CatalogStore.runID(db, name: run, create: true)!
            let existing = try db.query(
                "SELECT id, status, writer FROM checkpoints WHERE run_id = ? AND step = ?", [.integer(runID), .integer(Int64(step))]
            ) { ($0.integer(0), $0.text(1), $0.optionalText(2)) }.first
            if let (id, status, writer) = existing {
                if status == CheckpointStatus.writing.rawValue || status == CheckpointStatus.deleting.rawValue,
                    let owner = writer.flatMap(WriterIdentity.init(text:)), owner != WriterIdentity.current, owner.mayBeAlive
                {
                    throw CatalogError(
                        .conflict, "process \(owner.pid) on \(owner.host) is \(status == "writing" ? "writing" : "deleting") this step",
                        file: directory.appendingPathComponent(relativePath).path, step: step)
                }
                try db.run(
                    "UPDATE checkpoints SET status = 'writing', path = ?, bytes = NULL, manifest_crc32 = NULL, created = ?, committed = NULL, writer = ? WHERE id = ?",
                    [.text(relativePath), .real(created.timeIntervalSince1970), .text(me), .integer(id)])
                return id
            }
            try db.run(
                "INSERT INTO checkpoints (run_id, step, path, status, created, writer) VALUES (?, ?, ?, 'writing', ?, ?)",
                [.integer(runID), .integer(Int64(step)), .text(relativePath), .real(created.timeIntervalSince1970), .text(me)])
            return db.lastInsertedRowID
        }
    }

    /// Decides a `writing` row whose writer is gone (or failed), from the file under its name:
    /// a file that holds this step and verifies is committed with what it says; a file that does
    /// not is marked corrupt; no file removes the row. Runs inside a write transaction.
    ///
    /// - Parameters:
    ///   - force: Decide even if the row's writer may be alive (the writer itself, after a failure).
    /// - Returns: What was done, or nil when the row is no longer `writing` or its writer is alive.
    @discardableResult
    func settleWriting(_ db: SQLiteConnection, id: Int64, step: Int, url: URL, verify: Bool, force: Bool) throws -> ReconcileReport.Repair.Kind? {
        guard let writer = try db.query("SELECT writer FROM checkpoints WHERE id = ? AND status = 'writing'", [.integer(id)], row: { $0.optionalText(0) }).first
        else { return nil }
        if !force, let owner = writer.flatMap(WriterIdentity.init(text:)), owner.mayBeAlive { return nil }
        guard FileManager.default.fileExists(atPath: url.path) else {
            try db.run("DELETE FROM checkpoints WHERE id = ? AND status = 'writing'", [.integer(id)])
            return .removedUnfinishedWrite
        }
        if let info = try? CheckpointFileInfo.read(url), info.step == step,
            !verify || (try? CheckpointFileInfo.loadVerified(url)) != nil
        {
            try db.run(
                "UPDATE checkpoints SET status = 'committed', bytes = ?, manifest_crc32 = ?, created = ?, committed = ?, writer = NULL WHERE id = ? AND status = 'writing'",
                [.integer(Int64(info.bytes)), .integer(Int64(info.manifestCRC32)), .real(info.created.timeIntervalSince1970),
                 .real(Date().timeIntervalSince1970), .integer(id)])
            try CatalogStore.setMetrics(db, checkpoint: id, info.metrics, replacingAll: true)
            return .committedFinishedWrite
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? nil
        try db.run(
            "UPDATE checkpoints SET status = 'corrupt', bytes = ?, writer = NULL WHERE id = ? AND status = 'writing'",
            [bytes.map { .integer(Int64($0)) } ?? .null, .integer(id)])
        return .markedCorrupt
    }
}
