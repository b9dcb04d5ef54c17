import FuzzSupport

/// The zip container: any bytes as a `.pt` file (central directory, local headers, deflated and
/// stored entries, then whatever the archive holds).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    Touch.load(ScratchFile.write(UnsafeRawBufferPointer(start: data, count: size), name: "input.pt"))
    return 0
}
