/// A minimal zip writer (stored entries, no extras) so that a target can fuzz one entry of a torch
/// archive, `data.pkl` or `manifest.json`, while the container around it stays valid.
public enum StoredZip {
    /// The archive holding `entries` in order.
    ///
    /// - Parameters:
    ///   - entries: Names and bytes, and the CRC-32 to record when it is not the bytes' own.
    /// - Returns: The zip file's bytes.
    public static func build(_ entries: [(name: String, bytes: [UInt8], crc32: UInt32?)]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for entry in entries {
            let name = Array(entry.name.utf8)
            let crc = entry.crc32 ?? crc32(entry.bytes)
            let offset = UInt32(out.count)
            // Local header: version 20, no flags, stored, DOS time 0.
            out.le32(0x0403_4b50); out.le16(20); out.le16(0); out.le16(0); out.le32(0)
            out.le32(crc); out.le32(UInt32(entry.bytes.count)); out.le32(UInt32(entry.bytes.count))
            out.le16(UInt16(name.count)); out.le16(0)
            out += name
            out += entry.bytes
            central.le32(0x0201_4b50); central.le16(20); central.le16(20); central.le16(0); central.le16(0)
            central.le32(0); central.le32(crc)
            central.le32(UInt32(entry.bytes.count)); central.le32(UInt32(entry.bytes.count))
            central.le16(UInt16(name.count)); central.le16(0); central.le16(0); central.le16(0); central.le16(0)
            central.le32(0); central.le32(offset)
            central += name
        }
        let centralOffset = UInt32(out.count)
        out += central
        out.le32(0x0605_4b50); out.le16(0); out.le16(0)
        out.le16(UInt16(entries.count)); out.le16(UInt16(entries.count))
        out.le32(UInt32(central.count)); out.le32(centralOffset); out.le16(0)
        return out
    }

    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// The zip CRC-32 (computed here rather than through ckpt, whose CRC is package API).
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

extension [UInt8] {
    mutating func le16(_ v: UInt16) { append(UInt8(v & 0xFF)); append(UInt8(v >> 8)) }
    mutating func le32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { append(UInt8((v >> UInt32(s)) & 0xFF)) } }
}
