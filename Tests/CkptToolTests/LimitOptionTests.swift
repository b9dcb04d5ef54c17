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
        #expect(refused.stderr.contains("LoadOptions.limits.maximumValues"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--limit maximumValues="), "\(refused.stderr)")
        let raised = try Tool.run([command, Tool.sample, "--limit", "maximumValues=10", "--limit", "maximumValues=1M"])
        #expect(raised.status == 0, "\(raised.stderr)")
    }

    @Test(arguments: ["maximumWidgets=1", "maximumValues", "maximumValues=-1", "maximumValues=lots"])
    func aBadSettingIsAUsageError(_ setting: String) throws {
        let result = try Tool.run(["inspect", Tool.sample, "--limit", setting])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("--limit"), "\(result.stderr)")
    }

    @Test func inspectCutsTheTreeAtMaxLines() throws {
        let all = try Tool.run(["inspect", Tool.sample, "--max-lines", "0", "--no-color"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(!all.stdout.contains("--max-lines"))
        let cut = try Tool.run(["inspect", Tool.sample, "--max-lines", "3", "--no-color"])
        #expect(cut.status == 0, "\(cut.stderr)")
        // The tree's lines are those indented under the root, between the heading and the totals.
        let allTree = all.stdout.split(separator: "\n").filter { $0.hasPrefix("  ") }.count
        let cutTree = cut.stdout.split(separator: "\n").filter { $0.hasPrefix("  ") }
        #expect(cutTree.count == 3, "\(cut.stdout)")
        #expect(cut.stdout.contains("… \(allTree - 3) more lines not shown (--max-lines 3; 0 shows all)"), "\(cut.stdout)")

        let json = try Tool.run(["inspect", Tool.sample, "--json", "--max-lines", "3"])
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let full = try Tool.run(["inspect", Tool.sample, "--json", "--max-lines", "0"])
        let fullDocument = try #require(try JSONSerialization.jsonObject(with: Data(full.stdout.utf8)) as? [String: Any])
        #expect(fullDocument["nodes_omitted"] == nil)
        func nodes(_ node: Any?) -> Int {
            guard let node = node as? [String: Any] else { return 0 }
            let items = node["items"] as? [Any] ?? []
            return 1 + items.reduce(0) { count, item in
                count + nodes((item as? [String: Any]).map { $0["value"] ?? $0 })
            }
        }
        #expect(nodes(document["root"]) == 4)  // the root and 3 more
        #expect(document["nodes_omitted"] as? Int == nodes(fullDocument["root"]) - 4)
    }

    @Test func maxLinesMustNotBeNegative() throws {
        #expect(try Tool.run(["inspect", Tool.sample, "--max-lines", "-1"]).status == 64)
    }
}
