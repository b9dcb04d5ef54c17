import Checkpoint
import Foundation

/// numpy's `.npy` format (version 1.0, or 2.0 for headers over 64 KiB), written byte for byte as
/// `numpy.save` writes it, so `numpy.load` reads the tensor back equal.
public enum NPY {
    /// The `descr` numpy uses for a dtype (`'<f4'`), or nil where numpy has no such type
    /// (bfloat16 and the float8 types).
    ///
    /// - Parameter dtype: The element type.
    /// - Returns: The little-endian type string.
    public static func descriptor(for dtype: DType) -> String? {
        dtype.numpyDescriptor
    }

    /// The dtype whose bits stand in for a dtype numpy lacks: bfloat16 as uint16, float8 as uint8.
    ///
    /// - Parameter dtype: The element type.
    /// - Returns: `dtype` itself when numpy has it, else the unsigned integer of the same size.
    public static func storedDType(for dtype: DType) -> DType {
        switch dtype {
        case .bfloat16: return .uint16
        case .float8_e4m3fn, .float8_e5m2: return .uint8
        default: return dtype
        }
    }

    /// The header numpy writes before the data: magic, version, length and the padded dict.
    ///
    /// - Parameters:
    ///   - descriptor: numpy's `descr` (`'<f4'`).
    ///   - shape: The array's shape (C order).
    /// - Returns: The header bytes; their count is a multiple of 64.
    public static func header(descriptor: String, shape: [Int]) -> [UInt8] {
        let shapeText: String
        switch shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dict = "{'descr': '\(descriptor)', 'fortran_order': False, 'shape': \(shapeText), }"
        // numpy leaves room to grow the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21).
        if let first = shape.first { dict += String(repeating: " ", count: max(0, 21 - String(first).count)) }
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        let dictLength = dict.utf8.count + 1
        for (major, lengthBytes) in [(UInt8(1), 2), (UInt8(2), 4)] {
            let prefix = magic.count + 2 + lengthBytes
            let padding = 64 - (prefix + dictLength) % 64
            let total = dictLength + padding
            guard lengthBytes == 4 || total <= Int(UInt16.max) else { continue }
            var bytes = magic + [major, 0]
            for shift in stride(from: 0, to: lengthBytes * 8, by: 8) { bytes.append(UInt8(truncatingIfNeeded: total >> shift)) }
            bytes += Array(dict.utf8) + [UInt8](repeating: UInt8(ascii: " "), count: padding) + [UInt8(ascii: "\n")]
            return bytes
        }
        return []
    }

    /// Writes a tensor as `.npy`, atomically (a temporary file renamed over `path`).
    ///
    /// bfloat16 and float8 elements, which numpy cannot represent, are written as their raw bits
    /// (uint16, uint8; see ``storedDType(for:)``); cast first (``Tensor/cast(to:)``) to get values.
    ///
    /// - Parameters:
    ///   - tensor: Any tensor; strided views are written in row-major order.
    ///   - url: The destination, written atomically and durably (a symlink there is followed).
    /// - Returns: The dtype written.
    /// - Throws: ``CheckpointError`` `.io` if the file cannot be written, `.outOfBounds` when the
    ///   row-major data would not fit in memory (a huge broadcast view); a failed storage verification.
    @discardableResult
    public static func write(_ tensor: Tensor, to url: URL) throws -> DType {
        let path = url.path
        let stored = storedDType(for: tensor.dtype)
        guard let descriptor = descriptor(for: stored) else {
            throw CheckpointError(.unsupported, "numpy has no type for this dtype", file: path, found: "\(tensor.dtype)")
        }
        _ = try Tensor.checkedAllocationSize(tensor.numel, tensor.dtype, byteCount: tensor.byteCount)
        var data = header(descriptor: descriptor, shape: tensor.shape)
        data.append(contentsOf: try tensor.contiguousBytes())
        try DurableFile.write(to: path) { descriptor in
            do {
                try data.withUnsafeBytes { try FileIO.writeAll(descriptor, $0) }
            } catch let error as SystemCallError {
                throw CheckpointError(.io, "cannot write", file: path, systemCall: error)
            }
        }
        return stored
    }
}

extension NPY {
    @available(*, deprecated, renamed: "write(_:to:)")
    @discardableResult
    public static func write(_ tensor: Tensor, to path: String) throws -> DType {
        try write(tensor, to: URL(fileURLWithPath: path))
    }
}
