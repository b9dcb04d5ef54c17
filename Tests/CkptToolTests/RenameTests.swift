import Checkpoint
import Foundation
import Testing
import TestSupport

// `ckpt-tool rename` on torch's v1 checkpoint (Tests/Fixtures/rename, scripts/make_rename_fixtures.py).

@Suite struct RenameTests {
    static let directory = Tool.fixtures.appendingPathComponent("rename")
    static let v1 = directory.appendingPathComponent("v1.pt").path
    static let map = directory.appendingPathComponent("map.json").path

    /// v1 name -> v2 name, from the hand-written mapping the fixture script recorded.
    static func v1ToV2() throws -> [String: String] {
        let data = try Data(contentsOf: directory.appendingPathComponent("expected.json"))
        let expected = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let mapping = try #require(expected["v2_from_v1"] as? [String: String])
        return Dictionary(uniqueKeysWithValues: mapping.map { ($1, $0) })
    }

    static func v1ModelKeys() throws -> [String] {
        let data = try Data(contentsOf: directory.appendingPathComponent("expected.json"))
        let expected = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(expected["v1_model_keys"] as? [String])
    }

    static func names(_ list: [Any]?) -> [String] {
        list?.compactMap { ($0 as? [String: Any])?["name"] as? String } ?? []
    }

    @Test func dryRunPrintsTheReportAndWritesNothing() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("out.pt").path
        let result = try Tool.run(["rename", Self.v1, out, "--map", Self.map, "--dry-run", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(report["schema"] as? String == "ckpt-tool/rename")
        #expect(report["schema_version"] as? Int == 1)
        #expect(result.stdout.hasPrefix(#"{"schema": "ckpt-tool/rename", "schema_version": 1, "input": "#))
        #expect(report["written"] as? Bool == false)
        let model = try #require(report["model"] as? [String: Any])
        let optimizer = try #require(report["optimizer"] as? [String: Any])
        let mapping = try Self.v1ToV2()
        let renamedKeys = try Self.v1ModelKeys().filter { key in mapping[key].map { $0 != key } ?? false }
        #expect((model["renamed"] as? [[String: Any]])?.compactMap { $0["from"] as? String } == renamedKeys)
        #expect(
            (model["renamed"] as? [[String: Any]])?.first?["rules"] as? [String] == [
                #"rule 2 {"prefix": "encoder.", "to": "model.encoder."}"#
            ])
        #expect(Self.names(model["dropped"] as? [Any]) == ["aux.weight", "aux.bias"])
        #expect(Self.names(optimizer["dropped"] as? [Any]) == ["aux.weight", "aux.bias"])
        #expect((optimizer["renamed"] as? [Any])?.count == 10)
        #expect(optimizer["matching"] as? String == "name")
    }

