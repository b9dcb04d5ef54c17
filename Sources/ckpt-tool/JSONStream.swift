import Checkpoint
import Foundation

/// Writes a JSON document in JSONOutput's indented layout (a member or element a line, two spaces
/// a level, `"key" : value`, `{}` and `[]` when empty, the same strings and numbers) to a stream
/// through one small buffer, for documents too long for the Encodable path: `ls --json` prints
/// 10,000 checkpoints in a few milliseconds this way, where building and serializing an
/// `OrderedJSON` tree takes tens (and appending to an array byte run by byte run, as many again).
///
/// The caller writes each object's members in sorted key order, as the indented documents have them.
struct JSONStream: ~Copyable {
    private let stream: Terminal.Stream
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes in the buffer, not yet written.
    private var count = 0
    /// Members or elements written so far in each open object or array, outermost first.
    private var counts: UnsafeMutablePointer<Int>
    /// Open objects and arrays.
    private var depth = 0
    /// The deepest nesting this document may have.
    private let maximumDepth: Int

    /// Starts a document written to `stream` a buffer (64 KiB) at a time.
    ///
    /// - Parameters:
    ///   - stream: Where the text goes.
    ///   - maximumDepth: The deepest nesting of objects and arrays the document may have.
    init(to stream: Terminal.Stream, maximumDepth: Int = 64) {
        self.stream = stream
        self.maximumDepth = maximumDepth
        capacity = 1 << 16
        base = .allocate(capacity: capacity)
        counts = .allocate(capacity: maximumDepth)
    }

    deinit {
        base.deallocate()
        counts.deallocate()
    }

    /// Ends the document with a line break, as JSONOutput's documents end, and writes what is left.
    consuming func end() {
        put(UInt8(ascii: "\n"))
        flush()
    }

    /// Opens an object, as the root or as a value.
    mutating func beginObject() { open(UInt8(ascii: "{")) }

    /// Closes the innermost object.
    mutating func endObject() { close(UInt8(ascii: "}")) }

    /// Opens an array, as the root or as a value.
    mutating func beginArray() { open(UInt8(ascii: "[")) }

    /// Closes the innermost array.
    mutating func endArray() { close(UInt8(ascii: "]")) }

    /// Starts a member of the innermost object whose name is data; its value is written next.
    mutating func key(_ name: String) {
        separate()
        string(name)
        put(" : " as StaticString)
    }

    /// Starts a member whose name is a literal that needs no escaping (the document's own field names).
    mutating func field(_ name: StaticString) {
        separate()
        put(UInt8(ascii: "\""))
        put(name)
        put("\" : " as StaticString)
    }

    /// A member whose value is a string, or null.
    mutating func field(_ name: StaticString, _ value: String?) {
        field(name)
        string(value)
    }

    /// A member whose value is an integer, or null.
    mutating func field(_ name: StaticString, _ value: Int?) {
        field(name)
        integer(value)
    }

    /// A member whose value is a date (``timestamp(_:)``), or null.
    mutating func field(_ name: StaticString, _ value: Date?) {
        field(name)
        timestamp(value)
    }

    /// Starts the next element of the innermost array; its value is written next.
    mutating func element() { separate() }

    /// A string, escaped as every document escapes them (``OrderedJSON/appendQuoted(_:to:)``).
    mutating func string(_ text: String) {
        let plain = text.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return false }
            put(UInt8(ascii: "\""))
            put(bytes)
            put(UInt8(ascii: "\""))
            return true
        }
        if plain != true {
            var quoted: [UInt8] = []
            OrderedJSON.appendQuoted(text, to: &quoted)
            quoted.withUnsafeBufferPointer { put($0) }
        }
    }

    /// A string, or null.
    mutating func string(_ text: String?) {
        if let text { string(text) } else { put("null" as StaticString) }
    }

    /// A date as a string, ``Timestamp/iso8601(_:)``, or null.
    mutating func timestamp(_ date: Date?) {
        guard let date else { return put("null" as StaticString) }
        reserve(Timestamp.iso8601Length + 2)
        base[count] = UInt8(ascii: "\"")
        count += 1 + Timestamp.iso8601(date, into: UnsafeMutableBufferPointer(start: base + count + 1, count: Timestamp.iso8601Length))
        base[count] = UInt8(ascii: "\"")
        count += 1
    }

    /// An integer.
    mutating func integer(_ value: Int) {
        reserve(20)
        var magnitude = value.magnitude
        var digits = 0
        repeat {
            digits += 1
            magnitude /= 10
        } while magnitude > 0
        if value < 0 { put(UInt8(ascii: "-")) }
        magnitude = value.magnitude
        for index in (0..<digits).reversed() {
            base[count + index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
        }
        count += digits
    }

    /// An integer, or null.
    mutating func integer(_ value: Int?) {
        if let value { integer(value) } else { put("null" as StaticString) }
    }

    /// A number as the Encodable documents print it (`0.25`, `1.0`, or `"nan"`, `"inf"`, `"-inf"`).
    mutating func number(_ value: Double) {
        switch OrderedJSONEncoder.number(value) {
        case .number(let text): put(text)
        case .string(let text): string(text)
        default: put("null" as StaticString)
        }
    }

    /// `true` or `false`.
    mutating func bool(_ value: Bool) { put(value ? "true" as StaticString : "false") }

    /// `null`.
    mutating func null() { put("null" as StaticString) }

    /// A value already built as JSON (a small part of a document, from ``OrderedJSONEncoder``),
    /// members in the order it has them.
    mutating func value(_ json: OrderedJSON) {
        switch json {
        case .object(let members):
            beginObject()
            for member in members {
                key(member.key)
                value(member.value)
            }
            endObject()
        case .array(let elements):
            beginArray()
            for element in elements {
                self.element()
                value(element)
            }
            endArray()
        case .string(let text): string(text)
        case .number(let text): put(text)
        case .bool(let flag): bool(flag)
        case .null: null()
        }
    }

    private mutating func open(_ bracket: UInt8) {
        precondition(depth < maximumDepth, "JSONStream: nested more than \(maximumDepth) deep")
        put(bracket)
        counts[depth] = 0
        depth += 1
    }

    private mutating func close(_ bracket: UInt8) {
        depth -= 1
        if counts[depth] > 0 { newline() }
        put(bracket)
    }

    /// The comma after the previous member or element, and the line break before the next.
    private mutating func separate() {
        if counts[depth - 1] > 0 { put(UInt8(ascii: ",")) }
        counts[depth - 1] += 1
        newline()
    }

    private mutating func newline() {
        let indent = 2 * depth
        reserve(1 + indent)
        base[count] = UInt8(ascii: "\n")
        (base + count + 1).update(repeating: UInt8(ascii: " "), count: indent)
        count += 1 + indent
    }

    private mutating func flush() {
        stream.write(UnsafeRawBufferPointer(start: base, count: count))
        count = 0
    }

    /// Makes room for `extra` more bytes: writes the buffer out, and grows it for a longer run.
    private mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        flush()
        guard extra > capacity else { return }
        base.deallocate()
        base = .allocate(capacity: extra)
        capacity = extra
    }

    private mutating func put(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    private mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else { return }
        reserve(bytes.count)
        (base + count).update(from: source, count: bytes.count)
        count += bytes.count
    }

    private mutating func put(_ text: String) {
        if text.utf8.withContiguousStorageIfAvailable({ put($0) }) == nil { put(Array(text.utf8)) }
    }

    private mutating func put(_ text: StaticString) {
        text.withUTF8Buffer { put($0) }
    }

    private mutating func put(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { put($0) }
    }
}
