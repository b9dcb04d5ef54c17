import Foundation
import Testing

/// `--limit NAME=VALUE` and `inspect --max-lines`: a file past a cap fails naming it and the
/// setting that raises it, and loads once raised; a tree past the line budget is cut, not printed whole.
@Suite struct LimitOptionTests {
    /// torch's tiny run pushes far more than 10 pickle values.
    @Test(arguments: ["inspect", "verify", "stats"])
    func aFilePastACapFailsNamingItAndLoadsOnceRaised(_ command: String) throws {
        let refused = try Tool.run([command, Tool.sample, "--limit", "maximumValues=10"])
        #expect(refused.status != 0)
        // verify reports it as a failed check on stdout, the others on stderr.
        let report = refused.stdout + refused.stderr
        #expect(report.contains("LoadOptions.limits.maximumValues"), "\(report)")
        #expect(report.contains("--limit maximumValues="), "\(report)")
        let raised = try Tool.run([command, Tool.sample, "--limit", "maximumValues=10", "--limit", "maximumValues=1M"])
        #expect(raised.status == 0, "\(raised.stderr)")
    }

    @Test(arguments: ["maximumWidgets=1", "maximumValues", "maximumValues=-1", "maximumValues=lots"])
    func aBadSettingIsAUsageError(_ setting: String) throws {
        let result = try Tool.run(["inspect", Tool.sample, "--limit", setting])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("--limit"), "\(result.stderr)")
    }

    /// An OrderedDict of 12 tensors and its `_metadata` attribute, no optimizer.
    static let model = Tool.fixtures.appendingPathComponent("pt/model_tied.pt").path

    /// The tree's lines: after the heading, up to the first blank line, without the `--max-lines` note.
    static func treeLines(_ stdout: String) -> [Substring] {
        Array(stdout.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().prefix { !$0.isEmpty }
            .filter { !$0.hasPrefix("… ") || !$0.contains("--max-lines") })
    }

    @Test func inspectCutsTheTreeAtMaxLines() throws {
        let all = try Tool.run(["inspect", Self.model, "--max-lines", "0", "--no-color"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(!all.stdout.contains("--max-lines"))
        let cut = try Tool.run(["inspect", Self.model, "--max-lines", "3", "--no-color"])
        #expect(cut.status == 0, "\(cut.stderr)")
        let allTree = Self.treeLines(all.stdout)
        let cutTree = Self.treeLines(cut.stdout)
        #expect(cutTree == Array(allTree.prefix(4)), "\(cut.stdout)")  // the root line and 3 more
        #expect(cut.stdout.contains("… \(allTree.count - 4) more lines not shown (--max-lines 3; 0 shows all)"), "\(cut.stdout)")
    }

    @Test func inspectJSONCutsTheTreeAtMaxLines() throws {
        func document(_ maxLines: String) throws -> [String: Any] {
            let result = try Tool.run(["inspect", Self.model, "--json", "--max-lines", maxLines])
            return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }
        /// NODEs in a NODE: itself, its items' values (or elements) and its attributes' values.
        func nodes(_ node: Any?) -> Int {
            guard let node = node as? [String: Any] else { return 0 }
            let children = (node["items"] as? [Any] ?? []) + (node["attributes"] as? [Any] ?? [])
            return 1 + children.reduce(0) { count, child in
                let child = child as? [String: Any]
                return count + nodes(child?["value"] ?? child)
            }
        }
        let full = try document("0")
        #expect(full["nodes_omitted"] == nil)
        let cut = try document("3")
        #expect(nodes(cut["root"]) == 4)  // the root and 3 more
        #expect(cut["nodes_omitted"] as? Int == nodes(full["root"]) - 4)
        let root = try #require(cut["root"] as? [String: Any])
        #expect(root["items_omitted"] as? Int == 12 + 1 - 3)  // 12 items and 1 attribute, 3 shown
        #expect((cut["tensors"] as? [Any])?.count == (full["tensors"] as? [Any])?.count)
    }

    @Test func maxLinesMustNotBeNegative() throws {
        #expect(try Tool.run(["inspect", Tool.sample, "--max-lines", "-1"]).status == 64)
    }
}
