import Checkpoint
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What ``CheckpointManager/reconcile(verify:)`` found and repaired.
public struct ReconcileReport: Sendable, CustomStringConvertible {
    /// One repair.
    public struct Repair: Sendable, CustomStringConvertible {
        /// What was done.
        public enum Kind: String, Sendable, CaseIterable {
            /// A `writing` row whose writer died after its file was complete: committed from the file.
            case committedFinishedWrite
            /// A `writing` row whose writer died before its file existed: row removed.
            case removedUnfinishedWrite
            /// A `deleting` row: its file unlinked (if still there) and the row removed.
            case finishedDeletion
            /// A committed row whose file is gone: row removed.
            case removedMissingFile
            /// A row whose file does not verify or is not the recorded file: marked `corrupt`.
            case markedCorrupt
            /// A checkpoint file with no row that verifies: recorded as committed from its metadata.
            case addedUnrecordedFile
            /// A checkpoint file with no row that does not verify: recorded as `corrupt`.
            case addedCorruptFile
            /// A temporary file of a save that died: removed.
            case removedTemporaryFile
            /// The catalog could not be used (or a rebuild was asked for): moved aside.
            case movedCatalogAside
        }

        public var kind: Kind
        /// The run concerned, if any.
        public var run: String?
        /// The step concerned, if any.
        public var step: Int?
        /// The file concerned, relative to the run directory.
        public var path: String
        /// Details (why a file was found corrupt, where the catalog was moved).
        public var detail: String?

        /// `removedMissingFile main step 300 checkpoints/main/step-000000300.ckpt`
        public var description: String {
            var text = kind.rawValue
            if let run { text += " \(run)" }
            if let step { text += " step \(step)" }
            text += " \(path)"
            if let detail { text += ": \(detail)" }
            return text
        }
    }

    /// Every repair, in the order made.
    public var repairs: [Repair]
    /// Rows left alone because a live process is still writing or deleting them.
    public var inProgress: [CheckpointEntry]
    /// Files under `checkpoints/` that are not checkpoints of this layout, left alone (relative paths).
    public var unrecognized: [String]
    /// Checkpoint files examined.
    public var filesChecked: Int

    /// One line per repair, then what was left alone.
    public var description: String {
        var lines = repairs.map(\.description)
        lines += inProgress.map { "in progress (left alone): \($0.run) step \($0.step) \($0.status)" }
        lines += unrecognized.map { "not a checkpoint of this layout (left alone): \($0)" }
        if lines.isEmpty { lines = ["catalog matches the directory (\(Plural.count(filesChecked, "file")))"] }
        return lines.joined(separator: "\n")
    }
}

extension CheckpointManager {
    /// Makes the catalog match the checkpoint files, and reports each repair.
    ///
    /// Every run in the directory is reconciled. Rows left by a process that died are settled:
    /// a `writing` row is committed when its file is complete and verifies, removed when there is
    /// no file; a `deleting` row's file is unlinked and the row removed. A committed row whose
    /// file is gone is removed; one whose file is not the recorded file (size, manifest CRC-32,
    /// step), or with `verify` does not verify, is marked `corrupt`. A checkpoint file without a
    /// row is recorded from its manifest metadata, as committed if it verifies, else as
    /// `corrupt`. Temporary files of dead saves are removed. Rows of live processes are left alone.
    ///
    /// - Parameter verify: Also load every committed file and check every blob's CRC-32 (reads
    ///   all the data); without it committed files are checked by size and manifest CRC-32.
    /// - Returns: The repairs.
    /// - Throws: ``CatalogError`` `.corrupt` when SQLite's integrity check fails (rebuild with
    ///   ``reconcile(directory:rebuild:verify:options:)``), or what the catalog reports.
    public func reconcile(verify: Bool = false) throws -> ReconcileReport {
        try reconcile(store: store, directory: directory, verify: verify)
    }

