import Checkpoint

/// A pattern over key paths (`model/encoder.layer.*.weight`, `optimizer/state/**/sum`).
///
/// A key path joins a value's keys with `/`; dots belong to names. In a pattern, `*` matches any
/// run of characters within one key, `?` one character within one key, and a component that is
/// exactly `**` matches zero or more whole keys.
public struct KeyGlob: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written.
    public let pattern: String
    private let components: [Substring]

    /// Parses a pattern.
    ///
    /// - Parameter pattern: Components separated by `/`.
    public init(_ pattern: String) {
        self.pattern = pattern
        components = pattern.split(separator: "/", omittingEmptySubsequences: true)
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
    public func matches(_ path: String) -> Bool {
        matches(path.split(separator: "/", omittingEmptySubsequences: true).map(String.init))
    }

    /// True if some extension of `path` could still match (for pruning a tree walk).
    public func couldMatchBelow(_ path: [StateKey]) -> Bool {
        let keys = path.map(\.description)
        var memo: [Int: Bool] = [:]
        return prefix(keys, 0, 0, &memo)
    }

    private func matches(_ keys: [String]) -> Bool {
        var memo: [Int: Bool] = [:]
        return match(keys, 0, 0, &memo)
    }

    // Dynamic programming over (key index, component index); memoized so `**/**/...` stays linear-ish.
    private func match(_ keys: [String], _ k: Int, _ c: Int, _ memo: inout [Int: Bool]) -> Bool {
        let slot = k * (components.count + 1) + c
        if let known = memo[slot] { return known }
        let result: Bool
        if c == components.count {
            result = k == keys.count
        } else if components[c] == "**" {
            result = match(keys, k, c + 1, &memo) || (k < keys.count && match(keys, k + 1, c, &memo))
        } else {
            result = k < keys.count && Self.wildcard(components[c], keys[k]) && match(keys, k + 1, c + 1, &memo)
        }
        memo[slot] = result
        return result
    }

    private func prefix(_ keys: [String], _ k: Int, _ c: Int, _ memo: inout [Int: Bool]) -> Bool {
        let slot = k * (components.count + 1) + c
        if let known = memo[slot] { return known }
        let result: Bool
        if k == keys.count {
            result = true
        } else if c == components.count {
            result = false
        } else if components[c] == "**" {
            result = true
        } else {
            result = Self.wildcard(components[c], keys[k]) && prefix(keys, k + 1, c + 1, &memo)
        }
        memo[slot] = result
        return result
    }

    /// `*` and `?` within one key, iteratively with backtracking to the last star (no recursion).
    static func wildcard(_ pattern: Substring, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars)
        let t = Array(text.unicodeScalars)
        var pi = 0, ti = 0
        var star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if pi < p.count, p[pi] == "*" {
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
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
