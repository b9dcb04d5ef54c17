import Checkpoint
import Foundation
import Testing

/// Opening a checkpoint file: a refusal by the system keeps the call and its errno, and reads in
/// one line as it always has (ckpt-tool prints it as is).
struct MappedFileTests {
    @Test func missingFileKeepsTheSystemCallAndErrno() throws {
        let path = "/nonexistent/model.ckpt"
        let error = try #require(throws: CheckpointError.self) { try StateValue(contentsOf: URL(fileURLWithPath: path)) }
        #expect(error.code == .io)
        let cause = try #require(error.cause as? SystemCallError)
        #expect(cause.systemCall == "open")
        #expect(cause.errno == ENOENT)
        #expect(error.description == "\(path): cannot open: No such file or directory [io]")
    }
}
