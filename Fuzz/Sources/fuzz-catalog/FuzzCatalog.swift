import Catalog
import Foundation
import FuzzSupport

/// The catalog reader: the input as a run directory's `catalog.sqlite` (a mangled SQLite file),
/// opened without creating and queried through every read-only call. Calls that open the
/// checkpoint files a catalog names (restore, verify, reconcile, prune) are left out: a mangled
/// path could name any file on the machine.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let directory = ScratchFile.directory.appendingPathComponent("run")
    // A fresh directory each time: SQLite's -wal and -journal files must not carry over.
    try? FileManager.default.removeItem(at: directory)
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let catalog = CheckpointManager.catalogURL(in: directory)
    _ = ScratchFile.write(UnsafeRawBufferPointer(start: data, count: size), name: "run/" + catalog.lastPathComponent)
    _ = try? CheckpointManager.runs(in: directory)
    _ = try? CheckpointManager.entries(in: directory)
    _ = try? CheckpointManager.runNames(in: directory)
    let options = CheckpointManager.Options(durable: false, busyTimeout: 0, createIfMissing: false, pruneAfterSave: false)
    guard let manager = try? CheckpointManager(directory: directory, options: options) else { return 0 }
    _ = try? manager.all()
    _ = try? manager.runs()
    _ = try? manager.latest()
    _ = try? manager.best(metric: "loss", mode: .min)
    _ = try? manager.best(metric: "accuracy", mode: .max)
    _ = try? manager.entry(step: 0)
    _ = manager.shouldSave(step: 1)
    _ = try? manager.recordMetrics(step: 1, metrics: ["loss": 0.5])
    try? manager.close()
    return 0
}
