import Checkpoint

/// A pattern over key paths (`model/encoder.layer.*.weight`, `optimizer/state/**/sum`).
///
/// A key path joins a value's keys with `/`; dots belong to names. In a pattern, `*` matches any
/// run of characters within one key, `?` one character within one key, and a component that is
/// exactly `**` matches zero or more whole keys. A backslash makes the next character literal, so
/// `enc\/w` matches the one key `enc/w` (as printed paths show it) and `\*` a key's own `*`.
public struct KeyGlob: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written (alternatives joined with `, `).
    public let pattern: String
    /// Each alternative's components; a path matches when one alternative matches it.
    private let alternatives: [[Component]]

    /// One `/`-separated part of a pattern.
    private enum Component: Hashable, Sendable {
        /// `**`: zero or more whole keys.
        case anyKeys
        /// Matches one key.
        case key([Token])
    }

    private enum Token: Hashable, Sendable {
        case literal(Unicode.Scalar)
        /// `*`: any run of characters within the key.
        case anyRun
        /// `?`: one character.
        case anyOne
    }

    /// Parses a pattern.
    ///
    /// - Parameter pattern: Components separated by `/`; a backslash makes the next character
    ///   literal (`enc\/w` is the one key `enc/w`, `a\*` the key `a*`).
    public init(_ pattern: String) {
        self.pattern = pattern
        alternatives = [Self.parse(pattern)]
    }

    /// A pattern that matches a key path when any of several patterns does (repeated `--select`).
    ///
    /// - Parameter patterns: The alternatives, each as for ``init(_:)``.
    public init(anyOf patterns: [String]) {
        pattern = patterns.joined(separator: ", ")
        alternatives = patterns.map(Self.parse)
    }

    private static func parse(_ pattern: String) -> [Component] {
        KeyPathSyntax.components(pattern).map { component in
            if component == "**" { return .anyKeys }
            var tokens: [Token] = []
            var escaping = false
            for scalar in component.unicodeScalars {
                if escaping {
                    tokens.append(.literal(scalar))
                    escaping = false
                } else if scalar == "\\" {
                    escaping = true
                } else {
                    tokens.append(scalar == "*" ? .anyRun : scalar == "?" ? .anyOne : .literal(scalar))
                }
            }
            if escaping { tokens.append(.literal("\\")) }
            return .key(tokens)
        }
    }

    public var description: String { pattern }

    /// True if the key path matches the whole pattern.
    ///
    /// - Parameter path: The keys from the root.
    /// - Returns: Whether every key is consumed by the pattern.
    public func matches(_ path: [StateKey]) -> Bool {
        matches(path.map(\.description))
    }

    /// True if the `/`-joined key path matches the whole pattern.
    ///
    /// - Parameter path: Keys joined with `/`, escaped as printed paths are (`enc\/w`).
    /// - Returns: Whether every key is consumed by the pattern.
    public func matches(_ path: String) -> Bool {
        matches(KeyPathSyntax.keys(path))
    }

    /// True if some extension of `path` could still match (for pruning a tree walk).
    public func couldMatchBelow(_ path: [StateKey]) -> Bool {
        let keys = path.map(\.description)
        return alternatives.contains { components in
            var memo: [Int: Bool] = [:]
            return Self.prefix(components, keys, 0, 0, &memo)
        }
    }

    private func matches(_ keys: [String]) -> Bool {
        alternatives.contains { components in
            var memo: [Int: Bool] = [:]
            return Self.match(components, keys, 0, 0, &memo)
        }
    }

    // Dynamic programming over (key index, component index); memoized so `**/**/...` stays linear-ish.
    private static func match(_ components: [Component], _ keys: [String], _ k: Int, _ c: Int, _ memo: inout [Int: Bool]) -> Bool {
        let slot = k * (components.count + 1) + c
        if let known = memo[slot] { return known }
        let result: Bool
        if c == components.count {
            result = k == keys.count
        } else if case .key(let tokens) = components[c] {
            result = k < keys.count && Self.wildcard(tokens, keys[k]) && match(components, keys, k + 1, c + 1, &memo)
        } else {
            result = match(components, keys, k, c + 1, &memo) || (k < keys.count && match(components, keys, k + 1, c, &memo))
        }
        memo[slot] = result
        return result
    }

    private static func prefix(_ components: [Component], _ keys: [String], _ k: Int, _ c: Int, _ memo: inout [Int: Bool]) -> Bool {
        let slot = k * (components.count + 1) + c
        if let known = memo[slot] { return known }
        let result: Bool
        if k == keys.count {
            result = true
        } else if c == components.count {
            result = false
        } else if case .key(let tokens) = components[c] {
            result = Self.wildcard(tokens, keys[k]) && prefix(components, keys, k + 1, c + 1, &memo)
        } else {
            result = true
        }
        memo[slot] = result
        return result
    }

    /// `*` and `?` within one key, iteratively with backtracking to the last star (no recursion).
    private static func wildcard(_ p: [Token], _ text: String) -> Bool {
        let t = Array(text.unicodeScalars)
        var pi = 0, ti = 0
        var star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == .anyOne || p[pi] == .literal(t[ti]) {
                pi += 1
                ti += 1
            } else if pi < p.count, p[pi] == .anyRun {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == .anyRun { pi += 1 }
        return pi == p.count
    }
}
