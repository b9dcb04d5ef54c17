import Foundation

/// A JSON value that keeps object members in document order and numbers as their exact text.
///
/// Foundation's `JSONSerialization` drops member order, silently keeps one of two duplicate keys and
/// rounds integers above 2^53; safetensors headers, ckpt manifests and `ckpt.tree` records need all three kept,
/// so all are parsed with this strict RFC 8259 parser instead.
package enum OrderedJSON: Equatable, Sendable {
    case object([(key: String, value: OrderedJSON)])
    case array([OrderedJSON])
    case string(String)
    /// The number's text as written (`-12`, `1.5e-07`), converted only when its use is known.
    case number(String)
    case bool(Bool)
    case null

    package static func == (lhs: OrderedJSON, rhs: OrderedJSON) -> Bool {
        switch (lhs, rhs) {
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.array(a), .array(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.bool(a), .bool(b)): return a == b
        case (.null, .null): return true
        default: return false
        }
    }

    /// A short name of the value's JSON type, for error messages.
    var kindName: String {
        switch self {
        case .object: return "object"
        case .array: return "array"
        case .string: return "string"
        case .number(let text): return "number \(text)"
        case .bool(let b): return "\(b)"
        case .null: return "null"
        }
    }

    /// The member named `key` of an object, or nil.
    subscript(key: String) -> OrderedJSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The value as a non-negative integer that fits in `Int`, or nil (fractions and exponents are
    /// not integers here, as serde_json's `usize` refuses `1.0` and `1e0`).
    var nonNegativeInt: Int? { nonNegativeIntText.flatMap { Int($0) } }

    /// The text of a number made only of digits (a non-negative integer of any size), or nil.
    var nonNegativeIntText: String? {
        guard case .number(let text) = self, !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        return text
    }

    /// The value as a signed 64-bit integer written without fraction or exponent, or nil.
    var int64: Int64? {
        guard case .number(let text) = self else { return nil }
        return Int64(text)
    }
}

// MARK: - Parsing

extension OrderedJSON {
    /// Nesting deeper than this is refused, so hostile input cannot exhaust the stack.
    static let maximumDepth = 512

    /// Parses one JSON value that fills `bytes` (whitespace around it allowed).
    ///
    /// - Parameters:
    ///   - bytes: UTF-8 text.
    ///   - file: The file, for errors.
    ///   - what: What the text is (`"header"`), for errors.
    ///   - limits: The caps; ``ResourceLimits/maximumJSONValues`` is counted as values are parsed.
    /// - Returns: The value.
    /// - Throws: ``CheckpointError`` `.corrupt` naming the byte offset of the first problem, and
    ///   the key path for a duplicate key; `.limitExceeded` for more values than the cap.
    package static func parse(
        _ bytes: UnsafeRawBufferPointer, file: String?, what: String, limits: ResourceLimits = .default
    ) throws -> OrderedJSON {
        var parser = Parser(bytes: bytes, file: file, what: what, limits: limits.forDocument(ofBytes: bytes.count))
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.failure("trailing characters after the JSON value") }
        return value
    }

    /// Parses JSON from a string.
    package static func parse(_ text: String, file: String?, what: String, limits: ResourceLimits = .default) throws -> OrderedJSON {
        var text = text
        return try text.withUTF8 { try parse(UnsafeRawBufferPointer($0), file: file, what: what, limits: limits) }
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let file: String?
        let what: String
        let limits: ResourceLimits
        var index = 0
        /// Values parsed so far, held to ``ResourceLimits/maximumJSONValues``: a document of a
        /// million zeros costs far more parsed than its 2 MB of text.
        var valueCount = 0
        /// Where the parser is, kept as a stack and turned into text only for an error: building a
        /// path array per value made parsing a large manifest several times slower.
        var path: [PathComponent] = []

        enum PathComponent {
            case key(String)
            case index(Int)
        }

        init(bytes: UnsafeRawBufferPointer, file: String?, what: String, limits: ResourceLimits) {
            self.bytes = bytes
            self.file = file
            self.what = what
            self.limits = limits
        }

        func failure(_ message: String, expected: String? = nil) -> CheckpointError {
            let path = self.path.map { component -> String in
                switch component {
                case .key(let key): return key
                case .index(let index): return String(index)
                }
            }
            let found = index < bytes.count
                ? "byte \(String(format: "0x%02X", bytes[index])) at offset \(index)" : "end of \(what) at offset \(index)"
            return CheckpointError(
                .corrupt, "invalid JSON in \(what): \(message)", file: file,
                path: path.isEmpty ? nil : path.joined(separator: "/"), expected: expected, found: found)
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: StaticString) throws {
            let text = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
            for byte in text {
                guard index < bytes.count, bytes[index] == byte else {
                    throw failure("invalid literal", expected: "\(literal)")
                }
                index += 1
            }
        }

        mutating func parseValue(depth: Int) throws -> OrderedJSON {
            guard depth < OrderedJSON.maximumDepth else {
                throw failure("nesting deeper than \(OrderedJSON.maximumDepth) levels")
            }
            guard index < bytes.count else { throw failure("value expected") }
            valueCount += 1
            if valueCount > limits.maximumJSONValues {
                throw limits.exceeded(
                    .maximumJSONValues, found: "more than \(limits.maximumJSONValues) by byte \(index)", what: "values in the \(what)",
                    file: file)
            }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try parseObject(depth: depth)
            case UInt8(ascii: "["): return try parseArray(depth: depth)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            default: throw failure("value expected")
            }
        }

        mutating func parseObject(depth: Int) throws -> OrderedJSON {
            index += 1
            var members: [(key: String, value: OrderedJSON)] = []
            var seen = Set<String>()
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw failure("object key expected", expected: "\"")
                }
                let keyStart = index
                let key = try parseString()
                // Manifest and header objects are small: a linear scan beats hashing until they are not.
                if members.count == 16 { seen = Set(members.lazy.map(\.key)) }
                let duplicate = members.count < 16 ? members.contains { $0.key == key } : !seen.insert(key).inserted
                guard !duplicate else {
                    index = keyStart
                    path.append(.key(key))
                    throw failure("duplicate key \"\(key)\"", expected: "unique keys")
                }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                    path.append(.key(key))
                    throw failure("':' expected after an object key", expected: ":")
                }
                index += 1
                skipWhitespace()
                path.append(.key(key))
                let value = try parseValue(depth: depth + 1)
                path.removeLast()
                members.append((key, value))
                skipWhitespace()
                guard index < bytes.count else { throw failure("unterminated object", expected: "} or ,") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                throw failure("',' or '}' expected in an object", expected: "} or ,")
            }
        }

        mutating func parseArray(depth: Int) throws -> OrderedJSON {
            index += 1
            var elements: [OrderedJSON] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                path.append(.index(elements.count))
                elements.append(try parseValue(depth: depth + 1))
                path.removeLast()
                skipWhitespace()
                guard index < bytes.count else { throw failure("unterminated array", expected: "] or ,") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(elements) }
                throw failure("',' or ']' expected in an array", expected: "] or ,")
            }
        }

        mutating func parseNumber() throws -> String {
            let start = index
            func digits(_ parser: inout Parser) -> Int {
                let first = parser.index
                while parser.index < parser.bytes.count, (0x30...0x39).contains(parser.bytes[parser.index]) { parser.index += 1 }
                return parser.index - first
            }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, (0x30...0x39).contains(bytes[index]) else { throw failure("digit expected") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else {
                _ = digits(&self)
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits(&self) > 0 else { throw failure("digit expected after '.'") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits(&self) > 0 else { throw failure("digit expected in exponent") }
            }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        }

        mutating func parseHex4() throws -> UInt32 {
            guard index + 4 <= bytes.count else { throw failure("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case 0x30...0x39: digit = byte - 0x30
                case 0x41...0x46: digit = byte - 0x41 + 10
                case 0x61...0x66: digit = byte - 0x61 + 10
                default: throw failure("hex digit expected in \\u escape")
                }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }

        /// Parses a string; the input is already known to be valid UTF-8.
        mutating func parseString() throws -> String {
            index += 1
            // Most strings have no escapes: take them straight from the buffer.
            var end = index
            while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 {
                end += 1
            }
            if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
                defer { index = end + 1 }
                return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[index..<end]), as: UTF8.self)
            }
            var utf8: [UInt8] = Array(bytes[index..<end])
            index = end
            while true {
                guard index < bytes.count else { throw failure("unterminated string", expected: "\"") }
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return String(decoding: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw failure("unterminated escape") }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try parseHex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                                throw failure("lone leading surrogate in \\u escape")
                            }
                            index += 2
                            let low = try parseHex4()
                            guard (0xDC00...0xDFFF).contains(low) else {
                                throw failure("invalid trailing surrogate in \\u escape")
                            }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            throw failure("lone trailing surrogate in \\u escape")
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw failure("invalid \\u escape") }
                        utf8.append(contentsOf: Array(String(Character(unicode)).utf8))
                    default:
                        index -= 1
                        throw failure("invalid escape")
                    }
                case 0x00..<0x20:
                    throw failure("control character in a string")
                default:
                    utf8.append(byte)
                    index += 1
                }
            }
        }
    }
}

extension OrderedJSON {
    /// The value as `JSONSerialization` gives it (dictionaries, arrays, strings, `NSNumber`, `NSNull`),
    /// for readers written against that shape; keys are unique, as the parser guarantees.
    package var foundationValue: Any {
        switch self {
        case .object(let members):
            return Dictionary(members.map { ($0.key, $0.value.foundationValue) }, uniquingKeysWith: { first, _ in first })
        case .array(let elements): return elements.map(\.foundationValue)
        case .string(let text): return text
        case .number(let text): return Int(text).map { NSNumber(value: $0) } ?? NSNumber(value: Double(text) ?? .nan)
        case .bool(let flag): return flag
        case .null: return NSNull()
        }
    }
}
