import Checkpoint
import Foundation

/// Declarative renames for parameter names and model state-dict keys, carried across model
/// versions: exact renames, prefix rewrites, regular expressions with capture groups, and drops.
///
/// Within a map the rules are tried in order and the first that matches a name wins; a name no rule
/// matches is kept. Maps compose (``then(_:)``, or `"maps"` in a map file): each map is applied to
/// the names the previous one produced. Applying a map to a set of names (``apply(to:)``) fails,
/// naming the rule, when two names would end with one target, or when a strict map has a rule that
/// applied to no name.
///
/// Regular expressions are Foundation's `NSRegularExpression` (ICU syntax), matched against the
/// whole name; replacement templates use `$0`…`$9` for groups and `\$` for a literal dollar sign.
/// (Unchecked Sendable: NSRegularExpression is immutable and documented as safe to share between threads.)
public struct RenameMap: @unchecked Sendable {
    /// One rule of a map.
    public enum Rule: Equatable, Sendable {
        /// Renames the name equal to the first string to the second.
        case exact(String, to: String)
        /// Replaces a leading first string with the second (`encoder.` → `model.encoder.`).
        case prefix(String, to: String)
        /// Renames a name the pattern matches as a whole, expanding `$1` in the template.
        case regex(String, to: String)
        /// Drops every name the pattern matches as a whole.
        case drop(String)

        /// The rule as it is written in a map file, `{"exact": "fc.weight", "to": "head.weight"}`.
        public var json: String {
            switch self {
            case .exact(let from, let to): return "{\"exact\": \(OrderedJSON.quoted(from)), \"to\": \(OrderedJSON.quoted(to))}"
            case .prefix(let from, let to): return "{\"prefix\": \(OrderedJSON.quoted(from)), \"to\": \(OrderedJSON.quoted(to))}"
            case .regex(let pattern, let to): return "{\"regex\": \(OrderedJSON.quoted(pattern)), \"to\": \(OrderedJSON.quoted(to))}"
            case .drop(let pattern): return "{\"drop\": \(OrderedJSON.quoted(pattern))}"
            }
        }
    }

    /// What a map did with one name.
    public struct Outcome: Equatable, Sendable {
        /// The name before renaming.
        public var name: String
        /// The name after renaming, or nil when a rule dropped it.
        public var result: String?
        /// The rules that applied, one per map at most, as `map M rule N {json}`.
        public var rules: [String]

        /// True when the name changed or was dropped.
        public var isChanged: Bool { result != name }
    }

    struct CompiledRule {
        var rule: Rule
        var regex: NSRegularExpression?
    }

    /// One map of a composition: rules tried in order, first match wins.
    struct Stage {
        var rules: [CompiledRule]
        var strict: Bool
    }

    let stages: [Stage]

    /// The map that keeps every name.
    public static let identity = RenameMap(stages: [])

    init(stages: [Stage]) { self.stages = stages }

    /// Creates a map from rules.
    ///
    /// - Parameters:
    ///   - rules: The rules, tried in order.
    ///   - strict: Make ``apply(to:)`` fail when a rule applies to no name.
    /// - Throws: ``RenameError`` `.invalidMap`, naming the rule, for an invalid regular expression,
    ///   a template that refers to a group the pattern does not have, or a template that refers to
    ///   one as `\1` (Python's and sed's syntax; write `$1`).
    public init(_ rules: [Rule], strict: Bool = false) throws {
        try self.init(rules, strict: strict, stageIndex: nil)
    }

