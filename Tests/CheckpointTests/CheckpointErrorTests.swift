import Checkpoint
import Foundation
import Testing

struct CheckpointErrorTests {
    /// A cause the message does not already state gets a line of its own.
    @Test func causeNotInTheMessageIsShownBelowIt() {
        let error = CheckpointError(.io, "cannot read", file: "a.pt", cause: SystemCallError(systemCall: "pread", errno: EIO))
        #expect(error.description == "a.pt: cannot read [io]\n  caused by: pread: \(String(cString: strerror(EIO))) (errno \(EIO))")
    }
}
