import Checkpoint
import FuzzSupport

/// safetensors: any bytes as a `.safetensors` file (header length, JSON header, offsets, dtypes,
/// `__metadata__` and its `ckpt.tree`), read whole and through the metadata-only path.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let url = ScratchFile.write(UnsafeRawBufferPointer(start: data, count: size), name: "input.safetensors")
    Touch.load(url)
    _ = try? Safetensors.metadata(contentsOf: url)
    return 0
}