    /// `stageIndex` labels the rules in errors (`map 1 rule 0`); nil for a map on its own (`rule 0`).
    init(_ rules: [Rule], strict: Bool, stageIndex: Int?) throws {
        var compiled: [CompiledRule] = []
        for (index, rule) in rules.enumerated() {
            let reference = RenameMap.reference(stage: stageIndex, rule: index, rule)
            switch rule {
            case .exact, .prefix:
                compiled.append(CompiledRule(rule: rule, regex: nil))
            case .regex(let pattern, let template):
                let regex = try RenameMap.compile(pattern, reference: reference)
                try RenameMap.checkTemplate(template, groups: regex.numberOfCaptureGroups, reference: reference)
                compiled.append(CompiledRule(rule: rule, regex: regex))
            case .drop(let pattern):
                compiled.append(CompiledRule(rule: rule, regex: try RenameMap.compile(pattern, reference: reference)))
            }
        }
        stages = [Stage(rules: compiled, strict: strict)]
    }

    /// Creates the composition of maps, applied in order.
    ///
    /// - Parameter maps: The maps; each renames what the previous one produced.
    public init(composing maps: [RenameMap]) {
        stages = maps.flatMap(\.stages)
    }

    /// This map followed by another, which renames what this one produced.
    ///
    /// - Parameter next: The map to apply second.
    /// - Returns: The composition.
    public func then(_ next: RenameMap) -> RenameMap {
        RenameMap(composing: [self, next])
    }

    /// The rules of each composed map, in order.
    public var rules: [[Rule]] { stages.map { $0.rules.map(\.rule) } }

    /// What the map does with one name, without the checks of ``apply(to:)``.
    ///
    /// - Parameter name: A parameter name or state-dict key.
    /// - Returns: The outcome; its `result` is nil when a rule dropped the name.
    public func outcome(for name: String) -> Outcome {
        var outcome = Outcome(name: name, result: name, rules: [])
        for (stageIndex, stage) in stages.enumerated() {
            guard let current = outcome.result else { break }
            if let (ruleIndex, result) = stage.firstMatch(current) {
                outcome.result = result
                outcome.rules.append(reference(stage: stageIndex, rule: ruleIndex))
            }
        }
        return outcome
    }

    /// Renames a set of names, checking that the renaming is one-to-one.
    ///
    /// - Parameter names: Distinct names (a model's keys, an optimizer's `param_names`).
    /// - Returns: One outcome per name, in the same order.
    /// - Throws: ``RenameError`` `.duplicateName` for a name given twice; `.collision`, naming the
    ///   rules, when two names would get one target; `.unmatchedRule` when a strict map has a rule
    ///   that applied to no name; `.invalidMap` when a rule produces an empty name.
    public func apply(to names: [String]) throws -> [Outcome] {
        var seen = Set<String>()
        for name in names where !seen.insert(name).inserted {
            throw RenameError(.duplicateName, "the name \"\(name)\" occurs twice")
        }
        var outcomes = names.map { Outcome(name: $0, result: $0, rules: []) }
        for (stageIndex, stage) in stages.enumerated() {
            // Which name (as it entered this map) took each target, and through which rule.
            var owners: [String: (input: String, rule: Int?)] = [:]
            var used = Set<Int>()
            for index in outcomes.indices {
                guard let current = outcomes[index].result else { continue }
                let match = stage.firstMatch(current)
                if let (ruleIndex, result) = match {
                    used.insert(ruleIndex)
                    outcomes[index].rules.append(reference(stage: stageIndex, rule: ruleIndex))
                    guard let result else {
                        outcomes[index].result = nil
                        continue
                    }
                    guard !result.isEmpty else {
                        let rule = reference(stage: stageIndex, rule: ruleIndex)
                        throw RenameError(.invalidMap, "\(rule) renames \"\(current)\" to an empty name", rule: rule)
                    }
                    outcomes[index].result = result
                }
                let target = outcomes[index].result ?? current
                if let owner = owners[target] {
                    throw collision(stage: stageIndex, target: target, first: owner, second: (current, match?.0))
                }
                owners[target] = (current, match?.0)
            }
            if stage.strict, let unused = stage.rules.indices.first(where: { !used.contains($0) }) {
                let rule = reference(stage: stageIndex, rule: unused)
                throw RenameError(.unmatchedRule, "\(rule) matches no name (the map is strict)", rule: rule)
            }
        }
        return outcomes
    }