    /// Reconciles a run directory's catalog with its files, or rebuilds the catalog from them.
    ///
    /// With `rebuild`, or when the catalog cannot be opened because it is not SQLite, is
    /// damaged, or is another application's database, the catalog (and its `-wal` and `-shm`
    /// files) is moved aside to `catalog.sqlite.broken-<time>` and a new one is built from the
    /// checkpoint files' metadata. Metrics recorded only in the catalog
    /// (``recordMetrics(step:metrics:)``) are lost then. Stop every process using the directory
    /// before rebuilding: one that keeps the old catalog open would go on writing to it.
    ///
    /// - Parameters:
    ///   - directory: The run directory.
    ///   - rebuild: Recreate the catalog from the files even if it opens.
    ///   - verify: Also verify every committed file's blobs.
    ///   - options: Durability and busy timeout (retention is not applied).
    /// - Returns: The repairs, the move aside first when there was one.
    /// - Throws: ``CatalogError`` when the catalog cannot be opened for a reason a rebuild does not
    ///   fix (`.locked`, `.io`, `.schemaTooNew`), or what reconcile throws.
    public static func reconcile(
        directory: URL, rebuild: Bool = false, verify: Bool = false, options: Options = Options()
    ) throws -> ReconcileReport {
        let directory = directory.standardizedFileURL
        let catalog = catalogURL(in: directory)
        var movedAside: [ReconcileReport.Repair] = []
        if rebuild, FileManager.default.fileExists(atPath: catalog.path) {
            movedAside.append(try moveAside(catalog, directory: directory, reason: "rebuild requested"))
        }
        var opened = options
        opened.createIfMissing = true
        opened.pruneAfterSave = false
        let unusable: [CatalogError.Code] = [.notADatabase, .corrupt, .notACatalog]
        do {
            let manager = try CheckpointManager(directory: directory, run: "main", options: opened, fillNewCatalog: false)
            defer { try? manager.close() }
            var report = try manager.reconcile(verify: verify)
            report.repairs = movedAside + report.repairs
            return report
        } catch let error as CatalogError where unusable.contains(error.code) {
            movedAside.append(try moveAside(catalog, directory: directory, reason: error.message))
        }
        let manager = try CheckpointManager(directory: directory, run: "main", options: opened, fillNewCatalog: false)
        defer { try? manager.close() }
        var report = try manager.reconcile(verify: verify)
        report.repairs = movedAside + report.repairs
        return report
    }

