import Checkpoint
import CheckpointTools
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
}
