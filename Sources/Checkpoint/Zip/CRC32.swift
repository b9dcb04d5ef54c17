import CDeflate

/// CRC-32 (the zip polynomial), computed with libdeflate's PCLMUL implementation.
///
/// zlib's table-driven CRC runs near 2 GB/s here, slower than the disk path it guards;
/// libdeflate folds with carry-less multiplies and runs well above 10 GB/s, so verifying every
/// byte on load costs little.
package enum CRC32 {
    /// Updates a running CRC-32 with more bytes.
    ///
    /// - Parameters:
    ///   - bytes: The bytes to add.
    ///   - initial: The CRC of the bytes before these (0 to start a new checksum).
    /// - Returns: The CRC-32 of the preceding bytes followed by `bytes`.
    package static func checksum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return initial }
        return libdeflate_crc32(initial, base, bytes.count)
    }

    /// The CRC-32 of a byte array.
    ///
    /// - Parameter bytes: The bytes.
    /// - Returns: Their CRC-32.
    package static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// A CRC as zip tools print it: eight lowercase hex digits.
    package static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
