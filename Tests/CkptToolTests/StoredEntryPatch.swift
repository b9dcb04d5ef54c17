import Checkpoint
import Foundation
import Testing

/// Rewrites a stored zip entry's bytes in place (same length) and its CRC-32 in the local and
/// central headers, so the archive stays valid and only the entry's meaning changes.
func patchStoredEntry(_ path: String, _ name: String, _ change: (inout [UInt8]) -> Void) throws {
    let entry = try ZipReader(path: path).requireEntry(named: name)
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    var contents = Array(bytes[entry.dataOffset..<entry.dataOffset + entry.uncompressedSize])
    change(&contents)
    try #require(contents.count == entry.uncompressedSize)
    bytes.replaceSubrange(entry.dataOffset..<entry.dataOffset + contents.count, with: contents)
    let old = withUnsafeBytes(of: entry.crc32.littleEndian, Array.init)
    let new = withUnsafeBytes(of: CRC32.checksum(contents).littleEndian, Array.init)
    var replaced = 0
    for index in 0..<(bytes.count - 3) where Array(bytes[index..<index + 4]) == old {
        bytes.replaceSubrange(index..<index + 4, with: new)
        replaced += 1
    }
    try #require(replaced == 2, "the CRC-32 of \(name) is not exactly in its two headers")
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}
