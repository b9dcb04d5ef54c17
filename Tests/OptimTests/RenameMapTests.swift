import Foundation
import Testing

@testable import Optim
import TestSupport

// Rename maps on their own: the rule kinds, order, composition, the JSON file format, and every
// error with its message.

@Suite struct RenameMapTests {
    static let issueMap = #"""
        {"rules": [{"exact": "fc.weight", "to": "head.weight"}, {"prefix": "encoder.", "to": "model.encoder."},
        {"regex": "layers\\.(\\d+)\\.attn", "to": "blocks.$1.attention"}, {"drop": "aux\\..*"}]}
        """#

    static func map(_ json: String) throws -> RenameMap {
        try RenameMap(json: Data(json.utf8))
    }

    static func results(_ map: RenameMap, _ names: [String]) throws -> [String?] {
        try map.apply(to: names).map(\.result)
    }

    @Test func issueExampleRenamesEachKind() throws {
        let map = try Self.map(Self.issueMap)
        #expect(
            map.rules == [
                [
                    .exact("fc.weight", to: "head.weight"), .prefix("encoder.", to: "model.encoder."),
                    .regex(#"layers\.(\d+)\.attn"#, to: "blocks.$1.attention"), .drop(#"aux\..*"#),
                ]
            ])
        let names = [
            "fc.weight", "fc.bias", "encoder.0.weight", "layers.12.attn", "layers.1.attn.weight", "aux.head.bias",
            "bn.weight",
        ]
        #expect(
            try Self.results(map, names) == [
                "head.weight", "fc.bias", "model.encoder.0.weight", "blocks.12.attention", "layers.1.attn.weight", nil,
                "bn.weight",
            ])
        let outcomes = try map.apply(to: names)
        #expect(outcomes[0].rules == [#"rule 0 {"exact": "fc.weight", "to": "head.weight"}"#])
        #expect(outcomes[5].rules == [#"rule 3 {"drop": "aux\\..*"}"#])
        #expect(outcomes[6].rules.isEmpty && !outcomes[6].isChanged)
    }

    @Test(arguments: [
        ("layers.0.attn", true), ("layers.0.attn.weight", false), ("xlayers.0.attn", false), ("layers.0.attn\n", false),
        ("layers..attn", false),
    ])
    func regexMustMatchTheWholeName(_ name: String, _ matches: Bool) throws {
        let map = try RenameMap([.regex(#"layers\.(\d+)\.attn"#, to: "b.$1")])
        #expect(map.outcome(for: name).isChanged == matches)
    }

    @Test func firstMatchingRuleWins() throws {
        let map = try RenameMap([.prefix("enc.", to: "first."), .exact("enc.w", to: "second"), .drop("enc\\..*")])
        #expect(try Self.results(map, ["enc.w", "enc.b", "other"]) == ["first.w", "first.b", "other"])
    }

    @Test func templatesExpandGroupsAndEscapes() throws {
        let map = try RenameMap([.regex(#"(\w+)\.(\d+)"#, to: #"$2_$1_$0_\$1"#)])
        #expect(map.outcome(for: "layer.7").result == "7_layer_layer.7_$1")
    }

    @Test func prefixRewritesOnlyTheLeadingText() throws {
        let map = try RenameMap([.prefix("a.", to: "")])
        #expect(try Self.results(map, ["a.b.a.c", "c.a.d", "ba.x"]) == ["b.a.c", "c.a.d", "ba.x"])
    }

    @Test func composedMapsApplyInOrder() throws {
        let first = try RenameMap([.prefix("encoder.", to: "enc.")])
        let second = try RenameMap([.prefix("enc.", to: "model.encoder."), .exact("x", to: "y")])
        let composed = first.then(second)
        #expect(try Self.results(composed, ["encoder.w", "enc2", "x"]) == ["model.encoder.w", "enc2", "y"])
        #expect(
            composed.outcome(for: "encoder.w").rules == [
                #"map 0 rule 0 {"prefix": "encoder.", "to": "enc."}"#,
                #"map 1 rule 0 {"prefix": "enc.", "to": "model.encoder."}"#,
            ])
        let fromFile = try Self.map(
            #"{"maps": [{"rules": [{"prefix": "encoder.", "to": "enc."}]}, {"rules": [{"prefix": "enc.", "to": "model.encoder."}, {"exact": "x", "to": "y"}]}]}"#
        )
        #expect(fromFile.rules == composed.rules)
        #expect(try Self.results(fromFile, ["encoder.w", "enc2", "x"]) == ["model.encoder.w", "enc2", "y"])
        #expect(RenameMap.identity.outcome(for: "a").result == "a")
    }

    @Test func aPermutationIsNotACollision() throws {
        let map = try RenameMap([.exact("a", to: "b"), .exact("b", to: "a")])
        #expect(try Self.results(map, ["a", "b"]) == ["b", "a"])
    }

    @Test func ruleJSONRoundTripsThroughTheParser() throws {
        let rules: [RenameMap.Rule] = [
            .exact("a\"b", to: "c\\d"), .prefix("p.", to: "q."), .regex("x(\\d)", to: "y$1"), .drop("z.*"),
        ]
        let json = "{\"rules\": [" + rules.map(\.json).joined(separator: ", ") + "], \"strict\": false}"
        #expect(try Self.map(json).rules == [rules])
    }

    /// (map JSON, names, code, message): each error names its rule.
    static let applyErrors: [(String, [String], RenameError.Code, String)] = [
        (
            #"{"rules": [{"prefix": "a.", "to": "b."}]}"#, ["a.x", "b.x"], .collision,
            #"two names would be renamed to "b.x": "b.x" keeps its name, but rule 0 {"prefix": "a.", "to": "b."} sends "a.x" to "b.x""#
        ),
        (
            #"{"rules": [{"exact": "a", "to": "c"}, {"exact": "b", "to": "c"}]}"#, ["a", "b"], .collision,
            #"two names would be renamed to "c": rule 1 {"exact": "b", "to": "c"} sends "b" to "c", but rule 0 {"exact": "a", "to": "c"} sends "a" to "c""#
        ),
        (
            #"{"maps": [{"rules": [{"exact": "a", "to": "c"}]}, {"rules": [{"exact": "b", "to": "c"}]}]}"#, ["a", "b"],
            .collision,
            #"two names would be renamed to "c": map 1 rule 0 {"exact": "b", "to": "c"} sends "b" to "c", but "c" keeps its name"#
        ),
        (
            #"{"rules": [{"exact": "a", "to": "b"}, {"exact": "nothing", "to": "x"}], "strict": true}"#, ["a"],
            .unmatchedRule,
            #"rule 1 {"exact": "nothing", "to": "x"} matches no name (the map is strict)"#
        ),
        (
            #"{"rules": [{"prefix": "a", "to": "b"}, {"exact": "a1", "to": "x"}], "strict": true}"#, ["a1"],
            .unmatchedRule,
            #"rule 1 {"exact": "a1", "to": "x"} matches no name (the map is strict)"#
        ),
        (
            #"{"maps": [{"rules": [{"exact": "a", "to": "b"}]}, {"rules": [{"drop": "q"}], "strict": true}]}"#, ["a"],
            .unmatchedRule,
            #"map 1 rule 0 {"drop": "q"} matches no name (the map is strict)"#
        ),
        (
            #"{"rules": [{"regex": "(.*)x", "to": "$1"}]}"#, ["x"], .invalidMap,
            #"rule 0 {"regex": "(.*)x", "to": "$1"} renames "x" to an empty name"#
        ),
        (#"{"rules": []}"#, ["a", "a"], .duplicateName, #"the name "a" occurs twice"#),
    ]

    @Test(arguments: applyErrors)
    func applyErrorNamesTheRule(_ json: String, _ names: [String], _ code: RenameError.Code, _ message: String) throws {
        let map = try Self.map(json)
        let error = try #require(throws: RenameError.self) { try map.apply(to: names) }
        #expect(error.code == code)
        #expect(error.message == message)
        if code != .duplicateName { #expect(error.rule.map(message.contains) == true) }
    }

    @Test func nonStrictMapIgnoresUnusedRules() throws {
        let map = try Self.map(#"{"rules": [{"exact": "nothing", "to": "x"}]}"#)
        #expect(try Self.results(map, ["a"]) == ["a"])
    }

    /// (map JSON, message): malformed files, named by rule where there is one.
    static let parseErrors: [(String, String)] = [
        ("not json", "the map is not valid JSON"),
        (#"[1]"#, #"map: a map must be a JSON object with "rules" or "maps""#),
        (#"{"rules": [], "extra": 1}"#, #"map: unknown key "extra" (a map has "rules", "strict" or "maps")"#),
        (#"{"rules": {}}"#, #"map: "rules" must be an array"#),
        (#"{}"#, #"map: a map needs exactly one of "rules" and "maps""#),
        (#"{"rules": [], "maps": []}"#, #"map: a map needs exactly one of "rules" and "maps""#),
        (#"{"rules": [], "strict": "yes"}"#, #"map: "strict" must be true or false"#),
        (#"{"maps": [], "strict": true}"#, #"map: "strict" belongs to each of the "maps""#),
        (#"{"maps": [{"rule": []}]}"#, #"map.maps[0]: unknown key "rule" (a map has "rules", "strict" or "maps")"#),
        (#"{"rules": ["fc"]}"#, #"rule 0 "fc": a rule must be a JSON object"#),
        (
            #"{"rules": [{"exact": "a", "prefix": "b", "to": "c"}]}"#,
            #"rule 0 {"exact":"a","prefix":"b","to":"c"}: a rule needs exactly one of "exact", "prefix", "regex" and "drop""#
        ),
        (
            #"{"rules": [{"to": "c"}]}"#,
            #"rule 0 {"to":"c"}: a rule needs exactly one of "exact", "prefix", "regex" and "drop""#
        ),
        (
            #"{"rules": [{"exact": "a", "to": "b", "from": "x"}]}"#,
            #"rule 0 {"exact":"a","from":"x","to":"b"}: unknown key "from""#
        ),
        (#"{"rules": [{"exact": 3, "to": "b"}]}"#, #"rule 0 {"exact":3,"to":"b"}: "exact" must be a string"#),
        (#"{"rules": [{"exact": "a"}]}"#, #"rule 0 {"exact":"a"}: "exact" needs a string "to""#),
        (#"{"rules": [{"drop": "a", "to": "b"}]}"#, #"rule 0 {"drop":"a","to":"b"}: a drop rule has no "to""#),
        (
            #"{"rules": [{"exact": "a", "to": "b"}, {"regex": "(", "to": "x"}]}"#,
            #"rule 1 {"regex": "(", "to": "x"}: invalid regular expression"#
        ),
        (#"{"rules": [{"drop": "[z"}]}"#, #"rule 0 {"drop": "[z"}: invalid regular expression"#),
        (
            #"{"rules": [{"regex": "a(\\d)", "to": "$2"}]}"#,
            #"rule 0 {"regex": "a(\\d)", "to": "$2"}: the template refers to group $2 but the pattern has 1"#
        ),
        (
            #"{"maps": [{"rules": []}, {"rules": [{"regex": "a", "to": "$1"}]}]}"#,
            #"map 1 rule 0 {"regex": "a", "to": "$1"}: the template refers to group $1 but the pattern has 0"#
        ),
    ]

    @Test(arguments: parseErrors)
    func malformedMapIsRejected(_ json: String, _ message: String) throws {
        let error = try #require(throws: RenameError.self) { try Self.map(json) }
        #expect(error.code == .invalidMap)
        #expect(error.message.hasPrefix(message), "\(error.message)")
    }

    /// Seeded byte corruptions of a valid map file: each reads or throws ``RenameError``, never traps.
    @Test func corruptedMapFilesReadOrThrow() throws {
        var generator = SplitMix64(seed: 4)
        let original = Array(Self.issueMap.utf8)
        let alphabet = Array(#"{}[]":,\.$()*+?|^0123456789 abcdefghijklmnopqrstuvwxyz"#.utf8)
        var outcomes = (read: 0, rejected: 0)
        for _ in 0..<3000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[index] = alphabet.randomElement(using: &generator) ?? 0
                case 1: bytes.remove(at: index)
                default: bytes.insert(alphabet.randomElement(using: &generator) ?? 0, at: index)
                }
                if bytes.isEmpty { bytes = [0x7B] }
            }
            do {
                let map = try RenameMap(json: Data(bytes))
                _ = try? map.apply(to: ["fc.weight", "encoder.0.bias", "layers.3.attn", "aux.x", "", "$1"])
                outcomes.read += 1
            } catch is RenameError {
                outcomes.rejected += 1
            }
        }
        #expect(outcomes.read > 0 && outcomes.rejected > 0, "\(outcomes)")
    }

    @Test func missingMapFileIsAnInvalidMap() throws {
        let error = try #require(throws: RenameError.self) {
            try RenameMap(contentsOf: URL(fileURLWithPath: "/nonexistent/map.json"))
        }
        #expect(error.code == .invalidMap)
        #expect(error.message.hasPrefix("cannot read the map file /nonexistent/map.json"))
    }
}

/// JSONSerialization keeps one of two equal keys without a word; the map parser refuses them.
@Test func aDuplicateKeyInTheMapIsAnError() throws {
    let json = #"{"rules": [{"exact": "a", "to": "b", "to": "c"}]}"#
    let error = try #require(throws: RenameError.self) { try RenameMap(json: Data(json.utf8)) }
    #expect(error.code == .invalidMap)
    #expect(error.message.contains("duplicate key \"to\""), "\(error.message)")
    let twoRuleLists = #"{"rules": [], "rules": [{"drop": "x"}]}"#
    #expect(throws: RenameError.self) { try RenameMap(json: Data(twoRuleLists.utf8)) }
}
