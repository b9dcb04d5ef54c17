import Checkpoint

/// The human-readable tree printed by `ckpt-tool inspect`.
struct InspectText {
    let style: Terminal.Style
    let summary: TreeSummary
    let maxItems: Int

    func render(_ tree: StateValue, file: String, fileBytes: Int?, format: CheckpointFormat?) -> String {
        var lines: [String] = []
        var heading = style.key(file)
        if let format { heading += style.dim("  \(format.rawValue)") }
        if let fileBytes { heading += style.dim("  \(TreeSummary.formatBytes(fileBytes)) on disk") }
        lines.append(heading)
        lines.append(describe(tree))
        appendChildren(of: tree, indent: "  ", to: &lines)
        lines.append("")
        lines.append(style.key("totals: ")
            + "\(summary.tensorCount) tensor\(summary.tensorCount == 1 ? "" : "s"), "
            + "\(summary.storageIndex.count) distinct storage\(summary.storageIndex.count == 1 ? "" : "s"), "
            + "tensor bytes \(TreeSummary.formatBytes(summary.tensorBytes)), "
            + "storage bytes \(TreeSummary.formatBytes(summary.storageBytes))")
        return lines.joined(separator: "\n") + "\n"
    }

    private func children(of value: StateValue) -> [(label: String, value: StateValue)] {
        switch value {
        case .dict(let dict):
            return dict.items.map { (keyLabel($0.key), $0.value) } + dict.attributes.map { ("@\($0.key)", $0.value) }
        case .list(let elements), .tuple(let elements), .set(let elements):
            return elements.enumerated().map { ("[\($0.offset)]", $0.element) }
        default:
            return []
        }
    }

    private func keyLabel(_ key: StateKey) -> String {
        switch key {
        case .string(let text): return text.isEmpty || text.contains(where: \.isWhitespace) ? pythonRepr(text) : text
        case .int(let value): return String(value)
        }
    }

    private func appendChildren(of value: StateValue, indent: String, to lines: inout [String]) {
        let all = children(of: value)
        for (label, child) in all.prefix(maxItems) {
            lines.append("\(indent)\(style.key(label)): \(describe(child))")
            appendChildren(of: child, indent: indent + "  ", to: &lines)
        }
        if all.count > maxItems {
            lines.append(indent + style.dim("… \(all.count - maxItems) more (--max-items)"))
        }
    }

    private func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

    /// One line for a node: its Python type, and its value for scalars.
    private func describe(_ value: StateValue) -> String {
        let type = style.type(value.pythonTypeName)
        switch value {
        case .dict(let dict):
            var parts = [count(dict.items.count, "item")]
            if !dict.attributes.isEmpty { parts.append(count(dict.attributes.count, "attribute")) }
            return "\(type) (\(parts.joined(separator: ", ")))"
        case .list(let elements), .tuple(let elements), .set(let elements):
            return "\(type) (\(count(elements.count, "item")))"
        case .tensor(let tensor):
            var text = "\(type) " + style.tensor("\(tensor.dtype.rawValue) \(tensor.shape)") + " \(TreeSummary.formatBytes(tensor.byteCount))"
            if tensor.requiresGrad { text += " requires_grad" }
            if !tensor.isContiguous || tensor.storageOffset != 0 {
                text += style.dim(" view(strides \(tensor.strides), offset \(tensor.storageOffset))")
            }
            let id = ObjectIdentifier(tensor.storage)
            if let index = summary.storageIndex[id], let views = summary.viewsPerStorage[id], views > 1 {
                text += style.dim(" storage #\(index) shared by \(views) tensors")
            }
            return text
        case .string(let text):
            let shown = text.count > 80 ? String(text.prefix(77)) + "..." : text
            return "\(type) = " + style.value(pythonRepr(shown))
        case .int(let integer): return "\(type) = " + style.value(String(integer))
        case .float(let number): return "\(type) = " + style.value(pythonFloat(number))
        case .bool(let flag): return "\(type) = " + style.value(flag ? "True" : "False")
        case .none: return "\(type) = " + style.value("None")
        case .bytes(let bytes), .bytearray(let bytes): return "\(type) (\(count(bytes.count, "byte")))"
        case .size(let dims): return "\(type) = " + style.value("[\(dims.map(String.init).joined(separator: ", "))]")
        case .device(let name): return "\(type) = " + style.value(name)
        case .dtype(let dtype): return "\(type) = " + style.value("torch.\(dtype.rawValue)")
        case .complex(let real, let imaginary):
            return "\(type) = " + style.value("(\(pythonFloat(real))\(imaginary.sign == .minus ? "-" : "+")\(pythonFloat(abs(imaginary)))j)")
        }
    }

    private func pythonFloat(_ number: Double) -> String {
        if number.isNaN { return "nan" }
        if number.isInfinite { return number < 0 ? "-inf" : "inf" }
        return "\(number)"
    }

    private func pythonRepr(_ text: String) -> String {
        var out = "'"
        for scalar in text.unicodeScalars {
            switch scalar {
            case "'": out += "\\'"
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += String(format: "\\x%02x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "'"
    }
}
