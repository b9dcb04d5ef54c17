import Catalog
import Checkpoint
import Foundation
import TestSupport
import Testing

/// Async saves: snapshot on the caller's thread, one in flight, errors at the next call, and
/// never reported before they commit.
@Suite(.serialized) struct AsyncSaveTests {
    typealias F = CatalogFixtures

    /// Holds a save of one directory at a crash point until released.
    final class Gate: @unchecked Sendable {
        let directory: URL
        let point: CrashPoint
        private let condition = NSCondition()
        private var reached = false
        private var open = false

        init(_ directory: URL, at point: CrashPoint) {
            self.directory = directory.standardizedFileURL
            self.point = point
            CrashHooks.set { [self] point, directory in
                guard point == self.point, directory.standardizedFileURL == self.directory else { return }
                condition.withLock {
                    reached = true
                    condition.broadcast()
                    while !open { condition.wait() }
                }
            }
        }

        func waitUntilReached() {
            condition.withLock { while !reached { condition.wait() } }
        }

        func release() {
            condition.withLock {
                open = true
                condition.broadcast()
            }
            CrashHooks.set(nil)
        }
    }

    @Test func anInFlightSaveIsNeverReportedAsLatest() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try manager.save(step: 1, state: try F.state(step: 1))
        for point in [CrashPoint.rowInserted, .fileWritten] {
            let step = point == .rowInserted ? 2 : 3
            let gate = Gate(run.url, at: point)
            try manager.saveAsync(step: step, state: try F.state(step: step))
            gate.waitUntilReached()
            #expect(manager.isSaving)
            // The row exists as `writing` (and at .fileWritten the file is already in place).
            #expect(try manager.entry(step: step)?.status == .writing)
            #expect(try manager.latest()?.step == step - 1)
            let restored = try #require(try manager.restore())
            #expect(restored.entry.step == step - 1)
            #expect(restored.skipped.map(\.reason) == [.writing])
            #expect(try manager.latestVerified()?.entry.step == step - 1)
            let asked = #expect(throws: CatalogError.self) { try manager.restore(step: step) }
            #expect(asked?.code == .noValidCheckpoint)
            // Another process's view: the same.
            let other = try CheckpointManager(directory: run.url, options: F.options())
            #expect(try other.latest()?.step == step - 1)
            // Reconcile leaves a live writer's row alone.
            let report = try other.reconcile()
            #expect(report.inProgress.map(\.step) == [step])
            #expect(try other.entry(step: step)?.status == .writing)
            gate.release()
            #expect(try manager.wait()?.step == step)
            #expect(try manager.latest()?.step == step)
        }
    }

    /// Starts an async save of `state` and holds it at `point` while every tensor of `state` is
    /// overwritten with `byte` in place (an optimizer step right after the call), then lets it
    /// finish.
    func saveAsyncAndOverwrite(_ manager: CheckpointManager, step: Int, _ state: StateValue, heldAt point: CrashPoint, with byte: UInt8) throws {
        let gate = Gate(manager.directory, at: point)
        try manager.saveAsync(step: step, state: state)
        gate.waitUntilReached()
        state.forEachTensor { _, tensor in
            _ = try? tensor.storage.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: byte) }
        }
        gate.release()
        try manager.wait()
    }

    @Test func theSnapshotIsTakenBeforeReturning() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try saveAsyncAndOverwrite(manager, step: 5, try F.state(step: 5), heldAt: .rowInserted, with: 0xAB)
        #expect(try manager.restore()?.state == (try F.state(step: 5)))
        // Shared storage stays shared in the file (one blob for the tied tensors).
        let reader = try ZipReader(path: manager.checkpointURL(step: 5).path)
        #expect(reader.entries.filter { $0.name.hasPrefix("archive/data/") }.count == 1)
    }

    /// The snapshot is copy-on-write: a write that comes before the background copy copies the
    /// storage first, on the writer's thread, and the file holds the bytes of the call.
    @Test func aWriteBeforeTheBackgroundCopyCopiesFirst() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        let state = try F.state(step: 5)
        // Nothing is copied yet when the writes come: they copy first (the tied tensors' storage once).
        try saveAsyncAndOverwrite(manager, step: 5, state, heldAt: .asyncSaveStarted, with: 0xAB)
        #expect(manager.lastAsyncSaveWriterWaits > 0)
        #expect(try manager.restore()?.state == (try F.state(step: 5)))
        var written = true
        state.forEachTensor { _, tensor in
            written = written && (try? tensor.storage.withUnsafeBytes { $0.allSatisfy { $0 == 0xAB } }) == true
        }
        #expect(written)
        // The next save reuses the copy's buffers and saves the bytes written since.
        try manager.saveAsync(step: 6, state: state)
        try manager.wait()
        #expect(try manager.restore()?.state == state)
    }

    /// Two managers saving the same tensors each keep their snapshot: the one that finishes
    /// first does not take the other's barrier with it.
    @Test func twoManagersSavingOneStateEachSaveTheBytesOfTheirCall() throws {
        let run = try TemporaryDirectory(), other = try TemporaryDirectory()
        let held = try CheckpointManager(directory: run.url, options: F.options())
        let quick = try CheckpointManager(directory: other.url, options: F.options())
        let state = try F.state(step: 3)
        let gate = Gate(run.url, at: .asyncSaveStarted)
        try held.saveAsync(step: 3, state: state)
        gate.waitUntilReached()
        try quick.saveAsync(step: 3, state: state)
        try quick.wait()
        state.forEachTensor { _, tensor in
            _ = try? tensor.storage.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0xEF) }
        }
        gate.release()
        try held.wait()
        #expect(try held.restore()?.state == (try F.state(step: 3)))
        #expect(try quick.restore()?.state == (try F.state(step: 3)))
    }

    /// A restored state's tensors view the file; writing one after saveAsync moves it to owned
    /// memory, and the save still holds the file's bytes.
    @Test func aRestoredStateChangedAfterTheCallSavesTheRestoredBytes() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try manager.save(step: 1, state: try F.state(step: 1))
        let restored = try #require(try manager.restore()).state
        try saveAsyncAndOverwrite(manager, step: 2, restored, heldAt: .asyncSaveStarted, with: 0xCD)
        #expect(try manager.restore(step: 2)?.state == (try F.state(step: 1)))
        #expect(try manager.restore(step: 1)?.state == (try F.state(step: 1)))
    }

    @Test func atMostOneSaveIsInFlight() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        let gate = Gate(run.url, at: .fileWritten)
        try manager.saveAsync(step: 1, state: try F.state(step: 1))
        gate.waitUntilReached()
        let done = DispatchSemaphore(value: 0)
        let second = Thread {
            _ = try? manager.saveAsync(step: 2, state: try! F.state(step: 2))
            done.signal()
        }
        second.start()
        // The second call is blocked behind the first: it has not returned, and its row does not exist.
        #expect(done.wait(timeout: .now() + 0.3) == .timedOut)
        #expect(try manager.entry(step: 2) == nil)
        gate.release()
        done.wait()
        try manager.wait()
        #expect(try manager.all().map(\.step) == [1, 2])
        #expect(try manager.all().allSatisfy { $0.status == .committed })
    }

    @Test func errorsSurfaceAtTheNextCall() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try manager.save(step: 1, state: try F.state(step: 1))
        // A tree too deep for the manifest: the snapshot succeeds, the write in the background fails.
        var deep: StateValue = .int(1)
        for _ in 0..<200 { deep = .list([deep]) }
        try manager.saveAsync(step: 2, state: deep)
        let error = #expect(throws: CatalogError.self) { try manager.saveAsync(step: 3, state: try F.state(step: 3)) }
        #expect(error?.code == .checkpoint)
        #expect(error?.step == 2)
        // Reported once; the failed save left no row and no file, and step 3 was not started.
        #expect(try manager.wait() == nil)
        #expect(try manager.all().map(\.step) == [1])
        #expect(!FileManager.default.fileExists(atPath: manager.checkpointURL(step: 2).path))
        try manager.saveAsync(step: 3, state: try F.state(step: 3))
        try manager.flush()
        #expect(try manager.latest()?.step == 3)
        try manager.close()
    }
}
