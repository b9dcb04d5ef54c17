extension OrderedJSON {
    /// How ``serialized(_:)`` lays a value out.
    package enum Layout: Sendable {
        /// No whitespace, `{"a":[1,2]}`, as serde_json writes: ckpt manifests and safetensors headers.
        case compact
        /// One line with a space after each `,` and `:`, `{"a": [1, 2]}`.
        case singleLine
        /// A member or element a line, indented two spaces a level, `"a" : 1`, empty containers as
        /// `{}` and `[]`: JSONSerialization's pretty printing, which ckpt-tool's `--json` documents began with.
        case indented
    }

    /// Compact JSON text (``Layout/compact``).
    var serialized: String { serialized(.compact) }

    /// The value as JSON text, without a trailing newline.
    package func serialized(_ layout: Layout) -> String {
        var bytes: [UInt8] = []
        write(to: &bytes, layout: layout, level: 0)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `text` as a JSON string literal, escaped as serde_json escapes: `"`, `\` and control
    /// characters (`\n`, `\r`, `\t`, `\b`, `\f`, the others `\u00xx`); everything else is its UTF-8.
    ///
    /// The package's one string escaper: file formats, ckpt-tool's `--json` documents and rename
    /// rules all quote through it, so a name is written the same way everywhere.
    package static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Control characters, `"` and `\` are single bytes in UTF-8 (no multi-byte sequence contains
        // a byte below 0x80), so escaping byte by byte is escaping character by character.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: text.utf8)
        } else {
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
                case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
                case UInt8(ascii: "\r"): out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
                case UInt8(ascii: "\t"): out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
                case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
                case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    out += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
                default: out.append(byte)
                }
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `text` as a JSON string literal (see ``appendQuoted(_:to:)``).
    package static func quoted(_ text: String) -> String {
        var bytes: [UInt8] = []
        appendQuoted(text, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A JSON number for an integer.
    static func integer<T: BinaryInteger>(_ value: T) -> OrderedJSON { .number(String(value)) }

    private func write(to out: inout [UInt8], layout: Layout, level: Int) {
        switch self {
        case .object(let members):
            Self.writeContainer(members.count, open: "{", close: "}", layout: layout, level: level, to: &out) { index, out in
                Self.appendQuoted(members[index].key, to: &out)
                switch layout {
                case .compact: out.append(UInt8(ascii: ":"))
                case .singleLine: out += [UInt8(ascii: ":"), UInt8(ascii: " ")]
                case .indented: out += [UInt8(ascii: " "), UInt8(ascii: ":"), UInt8(ascii: " ")]
                }
                members[index].value.write(to: &out, layout: layout, level: level + 1)
            }
        case .array(let elements):
            Self.writeContainer(elements.count, open: "[", close: "]", layout: layout, level: level, to: &out) { index, out in
                elements[index].write(to: &out, layout: layout, level: level + 1)
            }
        case .string(let text): Self.appendQuoted(text, to: &out)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .null: out.append(contentsOf: "null".utf8)
        }
    }

    /// Brackets, separators and (indented) line breaks around `count` members or elements.
    private static func writeContainer(
        _ count: Int, open: Unicode.Scalar, close: Unicode.Scalar, layout: Layout, level: Int, to out: inout [UInt8],
        element: (Int, inout [UInt8]) -> Void
    ) {
        func newline(indent: Int) {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * indent))
        }
        out.append(UInt8(ascii: open))
        guard count > 0 else { return out.append(UInt8(ascii: close)) }
        for index in 0..<count {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            switch layout {
            case .compact: break
            case .singleLine: if index > 0 { out.append(UInt8(ascii: " ")) }
            case .indented: newline(indent: level + 1)
            }
            element(index, &out)
        }
        if layout == .indented { newline(indent: level) }
        out.append(UInt8(ascii: close))
    }
}
