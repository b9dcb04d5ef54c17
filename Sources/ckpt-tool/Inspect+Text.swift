import Checkpoint
import CheckpointTools

/// The human-readable tree printed by `ckpt-tool inspect`.
struct InspectText {
    let style: Terminal.Style
    /// At most this many children of a container; 0 for all.
    let maxItems: Int
    /// At most this many lines of `__metadata__` pairs and tree together; 0 for all. A tree shared
    /// through the memo can have a million places from a few bytes, and each line costs memory
    /// until the text is written.
    var maxLines = 0
    let selection: InspectSelection
    let inspected: InspectedFile

    private var summary: TreeSummary { inspected.summary }

    func render() -> String {
        let budget = LineBudget(maxLines)
        var lines: [String] = []
        var heading = style.key(inspected.file) + style.dim("  \(inspected.contents.format.rawValue)")
        if let fileBytes = inspected.fileBytes { heading += style.dim("  \(ByteCount.text(fileBytes)) on disk") }
        lines.append(heading)
        if let note = inspected.formatNote { lines.append(style.dim("note: \(note)")) }
        if let sharding = inspected.sharding { lines += sharding.lines(style: style) }
        if let metadata = inspected.contents.metadata {
            lines.append(style.key("__metadata__") + " (\(count(metadata.count, "pair")))")
            for (key, value) in metadata {
                guard budget.take() else {
                    budget.skipped += 1
                    continue
                }
                lines.append("  \(style.key(keyLabel(.string(key)))): " + style.value(pythonRepr(shortened(value))))
            }
        }
        let tree = inspected.tree
        lines.append(describe(tree, path: []))
        var path: [StateKey] = []
        appendChildren(of: tree, path: &path, indent: "  ", to: &lines, budget: budget)
        if budget.skipped > 0 {
            lines.append(style.dim("… \(budget.skipped.grouped) more lines not shown (--max-lines \(maxLines); 0 shows all)"))
        }
        for optimizer in inspected.optimizers {
            lines.append("")
            appendOptimizer(optimizer, to: &lines)
        }
        lines.append("")
        var parameters = "\(summary.parameters.grouped) \(Plural.noun(summary.parameters, "parameter"))"
        if summary.elements > summary.parameters {
            parameters += " (+\((summary.elements - summary.parameters).grouped) in optimizer state)"
        }
        lines.append(style.key(selection.glob == nil ? "totals: " : "totals (filtered): ")
            + "\(count(summary.tensorCount, "tensor")), \(parameters), "
            + "\(count(summary.storageCount, "distinct storage")), "
            + "tensor bytes \(ByteCount.text(summary.tensorBytes)), "
            + "storage bytes \(ByteCount.text(summary.storageBytes))")
        let devices = inspected.contents.devices
        if devices.contains(where: { $0 != "cpu" }) {
            let elsewhere = devices.filter { $0 != "cpu" }.joined(separator: " or ")
            lines.append(style.key("devices: ") + devices.joined(separator: ", ")
                + "; torch.load(f) fails where \(elsewhere) is absent: torch.load(f, map_location=\"cpu\") loads it anywhere")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A long string cut to 80 characters, as a `str` node shows it.
    private func shortened(_ text: String) -> String {
        text.count > 80 ? String(text.prefix(77)) + "..." : text
    }

    /// The printed children of a node, with their positions among all its children (which tell a
    /// dict's items from its attributes).
    private func children(of value: StateValue, path: [StateKey]) -> [(position: Int, key: StateKey, value: StateValue)] {
        // A path, date or dtype prints as its value, not as its attributes.
        if value.isTextRecord { return [] }
        let all = InspectSelection.children(of: value).enumerated().map { (position: $0.offset, key: $0.element.key, value: $0.element.value) }
        guard selection.glob != nil, !selection.selects(path) else { return all }
        return all.filter { selection.leadsToSelection($0.value, path: path + [$0.key]) }
    }

    /// `[2, 3]`, as Swift prints an array of Int, without its generic printing (about a
    /// microsecond a number, a second for the million dimensions a tree may hold at the caps).
    static func list(_ numbers: [Int]) -> String {
        var text = "["
        for (index, number) in numbers.enumerated() {
            if index > 0 { text += ", " }
            text += String(number)
        }
        return text + "]"
    }

    /// A child's label: `key`, `@attribute` or `[index]`. Made only for the children printed: a
    /// list of a million elements prints a hundred.
    private func label(of key: StateKey, at position: Int, in value: StateValue) -> String {
        switch value {
        case .dict(let dict): return position < dict.items.count ? keyLabel(key) : "@\(key)"
        case .object, .record: return key.description
        default: return "[\(key)]"
        }
    }

    /// A dict key as the tree prints it: an int key as its digits, a str key bare unless it would
    /// read as something else, in Python's repr (`'0'` beside `0`, `''`, `'a b'`, `'@x'` beside an
    /// attribute), so an int key and a str key never print alike. A bare key escapes `/`, `*`, `?`
    /// and `\` as key paths do (`enc\/w`), so it pastes into `--select` and reads as one key.
    private func keyLabel(_ key: StateKey) -> String {
        switch key {
        case .string(let text):
            // `-?[0-9]+` without a Regex, which is parsed again at every call (5% of an inspect of
            // 64 ranks).
            let digits = text.utf8.first == UInt8(ascii: "-") ? text.utf8.dropFirst() : text.utf8[...]
            let readsAsInt = !digits.isEmpty && digits.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            let needsQuotes = text.isEmpty || readsAsInt || text.hasPrefix("@") || text.hasPrefix("'")
                || text.contains(where: { $0.isWhitespace || $0.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } })
            return needsQuotes ? pythonRepr(text) : key.pathComponent
        case .int(let value): return String(value)
        }
    }

    private func appendChildren(
        of value: StateValue, path: inout [StateKey], indent: String, to lines: inout [String], budget: LineBudget
    ) {
        guard selection.expands(path) else { return }
        let all = children(of: value, path: path)
        let shown = maxItems == 0 ? all.count : min(maxItems, all.count)
        for (position, key, child) in all.prefix(shown) {
            path.append(key)
            defer { path.removeLast() }
            guard budget.take() else {
                budget.skipped += countLines(below: child, path: &path)
                continue
            }
            lines.append("\(indent)\(style.key(label(of: key, at: position, in: value))): \(describe(child, path: path))")
            appendChildren(of: child, path: &path, indent: indent + "  ", to: &lines, budget: budget)
        }
        if all.count > shown {
            guard budget.take() else {
                budget.skipped += 1
                return
            }
            lines.append(indent + style.dim("… \(all.count - shown) more (--max-items \(maxItems); 0 shows all)"))
        }
    }

    /// The lines `value` (at `path`) and its children would take, counted without rendering them,
    /// for the `--max-lines` note: describing each place would cost as much as printing it.
    private func countLines(below value: StateValue, path: inout [StateKey]) -> Int {
        guard selection.expands(path), !(value.isTextRecord) else { return 1 }
        var all = value.children
        if selection.glob != nil, !selection.selects(path) {
            all = all.filter { path.append($0.key); defer { path.removeLast() }; return selection.leadsToSelection($0.value, path: path) }
        }
        let shown = maxItems == 0 ? all.count : min(maxItems, all.count)
        var lines = 1 + (all.count > shown ? 1 : 0)
        for (key, child) in all.prefix(shown) {
            path.append(key)
            lines += countLines(below: child, path: &path)
            path.removeLast()
        }
        return lines
    }

    /// `optimizer (at optimizer): 2 groups, ...` and one line per group with its hyperparameters.
    private func appendOptimizer(_ optimizer: OptimizerSummary, to lines: inout [String]) {
        let place = optimizer.path.isEmpty ? "the root" : optimizer.path.pathString
        var head = style.key("optimizer at \(place): ")
            + "\(count(optimizer.groups.count, "group")), \(count(optimizer.parameterCount, "parameter")), "
            + "\(optimizer.parametersWithState) with state"
        if !optimizer.stateKeys.isEmpty {
            head += "; state keys " + optimizer.stateKeys.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        }
        if let range = optimizer.stepRange {
            head += "; step " + (range.lowerBound == range.upperBound ? number(range.lowerBound) : "\(number(range.lowerBound))…\(number(range.upperBound))")
        }
        if optimizer.unreadSteps > 0 { head += " (\(count(optimizer.unreadSteps, "step")) not read)" }
        head += "; \(count(optimizer.stateTensorCount, "state tensor")), \(ByteCount.text(optimizer.stateTensorBytes))"
        lines.append(head)
        for (index, group) in optimizer.groups.enumerated() {
            let options = group.hyperparameters.map { "\($0.key)=" + style.value(option($0.value)) }.joined(separator: " ")
            var line = "  group \(index): \(count(group.parameterIDs.count, "parameter"))"
            if let names = group.parameterNames { line += " (" + names.joined(separator: ", ") + ")" }
            lines.append(line + (options.isEmpty ? "" : "  " + options))
        }
    }

    /// A hyperparameter as Python prints it (`0.01`, `None`, `(0.9, 0.999)`).
    private func option(_ value: StateValue) -> String {
        switch value {
        case .float(let number): return pythonFloat(number)
        case .int(let integer): return String(integer)
        case .bool(let flag): return flag ? "True" : "False"
        case .none: return "None"
        case .string(let text): return pythonRepr(text)
        case .tuple(let elements): return "(" + elements.map(option).joined(separator: ", ") + (elements.count == 1 ? ",)" : ")")
        case .list(let elements): return "[" + elements.map(option).joined(separator: ", ") + "]"
        default: return StateDiff.describe(value)
        }
    }

    /// A step count: an integer when it is one.
    private func number(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : pythonFloat(value)
    }

    private func count(_ n: Int, _ noun: String) -> String { Plural.count(n, noun) }

    /// One line for a node at `path`: its Python type, and its value for scalars.
    private func describe(_ value: StateValue, path: [StateKey]) -> String {
        let type = style.type(value.pythonTypeName)
        switch value {
        case .dict(let dict):
            var parts = [count(dict.items.count, "item")]
            if !dict.attributes.isEmpty { parts.append(count(dict.attributes.count, "attribute")) }
            return "\(type) (\(parts.joined(separator: ", ")))"
        case .list(let elements), .tuple(let elements), .set(let elements):
            return "\(type) (\(count(elements.count, "item")))"
        case .tensor(let tensor):
            var text = "\(type) " + style.tensor("\(tensor.dtype.rawValue) \(Self.list(tensor.shape))") + " \(ByteCount.text(tensor.byteCount))"
            if tensor.numpyOrigin?.kind == .scalar, let element = scalarText(tensor) { text += " = " + style.value(element) }
            if tensor.requiresGrad { text += " requires_grad" }
            if let device = inspected.contents.device(of: tensor), device != "cpu" { text += " on " + style.value(device) }
            if let chunks = inspected.sharding?.chunks[path], chunks > 1 { text += " in \(chunks) chunks" }
            if !tensor.isContiguous || tensor.storageOffset != 0 {
                text += style.dim(" view(strides \(Self.list(tensor.strides)), offset \(tensor.storageOffset))")
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
        case .object(let object):
            guard object.construction != .reference else {
                return style.type(object.qualifiedName) + style.dim(" (a global, named but not called)")
            }
            let call = object.construction == .reduce ? "REDUCE" : "NEWOBJ"
            let parts = object.parts.map(\.key)
            return style.type(object.summary)
                + style.dim(" (Python object kept as data; \(call)\(parts.isEmpty ? "" : ": " + parts.joined(separator: ", ")))")
        case .record(let record):
            if let text = record.text { return "\(type) = " + style.value(pythonRepr(text)) }
            return "\(type) (\(count(record.attributes.count, "attribute")))"
        }
    }

    /// A 0-dim tensor's element as Python prints it (the few bytes of a numpy scalar are read).
    private func scalarText(_ tensor: Tensor) -> String? {
        guard tensor.numel == 1, let bytes = try? tensor.contiguousBytes() else { return nil }
        return bytes.withUnsafeBytes { raw in
            switch Tensor.element(raw, at: 0, of: tensor.dtype) {
            case .signed(let value): return String(value)
            case .unsigned(let value): return tensor.dtype == .bool ? (value != 0 ? "True" : "False") : String(value)
            case .real(let value): return pythonFloat(value)
            case .complex(let real, let imaginary):
                return "(\(pythonFloat(real))\(imaginary.sign == .minus ? "-" : "+")\(pythonFloat(abs(imaginary)))j)"
            }
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

/// What is left of `--max-lines`, shared by the parts of one file's text.
private final class LineBudget {
    private var left: Int
    /// Lines not printed because the budget ran out.
    var skipped = 0

    /// A budget of `maxLines` lines; 0 for no limit.
    init(_ maxLines: Int) { left = maxLines == 0 ? .max : maxLines }

    /// Spends a line; false once none is left (the caller counts what it skips).
    func take() -> Bool {
        guard left > 0 else { return false }
        left -= 1
        return true
    }
}

extension StateValue {
    /// A path, date or dtype record, which prints as its value, not as its attributes.
    fileprivate var isTextRecord: Bool {
        if case .record(let record) = self, record.text != nil { return true }
        return false
    }
}