    private static func moveAside(_ catalog: URL, directory: URL, reason: String) throws -> ReconcileReport.Repair {
        let stamp = Int(Date().timeIntervalSince1970 * 1000)
        let target = catalog.path + ".broken-\(stamp)"
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: catalog.path + suffix) {
            guard rename(catalog.path + suffix, target + suffix) == 0 else {
                throw CatalogError(.io, "cannot move the catalog aside: \(String(cString: strerror(errno)))", file: catalog.path + suffix)
            }
        }
        return ReconcileReport.Repair(
            kind: .movedCatalogAside, run: nil, step: nil, path: CatalogStore.fileName,
            detail: "\(reason); moved to \(URL(fileURLWithPath: target).lastPathComponent), rebuilt from the checkpoint files")
    }

    /// A file found under `checkpoints/<run>/`.
    private struct FoundFile {
        var run: String
        var step: Int
        var relativePath: String
        var url: URL
    }

    func reconcile(store: CatalogStore, directory: URL, verify: Bool) throws -> ReconcileReport {
        let check = try store.withConnection { db in try db.query("PRAGMA quick_check") { $0.text(0) } }
        guard check == ["ok"] else {
            throw CatalogError(
                .corrupt, "the catalog fails SQLite's integrity check: \(check.prefix(3).joined(separator: "; "))", file: store.path,
                remedy: "run reconcile(rebuild: true) (ckpt-tool reconcile DIR --rebuild) to recreate it from the checkpoint files")
        }
        var report = ReconcileReport(repairs: [], inProgress: [], unrecognized: [], filesChecked: 0)
        let (files, temporaries) = scanFiles(directory, &report)
        report.filesChecked = files.count
        let rows = try store.read { db in try CatalogStore.rows(db, directory: directory, where: "1", []) }
        var touchedDirectories = Set<String>()
        func repair(_ kind: ReconcileReport.Repair.Kind, _ entry: CheckpointEntry, _ detail: String? = nil) {
            report.repairs.append(.init(kind: kind, run: entry.run, step: entry.step, path: entry.relativePath, detail: detail))
        }

        // Rows first: each change is conditioned on the status read, so a live process's change in
        // between wins and the repair is simply not made.
        for row in rows {
            let entry = row.entry
            let owner = row.writer.flatMap(WriterIdentity.init(text:))
            switch entry.status {
            case .writing:
                let kind = try store.write { db in
                    try settleWriting(db, id: row.id, step: entry.step, url: entry.url, verify: true, force: false)
                }
                if let kind { repair(kind, entry) } else if owner?.mayBeAlive ?? false { report.inProgress.append(entry) }
            case .deleting:
                if let owner, owner.mayBeAlive, owner != WriterIdentity.current {
                    report.inProgress.append(entry)
                    continue
                }
                if unlink(entry.url.path) == 0 { touchedDirectories.insert(entry.url.deletingLastPathComponent().path) }
                try store.write { db in try db.run("DELETE FROM checkpoints WHERE id = ? AND status = 'deleting'", [.integer(row.id)]) }
                repair(.finishedDeletion, entry)
            case .committed, .corrupt:
                guard FileManager.default.fileExists(atPath: entry.url.path) else {
                    let changed = try store.write { db in
                        try db.run("DELETE FROM checkpoints WHERE id = ? AND status = ?", [.integer(row.id), .text(entry.status.rawValue)])
                    }
                    if changed > 0 { repair(.removedMissingFile, entry) }
                    continue
                }
                guard entry.status == .committed else { continue }
                if let problem = Self.problem(with: entry, verify: verify) {
                    let changed = try store.write { db in
                        try db.run("UPDATE checkpoints SET status = 'corrupt' WHERE id = ? AND status = 'committed'", [.integer(row.id)])
                    }
                    if changed > 0 { repair(.markedCorrupt, entry, problem) }
                }
            }
        }

        // Files without a row.
        let recorded = Set(rows.map { "\($0.entry.run)/\($0.entry.step)" })
        for file in files where !recorded.contains("\(file.run)/\(file.step)") {
            let info = try? CheckpointFileInfo.read(file.url)
            var problem: String?
            if let info {
                if info.step != file.step || info.run != file.run {
                    problem = "its metadata names run \(info.run) step \(info.step)"
                } else {
                    do { _ = try CheckpointFileInfo.loadVerified(file.url) } catch { problem = "\(error)" }
                }
            } else {
                problem = "no readable catalog metadata"
            }
            let bytes = info?.bytes ?? ((try? FileManager.default.attributesOfItem(atPath: file.url.path)[.size] as? Int) ?? nil)
            let inserted = try store.write { db -> Bool in
                let runID = try CatalogStore.runID(db, name: file.run, create: true)!
                let exists = try db.query(
                    "SELECT 1 FROM checkpoints WHERE run_id = ? AND step = ?", [.integer(runID), .integer(Int64(file.step))]) { _ in true }
                guard exists.isEmpty else { return false }
                try db.run(
                    "INSERT INTO checkpoints (run_id, step, path, status, bytes, manifest_crc32, created, committed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [.integer(runID), .integer(Int64(file.step)), .text(file.relativePath), .text(problem == nil ? "committed" : "corrupt"),
                     bytes.map { .integer(Int64($0)) } ?? .null, info.map { .integer(Int64($0.manifestCRC32)) } ?? .null,
                     .real((info?.created ?? Date()).timeIntervalSince1970), problem == nil ? .real(Date().timeIntervalSince1970) : .null])
                if problem == nil, let info { try CatalogStore.setMetrics(db, checkpoint: db.lastInsertedRowID, info.metrics, replacingAll: true) }
                return true
            }
            if inserted {
                report.repairs.append(.init(
                    kind: problem == nil ? .addedUnrecordedFile : .addedCorruptFile, run: file.run, step: file.step,
                    path: file.relativePath, detail: problem))
            }
        }

        // Temporary files of saves whose writer is gone (asked again now: a save may have started
        // since the rows were read).
        for temporary in temporaries {
            let writers = try store.read { db in
                try db.query(
                    "SELECT c.writer FROM checkpoints c JOIN runs r ON r.id = c.run_id WHERE r.name = ? AND c.step = ? AND c.status = 'writing'",
                    [.text(temporary.run), .integer(Int64(temporary.step))]) { $0.optionalText(0) }
            }
            if writers.contains(where: { $0.flatMap(WriterIdentity.init(text:))?.mayBeAlive ?? false }) { continue }
            if unlink(temporary.url.path) == 0 {
                touchedDirectories.insert(temporary.url.deletingLastPathComponent().path)
                report.repairs.append(.init(kind: .removedTemporaryFile, run: temporary.run, step: temporary.step, path: temporary.relativePath, detail: nil))
            }
        }
        if options.durable { for path in touchedDirectories { Self.syncDirectory(path) } }
        return report
    }

    /// Why a committed row's file is not the one recorded, or nil when it is.
    private static func problem(with entry: CheckpointEntry, verify: Bool) -> String? {
        let info: CheckpointFileInfo
        do { info = try CheckpointFileInfo.read(entry.url) } catch { return "\(error)" }
        if info.step != entry.step { return "the file holds step \(info.step)" }
        if let bytes = entry.bytes, bytes != info.bytes { return "size \(info.bytes) bytes, recorded \(bytes)" }
        if let crc = entry.manifestCRC32, crc != info.manifestCRC32 { return "manifest CRC-32 differs from the recorded one" }
        if verify {
            do { _ = try CheckpointFileInfo.loadVerified(entry.url) } catch { return "\(error)" }
        }
        return nil
    }

    /// Lists `checkpoints/<run>/`: step files, temporary files of saves, and anything else.
    private func scanFiles(_ directory: URL, _ report: inout ReconcileReport) -> (files: [FoundFile], temporaries: [FoundFile]) {
        let root = directory.appendingPathComponent(Self.checkpointsFolder)
        var files: [FoundFile] = []
        var temporaries: [FoundFile] = []
        let manager = FileManager.default
        let runs = ((try? manager.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
        for run in runs {
            let runURL = root.appendingPathComponent(run)
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: runURL.path, isDirectory: &isDirectory), isDirectory.boolValue, (try? Self.validateRunName(run)) != nil else {
                report.unrecognized.append("\(Self.checkpointsFolder)/\(run)")
                continue
            }
            for name in ((try? manager.contentsOfDirectory(atPath: runURL.path)) ?? []).sorted() {
                let relative = "\(Self.checkpointsFolder)/\(run)/\(name)"
                let url = runURL.appendingPathComponent(name)
                if let step = Self.step(fromFileName: name) {
                    files.append(FoundFile(run: run, step: step, relativePath: relative, url: url))
                } else if name.hasPrefix("."), let range = name.range(of: ".ckpt.tmp-"), let step = Self.step(fromFileName: String(name[name.index(after: name.startIndex)..<range.lowerBound]) + ".ckpt") {
                    temporaries.append(FoundFile(run: run, step: step, relativePath: relative, url: url))
                } else {
                    report.unrecognized.append(relative)
                }
            }
        }
        return (files, temporaries)
    }

    /// The step of `step-000000100.ckpt`, or nil for any other name.
    static func step(fromFileName name: String) -> Int? {
        guard name.hasPrefix("step-"), name.hasSuffix(".ckpt") else { return nil }
        let digits = name.dropFirst(5).dropLast(5)
        guard digits.count >= 9, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let step = Int(digits) else { return nil }
        // One spelling per step: the canonical name.
        return fileName(step: step) == name ? step : nil
    }
}
