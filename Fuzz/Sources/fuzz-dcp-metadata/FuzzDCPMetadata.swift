import Checkpoint
import Foundation
import FuzzSupport

/// A DCP checkpoint's `.metadata`: any bytes next to the data files of torch's two-rank fixture
/// (Tests/Fixtures/dcp/two_ranks), so that a pickle that decodes reaches the chunk and file checks,
/// the items' archives and the assembly of chunked tensors. Opened, loaded and every tensor read;
/// every error must be a CheckpointError.
let directory = FixtureDirectory.copy("dcp/two_ranks", except: DistributedCheckpoint.metadataName)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    // `directory` first: a global is made on first use, and it makes the folder.
    let name = directory.lastPathComponent + "/" + DistributedCheckpoint.metadataName
    _ = ScratchFile.write(UnsafeRawBufferPointer(start: data, count: size), name: name)
    FixtureDirectory.expectingTypedErrors {
        let checkpoint = try DistributedCheckpoint(contentsOf: directory)
        FixtureDirectory.readTensors(of: try checkpoint.load())
    }
    return 0
}
