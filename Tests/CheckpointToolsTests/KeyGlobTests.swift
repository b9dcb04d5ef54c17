import Checkpoint
import CheckpointTools
import OrderedCollections
import Testing

@Suite struct KeyGlobTests {
    @Test(arguments: [
        ("model/encoder.layer.0.weight", "model/encoder.layer.0.weight", true),
        ("model/*.weight", "model/encoder.layer.0.weight", true),
        ("model/*.weight", "model/encoder.layer.0.bias", false),
        ("*.weight", "model/fc.weight", false),
        ("**/sum", "optimizer/state/0/sum", true),
        ("**/sum", "sum", true),
        ("optimizer/**", "optimizer/state/0/sum", true),
        ("optimizer/**", "optimizer", true),
        ("optimizer/state/?/sum", "optimizer/state/3/sum", true),
        ("optimizer/state/?/sum", "optimizer/state/12/sum", false),
        ("model/**/*.bias", "model/a/b/c.bias", true),
        ("model/**/*.bias", "model/c.weight", false),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxbyy", false),
    ])
    func matching(pattern: String, path: String, expected: Bool) {
        #expect(KeyGlob(pattern).matches(path) == expected)
    }

    @Test func pruningKnowsWhenNothingBelowCanMatch() {
        let glob = KeyGlob("optimizer/state/*/sum")
        #expect(glob.couldMatchBelow(["optimizer", "state"]))
        #expect(!glob.couldMatchBelow(["model"]))
        #expect(KeyGlob("**/sum").couldMatchBelow(["anything", "at", "all"]))
    }

    @Test func intKeysMatchAsDigits() {
        #expect(KeyGlob("state/0/step").matches([.string("state"), .int(0), .string("step")]))
    }

    /// A backslash makes `/`, `*`, `?` and itself literal, so keys holding them can be selected.
    @Test(arguments: [
        (#"enc\/w"#, [StateKey.string("enc/w")], true),
        (#"enc\/w"#, [StateKey.string("enc"), .string("w")], false),
        ("enc/w", [StateKey.string("enc/w")], false),
        (#"enc\/*"#, [StateKey.string("enc/b")], true),
        (#"a\*b"#, [StateKey.string("a*b")], true),
        (#"a\*b"#, [StateKey.string("axb")], false),
        (#"a\?"#, [StateKey.string("a?")], true),
        (#"a\?"#, [StateKey.string("ab")], false),
        (#"back\\slash"#, [StateKey.string(#"back\slash"#)], true),
        (#"\*\*"#, [StateKey.string("**")], true),
        (#"\*\*"#, [StateKey.string("x"), .string("y")], false),
    ])
    func escapesMakeCharactersLiteral(pattern: String, path: [StateKey], expected: Bool) {
        #expect(KeyGlob(pattern).matches(path) == expected)
    }

    /// What a printed path shows pastes back as a pattern that selects exactly that key.
    @Test func printedPathsReadBackAsTheSameKeys() {
        let keys: [[StateKey]] = [["enc/w"], ["a*b", "c?d"], [#"x\y"#, 3], ["plain", "0"]]
        for path in keys {
            #expect(KeyGlob(path.pathString).matches(path), "\(path.pathString)")
            let tree = StateValue.dict(StateDict([path[0]: .int(1)]))
            #expect(tree.value(atPath: [path[0]].pathString) == .int(1))
        }
        #expect([StateKey.string("enc/w")].pathString == #"enc\/w"#)
        #expect([StateKey.string("a*b"), .int(3)].pathString == #"a\*b/3"#)
    }

    @Test func repeatedPatternsMatchAnyOfThem() {
        let glob = KeyGlob(anyOf: ["model/**", "epoch"])
        #expect(glob.matches("model/fc.weight"))
        #expect(glob.matches("epoch"))
        #expect(!glob.matches("optimizer/state"))
        #expect(glob.couldMatchBelow(["model"]))
        #expect(!glob.couldMatchBelow(["optimizer"]))
    }
}
