import FuzzSupport

/// The restricted unpickler, through a `.pt` archive whose `data.pkl` is the input.
///
/// Input layout: the pickle, then `n` little-endian UInt32 sizes, then the byte `n` (at most 8):
/// entry `data/<k>` gets the k-th size, so that a torch pickle's storage references can resolve
/// (the reader checks each size against shape × dtype); sizes are taken modulo 4 KiB, which
/// keeps each execution fast. Without a valid trailer the whole input is
/// the pickle and the archive has no storages.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    var pickle = input
    var sizes: [Int] = []
    if let n = input.last.map(Int.init), n <= 8, input.count >= 1 + 4 * n {
        let start = input.count - 1 - 4 * n
        sizes = (0..<n).map { k in
            (0..<4).reduce(0) { $0 | Int(input[start + 4 * k + $1]) << (8 * $1) } & 0xFFF
        }
        pickle = Array(input[..<start])
    }
    var entries: [(name: String, bytes: [UInt8], crc32: UInt32?)] = [
        ("archive/data.pkl", pickle, nil), ("archive/byteorder", Array("little".utf8), nil),
    ]
    for (k, count) in sizes.enumerated() {
        entries.append(("archive/data/\(k)", [UInt8](repeating: UInt8(k), count: count), nil))
    }
    entries.append(("archive/version", Array("3\n".utf8), nil))
    Touch.load(ScratchFile.write(StoredZip.build(entries), name: "pickle.pt"))
    return 0
}
