import Checkpoint
import Foundation
import FuzzSupport

/// A Hugging Face `model.safetensors.index.json`: any bytes next to the shards huggingface_hub
/// wrote for Tests/Fixtures/sharded/safetensors, loaded as one tree (index checked against the
/// shards) and every tensor read; every error must be a CheckpointError.
let directory = FixtureDirectory.copy("sharded/safetensors", except: "model.safetensors.index.json")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    // `directory` first: a global is made on first use, and it makes the folder.
    let name = directory.lastPathComponent + "/model.safetensors.index.json"
    let index = ScratchFile.write(UnsafeRawBufferPointer(start: data, count: size), name: name)
    FixtureDirectory.expectingTypedErrors {
        FixtureDirectory.readTensors(of: try StateValue(contentsOf: index))
    }
    return 0
}
