import Checkpoint
import Foundation
import Testing
import TestSupport

// `--allow-data-globals` through the binary, on files real torch wrote
// (scripts/make_data_global_fixtures.py): numpy values, argparse.Namespace, paths, datetimes,
// defaultdicts and a transformers rng_state.pth are read as values, written back as numpy and
// Python pickle them, and torch.load(weights_only=False) returns equal objects.

private func dataFile(_ name: String) -> String { Tool.fixtures.appendingPathComponent("data_globals/\(name)").path }

private func dataSidecar(_ name: String) throws -> [String: Any] {
    let stem = (name as NSString).deletingPathExtension
    let data = try Data(contentsOf: Tool.fixtures.appendingPathComponent("data_globals/\(stem).expected.json"))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

@Suite("ckpt-tool --allow-data-globals")
struct DataGlobalsTests {
    static let files = ["rng_state.pth", "numpy_values.pt", "python_values.pt", "numpy1_values.pt", "legacy_rng_state.pth"]

    @Test func inspectShowsValuesNotPlaceholders() throws {
        let plain = try Tool.run(["inspect", dataFile("python_values.pt"), "--no-color"])
        #expect(plain.stdout.contains("path: pathlib.PosixPath(...) (Python object kept as data; REDUCE: args)"), "\(plain.stdout)")

        let result = try Tool.run(["inspect", dataFile("python_values.pt"), "--allow-data-globals", "--no-color"])
        #expect(result.status == 0, "\(result.stderr)")
        for line in [
            "  args: argparse.Namespace (7 attributes)\n    lr: float = 0.01\n",
            "  path: pathlib.PosixPath = '/runs/exp1/ckpt.pt'\n",
            "  named_zone: datetime.datetime = '1999-12-31 23:59:59.999999+05:30'\n",
            "  day: datetime.date = '2024-02-29'\n",
            "  elapsed: datetime.timedelta = '-1 day, 0:00:05.000007'\n",
            "  history: defaultdict (2 items)\n",
        ] {
            #expect(result.stdout.contains(line), "missing \(line.debugDescription) in:\n\(result.stdout)")
        }
        let numpy = try Tool.run(["inspect", dataFile("rng_state.pth"), "--allow-data-globals", "--no-color"])
        #expect(numpy.stdout.contains("    [1]: numpy.ndarray uint32 [624] 2.4 KiB"), "\(numpy.stdout)")

        let document = try Tool.inspectJSON(dataFile("python_values.pt"), ["--allow-data-globals"])
        let root = try #require(document["root"] as? [String: Any])
        let items = try #require(root["items"] as? [[String: Any]])
        let args = try #require(items.first { $0["key"] as? String == "args" }?["value"] as? [String: Any])
        #expect(args["type"] as? String == "argparse.Namespace")
        #expect((args["items"] as? [[String: Any]])?.first?["key"] as? String == "lr")
    }

    @Test func convertNeedsTheFlagToWriteThemBack() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("rng.pt").path
        // Read as data for --select, but not allowed on write: refused, naming the value.
        let refused = try Tool.run(["convert", dataFile("rng_state.pth"), out, "--no-sync", "--allow-data-global", "numpy.ndarray"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("numpy/1: numpy._core.multiarray._reconstruct(...) is a Python object"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))

        let usage = try Tool.run(["convert", dataFile("rng_state.pth"), out, "--allow-data-global", "builtins.eval"])
        #expect(usage.status == 64)
        #expect(usage.stderr.contains("--allow-data-global builtins.eval: not a global ckpt can read as data"), "\(usage.stderr)")
    }

    @Test func verifyNamesTheDataGlobalsAndTheFlag() throws {
        let sidecar = try dataSidecar("rng_state.pth")
        let expected = try #require(sidecar["unsafe_globals"] as? [String]) + (try #require(sidecar["dtype_classes"] as? [String]))
        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(try Tool.run(["verify", dataFile("rng_state.pth"), "--json"]).stdout.utf8))
                as? [String: Any])
        #expect(Set(document["data_globals"] as? [String] ?? []) == Set(expected))
        let globals = try #require(document["untrusted_globals"] as? [[String: Any]])
        #expect(globals.allSatisfy { $0["data"] as? Bool == true })

        let text = try Tool.run(["verify", dataFile("rng_state.pth"), "--no-color"])
        #expect(text.stdout.contains("ckpt reads these as plain data with --allow-data-globals"), "\(text.stdout)")

        // The names verify gives, passed one by one, read the file whole.
        let names = (document["data_globals"] as? [String] ?? []).flatMap { ["--allow-data-global", $0] }
        let inspected = try Tool.run(["inspect", dataFile("rng_state.pth"), "--no-color"] + names)
        #expect(!inspected.stdout.contains("kept as data"), "\(inspected.stdout)")
    }

    @Test func extractWritesANumpyArraysBytes() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("mt.npy").path
        let result = try Tool.run(["extract", dataFile("rng_state.pth"), "numpy/1", out, "--allow-data-globals"])
        #expect(result.status == 0, "\(result.stderr)")
        let values = try #require(try dataSidecar("rng_state.pth")["values"] as? [String: [String: Any]])
        let hex = try #require(values["numpy/1"]?["hex"] as? String)
        let npy = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        #expect(npy.suffix(hex.count / 2).map { String(format: "%02x", $0) }.joined() == hex)
    }

    /// Through ckpt's writer into torch: torch.load(weights_only=False) returns objects equal to the original's.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason), arguments: files)
    func convertedFilesLoadEqualInTorch(name: String) throws {
        for ext in ["pt", "ckpt"] {
            let out = Tool.temporaryDirectory().appendingPathComponent("out.\(ext)").path
            let result = try Tool.run(["convert", dataFile(name), out, "--allow-data-globals", "--no-sync"])
            #expect(result.status == 0, "\(result.stderr)")
            let compared = try python(torchCompare, [dataFile(name), out])
            #expect(compared.status == 0 && compared.stdout.contains("equal"), "\(name).\(ext): \(compared.stdout)\(compared.stderr)")
        }
    }

    /// The point of an rng_state.pth: restored from ckpt's copy, every generator draws what it
    /// draws restored from the original.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason), arguments: ["rng_state.pth", "legacy_rng_state.pth"])
    func restoredGeneratorsDrawTheSameNumbers(name: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("rng_state.pth").path
        #expect(try Tool.run(["convert", dataFile(name), out, "--format", "pt", "--allow-data-globals", "--no-sync"]).status == 0)
        let script = """
            import random, sys, numpy, torch
            def draws(path):
                state = torch.load(path, weights_only=False)
                random.setstate(state["python"])
                numpy.random.set_state(state["numpy"])
                torch.random.set_rng_state(state["cpu"])
                return [random.random() for _ in range(3)], numpy.random.rand(3).tolist(), torch.rand(3).tolist()
            a, b = draws(sys.argv[1]), draws(sys.argv[2])
            assert a == b, (a, b)
            print("same draws")
            """
        let result = try python(script, [dataFile(name), out])
        #expect(result.status == 0 && result.stdout.contains("same draws"), "\(result.stdout)\(result.stderr)")
    }
}
