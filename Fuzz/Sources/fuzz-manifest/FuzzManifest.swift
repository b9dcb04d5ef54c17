import Foundation
import FuzzSupport

/// The ckpt manifest: the input is `archive/manifest.json` of a `.ckpt` archive. The blobs its
/// `storages` name are added (zeros of the declared size, at most 4 KiB, with the declared CRC-32
/// in the central directory) so that decoding reaches the tree; checksums of blob contents are not
/// verified, since the blobs are not the real bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let manifest = Array(UnsafeBufferPointer(start: data, count: size))
    var entries: [(name: String, bytes: [UInt8], crc32: UInt32?)] = [
        // An empty dict, protocol 2: the manifest is preferred, so this is never read.
        ("archive/data.pkl", [0x80, 0x02, 0x7D, 0x71, 0x00, 0x2E], nil),
        ("archive/byteorder", Array("little".utf8), nil),
    ]
    var names: Set<String> = ["archive/data.pkl", "archive/byteorder", "archive/manifest.json"]
    if let json = try? JSONSerialization.jsonObject(with: Data(manifest)) as? [String: Any],
       let storages = json["storages"] as? [Any] {
        for case let record as [String: Any] in storages.prefix(64) {
            guard let name = record["record"] as? String, names.insert(name).inserted else { continue }
            let count = min(max((record["nbytes"] as? NSNumber)?.intValue ?? 0, 0), 1 << 12)
            let crc = (record["crc32"] as? NSNumber).map { UInt32(truncatingIfNeeded: $0.int64Value) }
            entries.append((name, [UInt8](repeating: 0, count: count), crc))
        }
    }
    entries.append(("archive/manifest.json", manifest, nil))
    entries.append(("archive/version", Array("3\n".utf8), nil))
    Touch.load(ScratchFile.write(StoredZip.build(entries), name: "manifest.ckpt"), verifyChecksums: false)
    return 0
}
