import Checkpoint
import Foundation

/// What a managed checkpoint file says about itself: the `catalog` record of its manifest
/// metadata (run, step, metrics, created), its size and its manifest's CRC-32. Read without
/// touching a tensor, so reconcile can classify files cheaply.
struct CheckpointFileInfo: Sendable {
    var run: String
    var step: Int
    var metrics: [String: Double]
    var created: Date
    var bytes: Int
    var manifestCRC32: UInt32

    /// The version of the `catalog` metadata record this library writes.
    static let recordVersion: Int64 = 1

    /// The manifest metadata a manager writes into each checkpoint.
    static func metadata(run: String, step: Int, metrics: [String: Double], created: Date) -> StateValue {
        var metricsDict = StateDict()
        for (name, value) in metrics.sorted(by: { $0.key < $1.key }) { metricsDict[.string(name)] = .float(value) }
        return [
            "catalog": [
                "version": .int(recordVersion), "run": .string(run), "step": .int(Int64(step)),
                "metrics": .dict(metricsDict), "created": .float(created.timeIntervalSince1970),
            ]
        ]
    }

    /// Reads a file's record.
    ///
    /// - Parameter url: The checkpoint.
    /// - Returns: The record.
    /// - Throws: ``CatalogError`` `.checkpoint` when the file cannot be read or holds no catalog record.
    static func read(_ url: URL) throws -> CheckpointFileInfo {
        do {
            guard let metadata = try StateValue.metadata(contentsOf: url) else {
                throw CatalogError(.checkpoint, "the file holds no catalog metadata (not saved by a checkpoint manager)", file: url.path)
            }
            guard case .dict(let top) = metadata, case .dict(let record)? = top["catalog"],
                case .int(let step)? = record["step"], step >= 0, case .string(let run)? = record["run"]
            else {
                throw CatalogError(.checkpoint, "the file's catalog metadata lacks a run or step", file: url.path)
            }
            var metrics: [String: Double] = [:]
            if case .dict(let values)? = record["metrics"] {
                for (key, value) in values.items {
                    switch value {
                    case .float(let number): metrics[key.description] = number
                    case .int(let number): metrics[key.description] = Double(number)
                    default: continue
                    }
                }
            }
            var created = Date()
            if case .float(let seconds)? = record["created"] { created = Date(timeIntervalSince1970: seconds) }
            let reader = try ZipReader(path: url.path)
            guard let manifest = reader.entries.first(where: { $0.name.hasSuffix("/manifest.json") }) else {
                throw CatalogError(.checkpoint, "the file has no manifest", file: url.path)
            }
            return CheckpointFileInfo(
                run: run, step: Int(step), metrics: metrics, created: created, bytes: reader.file.count, manifestCRC32: manifest.crc32)
        } catch let error as CatalogError {
            throw error
        } catch {
            throw CatalogError(.checkpoint, "cannot read the checkpoint's metadata", file: url.path, cause: Self.sendable(error))
        }
    }

    /// Loads a file and checks every blob's CRC-32 (and the manifest against the blobs), and the
    /// CRC-32 of every other zip entry: a .ckpt loads from its manifest, so a damaged `data.pkl`
    /// would pass unnoticed here and fail later in torch.load.
    ///
    /// - Returns: The verified tree.
    /// - Throws: ``CatalogError`` `.checkpoint` with the ``Checkpoint/CheckpointError`` as cause.
    static func loadVerified(_ url: URL) throws -> StateValue {
        do {
            let state = try StateValue(contentsOf: url, options: LoadOptions(verifyChecksums: true))
            try state.verifyChecksums()
            let file = try MappedFile(path: url.path)
            if [.ckpt, .pt].contains(try CheckpointFormat.detect(file)) {
                let reader = try ZipReader(mapping: file)
                for entry in reader.entries where !isTensorBlob(entry.name) {
                    _ = try reader.contents(of: entry)
                }
            }
            return state
        } catch {
            throw CatalogError(.checkpoint, "the checkpoint does not load and verify", file: url.path, cause: Self.sendable(error))
        }
    }

    /// `<archive>/data/<key>`: a storage blob, which the tree's own verification reads.
    static func isTensorBlob(_ name: String) -> Bool {
        let parts = name.split(separator: "/")
        return parts.count == 3 && parts[1] == "data" && !parts[2].isEmpty
    }

    /// The error as a cause: a ``Checkpoint/CheckpointError`` as is, anything else as its text.
    static func sendable(_ error: any Error) -> any Error & Sendable {
        if let error = error as? CheckpointError { return error }
        if let error = error as? CatalogError { return error }
        return CatalogError(.io, "\(error)")
    }
}
