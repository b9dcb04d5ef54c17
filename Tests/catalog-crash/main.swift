// A process for CatalogTests to kill and to race: a trainer that saves and prunes forever, a
// trainer and an evaluator writing to one catalog at once, and a process that holds the
// catalog's write lock.
//
//   catalog-crash loop DIR            restore, then save steps (sync and async in turn) until killed,
//                                     recording an eval metric on the latest step after each;
//                                     appends "committed N" to DIR/progress.log after each commit.
//                                     CATALOG_CRASH_AT=k: SIGKILL itself at the k-th crash point.
//   catalog-crash commits DIR ROLE N  ROLE trainer: N/2 saves (2 commits each); evaluator: N metric
//                                     records. Prints "busy=B commits=C" and exits 0.
//   catalog-crash hold DIR SECONDS    holds BEGIN IMMEDIATE on the catalog, prints "locked".
//   catalog-crash writing DIR STEP    starts a save of STEP and stops inside it (its row `writing`
//                                     under this live process, no file yet), prints "writing", and
//                                     waits to be killed (CkptToolTests: a save in flight).
import CSQLite
import Catalog
import Checkpoint
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to standard output at once (unbuffered: the parent polls for it).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

/// The state saved at `step`: its values are derived from the step, so a test can tell which
/// step a file holds and that it is whole. Two tensors share one storage, as tied weights do.
func state(step: Int) throws -> StateValue {
    let values = (0..<256).map { Float(step) + Float($0) / 256 }
    let weight = try Tensor(values, shape: [16, 16])
    let tied = try weight.viewed(shape: [256], strides: [1])
    return ["model": ["w": .tensor(weight), "tied": .tensor(tied)], "step": .int(Int64(step))]
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: catalog-crash loop|commits|hold DIR ...") }
let directory = URL(fileURLWithPath: arguments[2])

switch arguments[1] {
case "loop":
    if let text = ProcessInfo.processInfo.environment["CATALOG_CRASH_AT"], let target = Int(text) {
        let counter = NSLock()
        nonisolated(unsafe) var reached = 0
        CrashHooks.set { _, _ in
            let count = counter.withLock { reached += 1; return reached }
            if count == target { kill(getpid(), SIGKILL) }
        }
    }
    let log = directory.appendingPathComponent("progress.log").path
    if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
    guard let progress = FileHandle(forWritingAtPath: log) else { fail("cannot open \(log)") }
    progress.seekToEndOfFile()
    do {
        let manager = try CheckpointManager(
            directory: directory, options: .init(retention: RetentionPolicy(keepLast: 2, keepBest: 1, metric: "loss", keepEvery: 5)))
        var step = 0
        if let restored = try manager.restore() {
            guard restored.state == (try state(step: restored.entry.step)) else { fail("restored step \(restored.entry.step) holds other values") }
            step = restored.entry.step + 1
        }
        while true {
            // A loss that is not monotonic, so keep-best and keep-last disagree.
            let metrics = ["loss": Double((step * 7919) % 13)]
            if step % 2 == 0 {
                // The async save of the step before is in flight until here.
                if let entry = try manager.wait(), entry.step == step - 1 { progress.write(Data("committed \(entry.step)\n".utf8)) }
                try manager.save(step: step, state: try state(step: step), metrics: metrics)
                progress.write(Data("committed \(step)\n".utf8))
            } else {
                try manager.saveAsync(step: step, state: try state(step: step), metrics: metrics)
            }
            // An evaluator's update of a committed step's metrics, so that kills land in one too.
            if let latest = try manager.latest() { _ = try manager.recordMetrics(step: latest.step, metrics: ["eval": Double(step)]) }
            step += 1
        }
    } catch {
        fail("\(error)")
    }

case "commits":
    guard arguments.count >= 5, let count = Int(arguments[4]) else { fail("usage: catalog-crash commits DIR ROLE N") }
    var busy = 0
    var commits = 0
    do {
        let manager = try CheckpointManager(directory: directory, run: "main")
        var step = 0
        while commits < count {
            do {
                if arguments[3] == "trainer" {
                    try manager.save(step: step, state: try state(step: step), metrics: ["loss": Double(step)])
                    step += 1
                    commits += 2
                } else if let latest = try manager.latest() {
                    try manager.recordMetrics(step: latest.step, metrics: ["eval": Double(commits)])
                    commits += 1
                } else {
                    usleep(1000)
                }
            } catch let error as CatalogError where error.code == .locked {
                busy += 1
            }
        }
        try manager.close()
    } catch {
        fail("\(error)")
    }
    say("busy=\(busy) commits=\(commits)")

case "hold":
    guard arguments.count >= 4, let seconds = Double(arguments[3]) else { fail("usage: catalog-crash hold DIR SECONDS") }
    var db: OpaquePointer?
    let path = CheckpointManager.catalogURL(in: directory).path
    guard sqlite3_open(path, &db) == SQLITE_OK, sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK else {
        fail("cannot lock \(path)")
    }
    say("locked")
    usleep(UInt32(seconds * 1_000_000))
    sqlite3_exec(db, "COMMIT", nil, nil, nil)
    sqlite3_close(db)

case "writing":
    guard arguments.count >= 4, let step = Int(arguments[3]) else { fail("usage: catalog-crash writing DIR STEP") }
    CrashHooks.set { point, _ in
        guard point == .rowInserted else { return }
        say("writing")
        while true { pause() }
    }
    do {
        let manager = try CheckpointManager(directory: directory, options: .init(durable: false))
        try manager.save(step: step, state: try state(step: step))
    } catch {
        fail("\(error)")
    }

default:
    fail("unknown command \(arguments[1])")
}
