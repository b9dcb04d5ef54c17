/// Record signatures, sizes and sentinels of the zip format (APPNOTE.TXT), shared by the reader
/// and the writer.
package enum ZipFormat {
    static let localHeaderSignature: UInt32 = 0x0403_4b50
    static let centralHeaderSignature: UInt32 = 0x0201_4b50
    static let endOfCentralDirectorySignature: UInt32 = 0x0605_4b50
    static let zip64EndOfCentralDirectorySignature: UInt32 = 0x0606_4b50
    static let zip64LocatorSignature: UInt32 = 0x0706_4b50

    static let localHeaderSize = 30
    static let centralHeaderSize = 46
    static let endOfCentralDirectorySize = 22
    static let zip64EndOfCentralDirectorySize = 56
    static let zip64LocatorSize = 20
    /// The comment length field is 16 bits, so the end record starts at most this far before the end.
    static let maxCommentLength = 0xFFFF

    static let zip64ExtraID: UInt16 = 0x0001
    /// PyTorch's alignment padding field: 'F','B', then that many 'Z' bytes.
    static let paddingExtraID: UInt16 = 0x4246

    /// A 32-bit size or offset with this value means "see the zip64 extra field".
    static let sentinel32: UInt32 = 0xFFFF_FFFF
    static let sentinel16: UInt16 = 0xFFFF

    package static let methodStored: UInt16 = 0
    static let methodDeflated: UInt16 = 8

    static let flagEncrypted: UInt16 = 1 << 0
    static let flagDataDescriptor: UInt16 = 1 << 3
    static let flagStrongEncryption: UInt16 = 1 << 6
    static let flagUTF8Name: UInt16 = 1 << 11

    /// 1980-01-01 00:00:00 in DOS format, so the same input always gives the same bytes.
    static let fixedDOSDate: UInt16 = (0 << 9) | (1 << 5) | 1
    static let fixedDOSTime: UInt16 = 0
}

extension UnsafeRawBufferPointer {
    /// Little-endian reads; callers check the range first.
    func littleEndianU16(at offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    func littleEndianU32(at offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    func littleEndianU64(at offset: Int) -> UInt64 {
        UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
    }

    mutating func appendLittleEndian(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func appendLittleEndian(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
}

/// Entry names that cannot escape an extraction directory or confuse a path join.
enum ZipEntryName {
    /// Why `name` is unsafe, or nil if it is safe.
    ///
    /// Rejects what path-traversal attacks use: an empty name, NUL, backslash (a separator on
    /// Windows), a leading `/` or drive letter, and any `..` component.
    static func unsafeReason(_ name: String) -> String? {
        // One pass over the UTF-8 bytes without allocating: archives can hold 100k names.
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        var componentLength = 0
        var componentIsDots = true
        var index = 0
        for byte in name.utf8 {
            switch byte {
            case 0: return "name contains NUL"
            case UInt8(ascii: "\\"): return "name contains a backslash"
            case slash:
                if index == 0 { return "absolute path" }
                if componentIsDots && componentLength == 2 { return "name has a '..' component" }
                componentLength = 0
                componentIsDots = true
            case UInt8(ascii: ":") where index == 1:
                let first = name.utf8.first! | 0x20
                if first >= UInt8(ascii: "a") && first <= UInt8(ascii: "z") { return "name starts with a drive letter" }
                componentLength += 1
                componentIsDots = false
            default:
                componentLength += 1
                componentIsDots = componentIsDots && byte == dot
            }
            index += 1
        }
        if index == 0 { return "empty name" }
        if componentIsDots && componentLength == 2 { return "name has a '..' component" }
        return nil
    }
}