    /// The error for two names reaching one target, naming the rules that sent them there.
    private func collision(
        stage: Int, target: String, first: (input: String, rule: Int?), second: (input: String, rule: Int?)
    ) -> RenameError {
        func describe(_ name: String, _ rule: Int?) -> String {
            if let rule { return "\(reference(stage: stage, rule: rule)) sends \"\(name)\" to \"\(target)\"" }
            return "\"\(name)\" keeps its name"
        }
        let blamed = (second.rule ?? first.rule).map { reference(stage: stage, rule: $0) }
        return RenameError(
            .collision,
            "two names would be renamed to \"\(target)\": \(describe(second.input, second.rule)), but \(describe(first.input, first.rule))",
            rule: blamed)
    }

    /// `rule 2 {json}` for a single map, `map 1 rule 2 {json}` in a composition.
    func reference(stage: Int, rule: Int) -> String {
        RenameMap.reference(stage: stages.count > 1 ? stage : nil, rule: rule, stages[stage].rules[rule].rule)
    }

    static func reference(stage: Int?, rule index: Int, _ rule: Rule) -> String {
        (stage.map { "map \($0) " } ?? "") + "rule \(index) \(rule.json)"
    }

    private static func compile(_ pattern: String, reference: String) throws -> NSRegularExpression {
        do {
            // \A…\z: the pattern must match the whole name (`$` alone would also match before a final newline).
            return try NSRegularExpression(pattern: "\\A(?:\(pattern))\\z")
        } catch {
            throw RenameError(.invalidMap, "\(reference): invalid regular expression", rule: reference)
        }
    }

    /// Rejects `$n` for a group the pattern lacks (NSRegularExpression would substitute nothing),
    /// and `\1` (a backslash and a digit), a group reference in Python's and sed's syntax that
    /// NSRegularExpression reads as the digit itself (so names would collide on one target).
    private static func checkTemplate(_ template: String, groups: Int, reference: String) throws {
        var escaped = false
        var characters = template.makeIterator()
        while let character = characters.next() {
            if escaped {
                escaped = false
                if let digit = character.wholeNumberValue, character.isASCII {
                    throw RenameError(
                        .invalidMap,
                        "\(reference): the template uses \\\(digit), a group reference in Python's and sed's syntax; "
                            + "write $\(digit) (\\\(digit) means the digit \(digit) itself)",
                        rule: reference)
                }
            } else if character == "\\" {
                escaped = true
            } else if character == "$" {
                guard let next = characters.next() else { return }
                if let digit = next.wholeNumberValue, next.isASCII, digit > groups {
                    throw RenameError(
                        .invalidMap,
                        "\(reference): the template refers to group $\(digit) but the pattern has \(groups)",
                        rule: reference)
                }
                if next == "\\" { escaped = true }
            }
        }
    }
}

extension RenameMap.Stage {
    /// The first rule matching `name` and its result (nil for a drop), or nil when no rule matches.
    func firstMatch(_ name: String) -> (Int, String?)? {
        for (index, compiled) in rules.enumerated() {
            switch compiled.rule {
            case .exact(let from, let to):
                if name == from { return (index, to) }
            case .prefix(let from, let to):
                if name.utf8.starts(with: from.utf8) {
                    return (index, to + String(decoding: name.utf8.dropFirst(from.utf8.count), as: UTF8.self))
                }
            case .regex(_, let template):
                guard let regex = compiled.regex else { continue }
                let range = NSRange(name.startIndex..., in: name)
                if let match = regex.firstMatch(in: name, range: range) {
                    return (index, regex.replacementString(for: match, in: name, offset: 0, template: template))
                }
            case .drop:
                guard let regex = compiled.regex else { continue }
                if regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil {
                    return (index, nil)
                }
            }
        }
        return nil
    }
}

extension RenameMap {
}