    @Test func textReportListsRenamesAndDrops() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("out.pt").path
        let result = try Tool.run(["rename", Self.v1, out, "--map", Self.map, "--dry-run"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout.contains(
                #"renamed fc.weight -> head.weight  [rule 0 {"exact": "fc.weight", "to": "head.weight"}]"#))
        #expect(result.stdout.contains(#"dropped aux.bias  [rule 4 {"drop": "aux\\..*"}]"#))
        #expect(result.stdout.contains("_metadata: \"layers.0.attn\" -> \"blocks.0.attention\""))
        #expect(result.stdout.contains("dry run: \(out) not written"))
    }

    @Test(arguments: ["out.pt", "out.ckpt"])
    func renamedFileHasTheNewNames(_ name: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent(name)
        let result = try Tool.run(["rename", Self.v1, out.path, "--map", Self.map])
        #expect(result.status == 0, "\(result.stderr)")
        let tree = try StateValue(contentsOf: out)
        let original = try StateValue(contentsOf: URL(fileURLWithPath: Self.v1))
        let mapping = try Self.v1ToV2()
        guard case .dict(let model)? = tree["model"], case .dict(let before)? = original["model"] else {
            Issue.record("no model")
            return
        }
        let expectedKeys = try Self.v1ModelKeys().compactMap { mapping[$0] }
        #expect(model.items.keys.map(\.description) == expectedKeys)
        for (old, new) in mapping {
            #expect(model[.string(new)] == before[.string(old)], "\(old)")
        }
        guard case .list(let groups)? = tree["optimizer"]?["param_groups"] else {
            Issue.record("no param_groups")
            return
        }
        let names = groups.flatMap { group -> [String] in
            guard case .list(let names)? = group["param_names"] else { return [] }
            return names.compactMap { if case .string(let name) = $0 { name } else { nil } }
        }
        #expect(names.count == 12 && names.allSatisfy { mapping.values.contains($0) })
    }

    @Test(.enabled(if: TorchVenv.python != nil, "needs the torch venv (CKPT_TORCH_VENV or ~/.cache/ckpt/venv-torch) to load the renamed file"))
    func torchLoadsTheRenamedFileIntoV2() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("v2.pt").path
        let result = try Tool.run(["rename", Self.v1, out, "--map", Self.map])
        #expect(result.status == 0, "\(result.stderr)")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/make_rename_fixtures.py").path
        let check = try Tool.run(executable: try #require(TorchVenv.python), [script, "--check-renamed", out])
        #expect(check.status == 0 && check.stdout.hasPrefix("ok"), "\(check.stdout) \(check.stderr)")
    }

    @Test func safetensorsModelIsRenamed() throws {
        let directory = Tool.temporaryDirectory()
        let input = directory.appendingPathComponent("model.safetensors")
        var dict = StateDict()
        dict["fc.weight"] = .tensor(try Tensor([Float(1), 2], shape: [2]))
        dict["aux.bias"] = .tensor(try Tensor([Float(3)], shape: [1]))
        try StateValue.dict(dict).write(to: input)
        let output = directory.appendingPathComponent("renamed.safetensors")
        let result = try Tool.run(["rename", input.path, output.path, "--map", Self.map, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        guard case .dict(let renamed) = try StateValue(contentsOf: output) else {
            Issue.record("not a dict")
            return
        }
        #expect(renamed.items.keys.map(\.description) == ["head.weight"])
        #expect(result.stdout.contains("\"optimizer\": null"))
    }

    /// (map file contents, stderr): failures name the rule and exit 1 without a crash.
    static let failures: [(String, String)] = [
        (
            #"{"rules": [{"exact": "fc.weight", "to": "fc.bias"}]}"#,
            #"two names would be renamed to "fc.bias": "fc.bias" keeps its name, but rule 0 {"exact": "fc.weight", "to": "fc.bias"} sends "fc.weight" to "fc.bias" [collision]"#
        ),
        (
            #"{"rules": [{"exact": "nothing", "to": "x"}], "strict": true}"#,
            #"rule 0 {"exact": "nothing", "to": "x"} matches no name (the map is strict) [unmatchedRule]"#
        ),
        (
            #"{"rules": [{"regex": "(", "to": "x"}]}"#,
            #"rule 0 {"regex": "(", "to": "x"}: invalid regular expression [invalidMap]"#
        ),
        ("{", "the map is not valid JSON"),
        (
            // Python's and sed's group reference: NSRegularExpression would read `\1` as "1" and send
            // every encoder key to "enc.1.2", a collision that would not say why.
            #"{"rules": [{"regex": "encoder\\.(\\d+)\\.(.*)", "to": "enc.\\1.\\2"}]}"#,
            #"the template uses \1, a group reference in Python's and sed's syntax; write $1 (\1 means the digit 1 itself) [invalidMap]"#
        ),
    ]

    @Test(arguments: failures)
    func badMapFailsNamingTheRule(_ contents: String, _ message: String) throws {
        let directory = Tool.temporaryDirectory()
        let mapFile = directory.appendingPathComponent("map.json")
        try Data(contents.utf8).write(to: mapFile)
        let out = directory.appendingPathComponent("out.pt").path
        let result = try Tool.run(["rename", Self.v1, out, "--map", mapFile.path])
        #expect(result.status == 1)
        #expect(!result.looksLikeCrash)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func missingMapFileAndUnknownFormatFail() throws {
        let missing = try Tool.run(["rename", Self.v1, "/tmp/x.pt", "--map", "/nonexistent/map.json"])
        #expect(missing.status == 1 && missing.stderr.contains("cannot read the map file /nonexistent/map.json"))
        let format = try Tool.run(["rename", Self.v1, "/tmp/x.unknown", "--map", Self.map])
        #expect(format.status == 64 && format.stderr.contains("cannot tell the output format"))
    }
}
