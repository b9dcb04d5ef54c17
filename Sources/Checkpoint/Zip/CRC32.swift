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

    /// The CRC-32 of two byte ranges one after the other, from the CRC of each: what lets pieces
    /// of one blob be checksummed on several threads and the results joined in order (zlib's
    /// `crc32_combine`: the first CRC shifted past `secondCount` zero bytes, then the second added).
    ///
    /// - Parameters:
    ///   - first: The CRC-32 of the first range.
    ///   - second: The CRC-32 of the second range.
    ///   - secondCount: The second range's length in bytes.
    /// - Returns: The CRC-32 of both ranges together.
    package static func combine(_ first: UInt32, _ second: UInt32, secondCount: Int) -> UInt32 {
        // x^(8·n) mod P, by squaring: powers[k] is x^(2^k) mod P.
        var shift: UInt32 = 1 << 31
        var n = UInt64(secondCount) * 8
        var k = 0
        while n != 0 {
            if n & 1 != 0 { shift = multiplyModP(powers[k % 32], shift) }
            n >>= 1
            k += 1
        }
        return multiplyModP(shift, first) ^ second
    }

    /// x^(2^k) mod P for k in 0..<32 (the sequence repeats with period 32 beyond that, as zlib uses).
    private static let powers: [UInt32] = {
        var table: [UInt32] = []
        var p: UInt32 = 1 << 30
        for _ in 0..<32 {
            table.append(p)
            p = multiplyModP(p, p)
        }
        return table
    }()

    /// a·b modulo the reflected zip polynomial 0xEDB88320, bit 31 being x^0.
    private static func multiplyModP(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var m: UInt32 = 1 << 31
        var b = b
        var product: UInt32 = 0
        while m != 0 {
            if a & m != 0 {
                product ^= b
                if a & (m - 1) == 0 { break }
            }
            m >>= 1
            b = b & 1 != 0 ? (b >> 1) ^ 0xEDB8_8320 : b >> 1
        }
        return product
    }

    /// A CRC as zip tools print it: eight lowercase hex digits.
    package static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
