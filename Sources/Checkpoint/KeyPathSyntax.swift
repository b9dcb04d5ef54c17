/// The text form of key paths, shared by every reader of paths (`value(atPath:)`, key globs,
/// the CLI): keys joined with `/`, and within a key a backslash makes the next character literal.
///
/// Keys may contain `/` (safetensors names such as `enc/w`) or glob characters, so printed paths
/// escape `\`, `/`, `*` and `?` (`enc\/w`), and pasting a printed path back selects exactly that key.
package enum KeyPathSyntax {
    /// Characters a printed key escapes.
    package static func needsEscape(_ character: Character) -> Bool {
        character == "/" || character == "\\" || character == "*" || character == "?"
    }

    /// A key as one component of a printed path.
    package static func escape(_ key: String) -> String {
        guard key.contains(where: needsEscape) else { return key }
        var escaped = ""
        for character in key {
            if needsEscape(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }

    /// A path's components, split at each `/` that no backslash escapes, still escaped. Empty
    /// components (`a//b`, a leading or trailing `/`) are dropped.
    package static func components(_ path: String) -> [Substring] {
        var result: [Substring] = []
        var start = path.startIndex
        var index = path.startIndex
        while index < path.endIndex {
            let character = path[index]
            if character == "\\" {
                index = path.index(after: index)
                if index < path.endIndex { index = path.index(after: index) }
                continue
            }
            if character == "/" {
                if start < index { result.append(path[start..<index]) }
                start = path.index(after: index)
            }
            index = path.index(after: index)
        }
        if start < path.endIndex { result.append(path[start...]) }
        return result
    }

    /// A component with its escapes removed: `\x` is `x` for any character, and a lone trailing
    /// backslash is itself.
    package static func unescape(_ component: Substring) -> String {
        guard component.contains("\\") else { return String(component) }
        var key = ""
        var escaping = false
        for character in component {
            if escaping {
                key.append(character)
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else {
                key.append(character)
            }
        }
        if escaping { key.append("\\") }
        return key
    }

    /// The keys a path names, unescaped.
    package static func keys(_ path: String) -> [String] {
        components(path).map(unescape)
    }
}
