import OrderedCollections

/// A safetensors header that passed every rule of safetensors' own reader.
struct SafetensorsHeader {
    /// One tensor record of the header.
    struct Entry {
        var name: String
        var dtype: DType
        var shape: [Int]
        /// Byte range relative to the first byte after the header.
        var begin: Int
        var end: Int
    }

    /// The tensors in the order the header lists them.
    var entries: [Entry]
    /// The `__metadata__` string pairs in header order; nil when absent or null.
    var metadata: OrderedDictionary<String, String>?
    /// Header length N from the first 8 bytes.
    var headerLength: Int

    /// File offset of the first data byte.
    var dataStart: Int { 8 + headerLength }
}

extension Safetensors {
    /// safetensors' `MAX_HEADER_SIZE`: a larger header is refused before it is read.
    public static let maximumHeaderLength = 100_000_000

    /// The `__metadata__` key.
    static let metadataKey = "__metadata__"

    /// Parses and validates a whole safetensors file's header against the file's length, with
    /// safetensors' rules (`safetensors/src/tensor.rs`, `read_metadata` and `Metadata::validate`),
    /// plus duplicate JSON keys, which safetensors' serde maps silently collapse.
    ///
    /// - Parameters:
    ///   - bytes: The whole file.
    ///   - file: The path, for errors.
    ///   - limits: The resource caps (``ResourceLimits/maximumJSONBytes`` holds the header).
    /// - Returns: The validated header.
    /// - Throws: ``CheckpointError`` naming the file, the tensor and what was expected.
    static func parseHeader(_ bytes: UnsafeRawBufferPointer, file: String, limits: ResourceLimits = .default) throws -> SafetensorsHeader {
        guard bytes.count >= 8 else {
            throw CheckpointError(
                .truncated, "file is shorter than the 8-byte header length", file: file,
                expected: "at least 8 bytes", found: "\(bytes.count) bytes")
        }
        var declared: UInt64 = 0
        for index in (0..<8).reversed() { declared = declared << 8 | UInt64(bytes[index]) }
        guard declared <= UInt64(maximumHeaderLength) else {
            throw CheckpointError(
                .outOfBounds, "header too large", file: file,
                expected: "header length at most \(maximumHeaderLength)", found: "\(declared)")
        }
        let headerLength = Int(declared)
        try limits.check(.maximumJSONBytes, headerLength, what: "header bytes", file: file)
        let (headerEnd, overflow) = headerLength.addingReportingOverflow(8)
        guard !overflow, headerEnd <= bytes.count else {
            throw CheckpointError(
                .truncated, "file ends inside the header", file: file,
                expected: "at least \(8 + headerLength) bytes", found: "\(bytes.count) bytes")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<headerEnd])
        if let invalid = firstInvalidUTF8Offset(headerBytes) {
            throw CheckpointError(
                .corrupt, "header is not valid UTF-8", file: file,
                expected: "UTF-8 JSON", found: "invalid byte at header offset \(invalid)")
        }
        let json = try OrderedJSON.parse(headerBytes, file: file, what: "header", limits: limits)
        guard case .object(let members) = json else {
            throw CheckpointError(.corrupt, "header is not a JSON object", file: file, expected: "object", found: json.kindName)
        }

        var entries: [SafetensorsHeader.Entry] = []
        var metadata: OrderedDictionary<String, String>?
        for (name, value) in members {
            if name == metadataKey {
                metadata = try parseMetadata(value, file: file)
            } else {
                entries.append(try parseEntry(name: name, value, file: file))
            }
        }

