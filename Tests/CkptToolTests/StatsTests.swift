import Foundation
import Testing

// Numbers printed by `ckpt-tool stats` against torch's own (stats_expected.json, made by
// scripts/make_numeric_fixtures.py from the same torch tensors, in float64).

private let numeric = Tool.fixtures.appendingPathComponent("numeric")
private let statsInput = numeric.appendingPathComponent("stats_input.pt").path

/// The sidecar's records by path (read-only after initialization, hence nonisolated(unsafe)).
nonisolated(unsafe) private let torchStats: [String: [String: Any]] = {
    guard let data = try? Data(contentsOf: numeric.appendingPathComponent("stats_expected.json")),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
        let tensors = object["tensors"] as? [[String: Any]]
    else { return [:] }
    return Dictionary(uniqueKeysWithValues: tensors.compactMap { record in (record["path"] as? String).map { ($0, record) } })
}()

/// A JSON float, "nan", "inf", "-inf" or null.
private func float(_ value: Any?) -> Double? {
    switch value {
    case let number as NSNumber: return number.doubleValue
    case let text as String: return text == "nan" ? .nan : text == "inf" ? .infinity : text == "-inf" ? -.infinity : nil
    default: return nil
    }
}

private func agree(_ ours: Any?, _ torch: Any?, relative: Double) -> Bool {
    if ours is NSNull || ours == nil { return torch is NSNull || torch == nil }
    guard let a = float(ours), let e = float(torch) else { return false }
    if a.isNaN || e.isNaN { return a.isNaN && e.isNaN }
    if a.isInfinite || e.isInfinite { return a == e }
    return abs(a - e) <= relative * max(abs(e), 1e-300)
}

private func statsJSON(_ arguments: [String]) throws -> [String: Any] {
    let result = try Tool.run(["stats"] + arguments + ["--json"])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stderr.isEmpty, "no progress bar or notes without a terminal: \(result.stderr)")
    return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
}

@Suite("ckpt-tool stats")
struct StatsTests {
    @Test func everyTensorMatchesTorch() throws {
        #expect(torchStats.count >= 20, "stats_expected.json missing")
        let json = try statsJSON([statsInput])
        #expect(json["schema"] as? String == "ckpt-tool/stats")
        #expect(json["schema_version"] as? Int == 1)
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(tensors.count == torchStats.count)
        for tensor in tensors {
            let path = try #require(tensor["path"] as? String)
            let torch = try #require(torchStats[path], "torch has no \(path)")
            #expect(tensor["dtype"] as? String == torch["dtype"] as? String)
            for key in ["count", "zeros", "nans", "infs"] {
                #expect(tensor[key] as? Int == torch[key] as? Int, "\(path) \(key)")
            }
            for key in ["min", "max", "mean", "l2_norm"] {
                #expect(agree(tensor[key], torch[key], relative: 1e-12), "\(path) \(key): ours \(String(describing: tensor[key])), torch \(String(describing: torch[key]))")
            }
            #expect(agree(tensor["std"], torch["std"], relative: 1e-10), "\(path) std")
        }
        let totals = try #require(json["totals"] as? [String: Any])
        #expect(totals["tensors"] as? Int == torchStats.count)
        #expect(totals["nans"] as? Int == torchStats.values.reduce(0) { $0 + ($1["nans"] as? Int ?? 0) })
    }

    @Test(arguments: [("model/**", 5), ("special/with_*", 2), ("special/*_bulk", 5), ("optimizer/state/0/sum", 1), ("**/*.bias", 2), ("ints/*", 4)])
    func keyGlobSelectsTensors(pattern: String, count: Int) throws {
        let json = try statsJSON([statsInput, pattern])
        #expect(json["pattern"] as? String == pattern)
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(tensors.count == count)
    }

    @Test func tableHasAHeaderAndALinePerTensor() throws {
        let result = try Tool.run(["stats", statsInput, "special/*"], removing: ["NO_COLOR"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0].hasPrefix("key") && lines[0].contains("std") && lines[0].contains("nan"))
        #expect(!result.stdout.contains("\u{1B}["), "no colors when stdout is not a terminal")
        let withNaN = try #require(lines.first { $0.hasPrefix("special/with_nan ") })
        #expect(withNaN.split(separator: " ").last == "0" && withNaN.contains("nan"))
        #expect(lines.contains { $0.hasPrefix("special/sliced ") && $0.contains("20") })
        #expect(result.stdout.contains("totals: 16 tensors"))
    }

    @Test func safetensorsFilesWorkToo() throws {
        let json = try statsJSON([Tool.fixtures.appendingPathComponent("safetensors/all_dtypes.safetensors").path])
        #expect((json["tensors"] as? [Any])?.isEmpty == false)
    }

    @Test func noMatchingKeyIsAnError() throws {
        let result = try Tool.run(["stats", statsInput, "nothing/here/*"])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.hasPrefix("ckpt-tool: ") && result.stderr.contains("[invalidArgument]"))
    }

    @Test func missingFileIsAnIOError() throws {
        let result = try Tool.run(["stats", "/nonexistent/file.pt"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("[io]"))
    }

    @Test func damagedTensorDataFailsTheChecksumUnlessSkipped() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: statsInput)))
        // The 270000-float tensor fills most of the file; this byte lies inside its data.
        bytes[bytes.count / 2] ^= 0xFF
        let damaged = Tool.temporaryDirectory().appendingPathComponent("damaged.pt")
        try Data(bytes).write(to: damaged)
        let result = try Tool.run(["stats", damaged.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("[checksumMismatch]"), "\(result.stderr)")
        #expect(!result.looksLikeCrash)
        #expect(try Tool.run(["stats", damaged.path, "--no-verify"]).status == 0)
    }

    @Test(arguments: ["stats", "extract", "convert"])
    func subcommandHelpPrintsUsageAndSucceeds(subcommand: String) throws {
        let result = try Tool.run([subcommand, "--help"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("USAGE") && result.stdout.contains(subcommand))
        #expect(!result.stderr.contains("CommandError"))
    }

    @Test func unknownOptionIsAUsageError() throws {
        let result = try Tool.run(["stats", statsInput, "--frobnicate"])
        #expect(result.status == 64)
    }
}
