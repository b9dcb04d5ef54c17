@testable import Catalog
import Foundation
import TestSupport
import Testing

/// A step another live process is writing or deleting is not taken over; one whose process is
/// gone is.
@Suite struct WriterConflictTests {
    typealias F = CatalogFixtures

    /// The identity of a live process that is not this one (the test runner's parent).
    static var liveOther: WriterIdentity {
        let parent = getppid()
        return WriterIdentity(
            host: WriterIdentity.current.host, boot: WriterIdentity.current.boot, pid: parent,
            start: WriterIdentity.startTime(of: parent) ?? "-")
    }

    @Test func identities() throws {
        #expect(WriterIdentity.current.mayBeAlive)
        #expect(Self.liveOther.mayBeAlive)
        var reused = Self.liveOther
        reused.start = "1"  // the same pid, started at another time: a different process
        #expect(!reused.mayBeAlive)
        var rebooted = Self.liveOther
        rebooted.boot = "another-boot"
        #expect(!rebooted.mayBeAlive)
        var remote = Self.liveOther
        remote.host = "elsewhere"
        #expect(remote.mayBeAlive)
        #expect(WriterIdentity(text: WriterIdentity.current.text) == WriterIdentity.current)
        #expect(WriterIdentity(text: "garbage") == nil)
    }

    @Test func aLiveWritersStepIsAConflictAndLeftAlone() throws {
        let run = try TemporaryDirectory()
        let manager = try CheckpointManager(directory: run.url, options: F.options())
        try manager.save(step: 1, state: try F.state(step: 1))
        try manager.save(step: 2, state: try F.state(step: 2))
        let path = CheckpointManager.catalogURL(in: run.url).path
        _ = try CatalogFileTests.sql(path, "UPDATE checkpoints SET status = 'writing', writer = '\(Self.liveOther.text)' WHERE step = 2")
        let error = #expect(throws: CatalogError.self) { try manager.save(step: 2, state: try F.state(step: 2)) }
        #expect(error?.code == .conflict)
        #expect(try manager.reconcile().inProgress.map(\.step) == [2])
        #expect(try manager.latest()?.step == 1)
        // The same row left by a process that is gone is settled, and the step can be saved again.
        var gone = Self.liveOther
        gone.start = "1"
        _ = try CatalogFileTests.sql(path, "UPDATE checkpoints SET writer = '\(gone.text)' WHERE step = 2")
        #expect(try manager.reconcile().repairs.map(\.kind) == [.committedFinishedWrite])
        try manager.save(step: 2, state: try F.state(step: 2))
        #expect(try manager.latest()?.step == 2)
    }
}