        let dataLength = try validateOffsets(entries, file: file)
        let (expectedLength, lengthOverflow) = headerEnd.addingReportingOverflow(dataLength)
        guard !lengthOverflow, expectedLength == bytes.count else {
            let shorter = lengthOverflow || expectedLength > bytes.count
            throw CheckpointError(
                shorter ? .truncated : .corrupt,
                shorter ? "file ends before the last tensor's data" : "tensor data does not cover the file (bytes after the last tensor)",
                file: file, expected: "\(lengthOverflow ? "more than Int.max" : String(expectedLength)) bytes (8 + header \(headerLength) + data \(dataLength))",
                found: "\(bytes.count) bytes")
        }
        return SafetensorsHeader(entries: entries, metadata: metadata, headerLength: headerLength)
    }

    private static func firstInvalidUTF8Offset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var consumed = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): consumed += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return consumed
            }
        }
    }

    private static func parseMetadata(_ value: OrderedJSON, file: String) throws -> OrderedDictionary<String, String>? {
        switch value {
        case .null:
            return nil
        case .object(let pairs):
            var result = OrderedDictionary<String, String>()
            for (key, item) in pairs {
                guard case .string(let text) = item else {
                    throw CheckpointError(
                        .corrupt, "metadata values must be strings", file: file, path: "\(metadataKey)/\(key)",
                        expected: "string", found: item.kindName)
                }
                result[key] = text
            }
            return result
        default:
            throw CheckpointError(
                .corrupt, "metadata must be an object of strings", file: file, path: metadataKey,
                expected: "object or null", found: value.kindName)
        }
    }

    private static func parseEntry(name: String, _ value: OrderedJSON, file: String) throws -> SafetensorsHeader.Entry {
        guard case .object = value else {
            throw CheckpointError(
                .corrupt, "tensor record is not an object", file: file, path: name,
                expected: "{dtype, shape, data_offsets}", found: value.kindName)
        }
        func field(_ key: String) throws -> OrderedJSON {
            guard let found = value[key] else {
                throw CheckpointError(.corrupt, "tensor record lacks \"\(key)\"", file: file, path: name, expected: "field \(key)")
            }
            return found
        }
        guard case .string(let tag) = try field("dtype") else {
            throw CheckpointError(.corrupt, "dtype is not a string", file: file, path: name, expected: "string", found: try field("dtype").kindName)
        }
        guard let dtype = DType(safetensorsName: tag) else {
            throw CheckpointError(
                .unknownDType, "unknown or unsupported safetensors dtype", file: file, path: name,
                expected: "one of \(DType.allCases.compactMap(\.safetensorsName).joined(separator: ", "))", found: tag)
        }
        let shape = try nonNegativeIntegers(try field("shape"), count: nil, what: "shape", name: name, file: file)
        let offsets = try nonNegativeIntegers(try field("data_offsets"), count: 2, what: "data_offsets", name: name, file: file)
        return SafetensorsHeader.Entry(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
    }

    private static func nonNegativeIntegers(
        _ value: OrderedJSON, count: Int?, what: String, name: String, file: String
    ) throws -> [Int] {
        let expected = count.map { "array of \($0) non-negative integers" } ?? "array of non-negative integers"
        guard case .array(let elements) = value, count == nil || elements.count == count else {
            let found: String
            if case .array(let elements) = value { found = "\(elements.count) elements" } else { found = value.kindName }
            throw CheckpointError(.corrupt, "\(what) has the wrong form", file: file, path: name, expected: expected, found: found)
        }
        return try elements.map { element in
            guard let integer = element.nonNegativeInt else {
                let overflow = element.nonNegativeIntText != nil
                throw CheckpointError(
                    overflow ? .outOfBounds : .corrupt,
                    overflow ? "\(what) value does not fit in a 64-bit integer" : "\(what) holds a value that is not a non-negative integer",
                    file: file, path: name, expected: expected, found: element.kindName)
            }
            return integer
        }
    }

    /// safetensors' `Metadata::validate`: sorted by offsets, each tensor starts where the previous
    /// ended (a zero-size tensor may sit at the same offset as its neighbour), and its byte count is
    /// numel × dtype size, both computed with overflow checks.
    ///
    /// - Returns: The end of the data (the last tensor's end, or 0).
    private static func validateOffsets(_ entries: [SafetensorsHeader.Entry], file: String) throws -> Int {
        let sorted = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var position = 0
        for entry in sorted {
            guard entry.begin == position, entry.end >= entry.begin else {
                let problem = entry.end < entry.begin ? "data_offsets end before they begin"
                    : entry.begin > position ? "gap before the tensor's data" : "tensor's data overlaps the previous tensor"
                throw CheckpointError(
                    .corrupt, problem, file: file, path: entry.name,
                    expected: "data_offsets starting at \(position) with end ≥ begin", found: "[\(entry.begin), \(entry.end)]")
            }
            position = entry.end
            var elements = 1
            for dimension in entry.shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
                guard !overflow else {
                    throw CheckpointError(
                        .outOfBounds, "shape's element count overflows", file: file, path: entry.name,
                        expected: "a product below 2^63", found: "shape \(entry.shape)")
                }
                elements = product
            }
            let (byteCount, overflow) = elements.multipliedReportingOverflow(by: entry.dtype.itemSize)
            guard !overflow else {
                throw CheckpointError(
                    .outOfBounds, "tensor byte count overflows", file: file, path: entry.name,
                    expected: "numel × \(entry.dtype.itemSize) below 2^63", found: "shape \(entry.shape)")
            }
            guard byteCount == entry.end - entry.begin else {
                throw CheckpointError(
                    .corrupt, "byte count does not match shape × dtype size", file: file, path: entry.name,
                    expected: "\(byteCount) bytes (shape \(entry.shape), \(entry.dtype.safetensorsName ?? "") \(entry.dtype.itemSize) B)",
                    found: "\(entry.end - entry.begin) bytes [\(entry.begin), \(entry.end)]")
            }
        }
        return position
    }
}
