/// A minimal JSON emitter with exact, deterministic number formatting.
///
/// Hand-written because Foundation's JSONSerialization neither keeps key order nor guarantees
/// round-trip float formatting (-0.0, subnormals) on every platform, and the manifest must be
/// byte-for-byte reproducible.
struct JSONText {
    private(set) var text = ""

    mutating func raw(_ s: String) { text += s }

    mutating func string(_ s: String) {
        text += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }

    mutating func int<I: BinaryInteger>(_ value: I) { text += String(value) }

    /// Finite doubles as JSON numbers in Swift's shortest round-trip form; NaN and infinities as
    /// the strings `"nan"`, `"inf"`, `"-inf"`, which JSON has no numbers for.
    mutating func double(_ value: Double) {
        if value.isNaN { string("nan") } else if value == .infinity { string("inf") } else if value == -.infinity {
            string("-inf")
        } else {
            text += value.description
        }
    }

    mutating func bool(_ value: Bool) { text += value ? "true" : "false" }

    /// Writes `[a, b, c]`, each element by `body`.
    mutating func array<C: Collection>(_ items: C, _ body: (inout JSONText, C.Element) throws -> Void) rethrows {
        text += "["
        var first = true
        for item in items {
            if !first { text += "," }
            first = false
            try body(&self, item)
        }
        text += "]"
    }

    /// Writes `{"k": v, ...}` in the order given.
    mutating func object(_ body: (inout ObjectWriter) throws -> Void) rethrows {
        var writer = ObjectWriter(json: self)
        text = ""
        writer.json.text += "{"
        try body(&writer)
        writer.json.text += "}"
        self = writer.json
    }

    struct ObjectWriter {
        var json: JSONText
        var first = true

        mutating func field(_ name: String, _ body: (inout JSONText) throws -> Void) rethrows {
            if !first { json.text += "," }
            first = false
            json.string(name)
            json.text += ":"
            try body(&json)
        }
    }
}
