import Testing
@testable import Checkpoint

@Suite struct OrderedJSONParserTests {
    /// Duplicates are found whether the object is small (linear scan) or large (hash set), and
    /// whichever member the duplicate repeats.
    @Test(arguments: [2, 15, 16, 17, 40])
    func duplicateKeysAreFoundInObjectsOfAnySize(size: Int) throws {
        for repeated in [0, size / 2, size - 1] {
            var members = (0..<size).map { "\"k\($0)\":\($0)" }
            members.append("\"k\(repeated)\":0")
            let error = try #require(throws: CheckpointError.self) {
                _ = try OrderedJSON.parse("{" + members.joined(separator: ",") + "}", file: "f", what: "test")
            }
            #expect(error.message.contains("duplicate key \"k\(repeated)\""))
            #expect(error.path == "k\(repeated)")
        }
        let unique = (0..<size).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        guard case .object(let parsed) = try OrderedJSON.parse("{\(unique)}", file: "f", what: "test") else {
            Issue.record("not an object")
            return
        }
        #expect(parsed.map(\.key) == (0..<size).map { "k\($0)" })
    }

    @Test func errorsNameThePathOfTheBadValue() throws {
        let error = try #require(throws: CheckpointError.self) {
            _ = try OrderedJSON.parse(#"{"a":[1,{"b":tru}]}"#, file: "f", what: "test")
        }
        #expect(error.path == "a/1/b")
    }

    @Test func stringsWithAndWithoutEscapes() throws {
        let parsed = try OrderedJSON.parse(#"["plain", "tab\there", "\u00e9\ud83d\ude00", "héllo"]"#, file: nil, what: "test")
        #expect(parsed == .array([.string("plain"), .string("tab\there"), .string("é😀"), .string("héllo")]))
    }
}
