import Checkpoint
import Foundation
import Testing

private func fixture(_ name: String) -> String { Tool.fixtures.appendingPathComponent(name).path }

/// torch's tiny training run converted to `.ckpt` by the tool itself.
private func convertedRun() throws -> String {
    let path = Tool.temporaryDirectory().appendingPathComponent("run.ckpt").path
    let result = try Tool.run(["convert", Tool.sample, path, "--no-sync"])
    #expect(result.status == 0, "\(result.stderr)")
    return path
}

private func verifyJSON(_ path: String) throws -> (status: Int32, json: [String: Any]) {
    let result = try Tool.run(["verify", path, "--json"])
    #expect(!result.looksLikeCrash, "\(result.stderr)")
    return (result.status, try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]))
}

private func checks(_ json: [String: Any]) -> [String: [String: Any]] {
    var byName: [String: [String: Any]] = [:]
    for check in json["checks"] as? [[String: Any]] ?? [] {
        if let name = check["name"] as? String { byName[name] = check }
    }
    return byName
}

@Suite("ckpt-tool verify")
struct VerifyTests {
    @Test(arguments: ["pt/model_tied.pt", "pt/adagrad_named.pt", "pt/protocol4.pt", "pt/archive_deflated.pt", "safetensors/edge_shapes.safetensors"])
    func torchFixturesPass(_ name: String) throws {
        let (status, json) = try verifyJSON(fixture(name))
        #expect(status == 0)
        #expect(json["schema"] as? String == "ckpt-tool/verify")
        #expect(json["schema_version"] as? Int == 1)
        #expect(json["passed"] as? Bool == true)
    }

    @Test func ckptReportListsEveryCheck() throws {
        let path = try convertedRun()
        let result = try Tool.run(["verify", path])
        #expect(result.status == 0, "\(result.stdout)")
        for name in ["zip-directory", "zip-consistency", "crc32", "pickle", "weights-only", "devices", "manifest", "manifest-vs-pickle", "alignment"] {
            #expect(result.stdout.contains("PASS \(name)"), "missing PASS \(name) in\n\(result.stdout)")
        }
        #expect(result.stdout.hasSuffix("verified: 9 checks passed\n"))
        let (_, json) = try verifyJSON(path)
        #expect(json["format"] as? String == "ckpt")
    }

    @Test func corruptBlobFailsNamingTheEntry() throws {
        let path = try convertedRun()
        let blob = try ZipReader(path: path).requireEntry(named: "archive/data/3")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[blob.dataOffset] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let text = try Tool.run(["verify", path])
        #expect(text.status == 1)
        #expect(text.stdout.contains("FAIL crc32"))
        #expect(text.stdout.contains("archive/data/3: bytes do not match the entry's CRC-32"), "\(text.stdout)")
        #expect(text.stdout.hasSuffix("FAILED: 1 of 9 checks failed\n"))

        let (status, json) = try verifyJSON(path)
        #expect(status == 1)
        #expect(json["passed"] as? Bool == false)
        let crc = try #require(checks(json)["crc32"])
        #expect(crc["status"] as? String == "failed")
        let failures = try #require(crc["failures"] as? [[String: Any]])
        #expect(failures.map { $0["path"] as? String } == ["archive/data/3"])
        #expect(failures.first?["code"] as? String == "checksumMismatch")
    }

    @Test func manifestThatDisagreesWithThePickleFails() throws {
        let path = try convertedRun()
        let original = "\"param_groups\",{\"type\":\"list\",\"items\":[{\"type\":\"dict\",\"items\":[[\"lr\",{\"type\":\"float\",\"value\":0.05}"
        // The zip itself stays valid (patchStoredEntry updates the entry's CRC-32): only the manifest changes.
        try patchStoredEntry(path, "archive/manifest.json") { bytes in
            let manifest = String(decoding: bytes, as: UTF8.self)
            #expect(manifest.contains(original))
            bytes = Array(manifest.replacingOccurrences(of: original, with: original.replacingOccurrences(of: "0.05", with: "0.07")).utf8)
        }

        let (status, json) = try verifyJSON(path)
        #expect(status == 1)
        let byName = checks(json)
        #expect(byName["crc32"]?["status"] as? String == "passed")
        #expect(byName["zip-consistency"]?["status"] as? String == "passed")
        let check = try #require(byName["manifest-vs-pickle"])
        #expect(check["status"] as? String == "failed")
        let failure = try #require((check["failures"] as? [[String: Any]])?.first)
        #expect(failure["path"] as? String == "optimizer/param_groups/0/lr")
        #expect(failure["found"] as? String == "float 0.07 (manifest)")
        #expect(failure["expected"] as? String == "float 0.05 (pickle)")
    }

    @Test func unreadableFilesExitWith2() throws {
        for path in ["/nonexistent/model.ckpt", fixture("pt/legacy_format.expected.json")] {
            let result = try Tool.run(["verify", path])
            #expect(result.status == 2)
            #expect(result.stdout.isEmpty)
            #expect(result.stderr.hasPrefix("ckpt-tool: "))
        }
    }

    @Test func truncatedArchiveFailsTheDirectoryCheck() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fixture("pt/model_tied.pt")))
        let path = Tool.temporaryDirectory().appendingPathComponent("cut.pt").path
        try bytes.prefix(bytes.count - 7).write(to: URL(fileURLWithPath: path))
        let (status, json) = try verifyJSON(path)
        #expect(status == 1)
        #expect(checks(json)["zip-directory"]?["status"] as? String == "failed")
        #expect(checks(json)["crc32"]?["status"] as? String == "skipped")
    }
}
