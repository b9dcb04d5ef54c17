import Checkpoint
import Foundation
import Testing
import TestSupport

// torch.save files holding Python objects torch's weights-only load refuses (argparse.Namespace,
// numpy values, a whole nn.Module, namedtuple, datetime, PosixPath, defaultdict), made by
// scripts/make_pickle_fixtures.py into Tests/Fixtures/objects: every command works on the tensors
// around them, verify calls them "needs trust" rather than damage, and convert writes them back
// only when asked.

private func object(_ name: String) -> String { Tool.fixtures.appendingPathComponent("objects/\(name).pt").path }

private func sidecar(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: Tool.fixtures.appendingPathComponent("objects/\(name).expected.json"))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

private func json(_ result: Tool.Result) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
}

/// Runs Python in the torch venv with the arguments; its exit status and output.
func python(_ script: String, _ arguments: [String]) throws -> Tool.Result {
    try Tool.run(executable: try #require(TorchVenv.python), ["-c", script] + arguments)
}

/// torch.load(weights_only=False) of two files, compared deeply: types, keys and order, tensors
/// (dtype, shape, values, requires_grad), numpy arrays (dtype, shape, memory order, bits) and
/// scalars, Namespace and module attributes, defaultdict factories; anything else with `==`
/// (paths, datetimes, numpy dtypes).
let torchCompare = """
    import argparse, collections, sys
    import numpy, torch
    Point = collections.namedtuple("Point", "x y")  # __main__.Point, as the saving script had it

    def same(a, b, path="root"):
        assert type(a) is type(b), (path, type(a), type(b))
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad, path
            assert torch.equal(a.detach(), b.detach()), path
        elif isinstance(a, numpy.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), path
            assert a.flags.f_contiguous == b.flags.f_contiguous and a.flags.c_contiguous == b.flags.c_contiguous, path
        elif isinstance(a, dict):
            assert list(a) == list(b), (path, list(a), list(b))
            for key in a:
                same(a[key], b[key], f"{path}/{key}")
            if type(a) is not dict:
                same(dict(getattr(a, "__dict__", {})), dict(getattr(b, "__dict__", {})), path + "@")  # OrderedDict's _metadata
            if type(a) is collections.defaultdict:
                assert a.default_factory is b.default_factory, path
        elif isinstance(a, (list, tuple)):
            assert len(a) == len(b), path
            for index, (x, y) in enumerate(zip(a, b)):
                same(x, y, f"{path}/{index}")
        elif isinstance(a, (argparse.Namespace, torch.nn.Module)):
            same(vars(a), vars(b), path + ".__dict__")
        else:
            assert a == b, (path, a, b)

    same(torch.load(sys.argv[1], weights_only=False), torch.load(sys.argv[2], weights_only=False))
    print("equal")
    """

@Suite("ckpt-tool on files holding Python objects")
struct ObjectsTests {
    @Test func inspectShowsTheObjectAndItsState() throws {
        let result = try Tool.run(["inspect", object("namespace"), "--no-color"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("  args: argparse.Namespace(...) (Python object kept as data; NEWOBJ: state)\n"), "\(result.stdout)")
        #expect(result.stdout.contains("    state: dict (5 items)\n      lr: float = 0.1\n      epochs: int = 3\n"), "\(result.stdout)")
        #expect(result.stdout.contains("totals: 2 tensors"))

        let document = try Tool.inspectJSON(object("namespace"))
        let root = try #require(document["root"] as? [String: Any])
        let items = try #require(root["items"] as? [[String: Any]])
        let args = try #require(items.first { $0["key"] as? String == "args" }?["value"] as? [String: Any])
        #expect(args["type"] as? String == "argparse.Namespace")
        #expect(args["construction"] as? String == "newobj")
        let parts = try #require(args["items"] as? [[String: Any]])
        #expect(parts.map { $0["key"] as? String } == ["state"])

        let filtered = try Tool.run(["inspect", object("namespace"), "--filter", "args/state/lr", "--no-color"])
        #expect(filtered.status == 0)
        #expect(filtered.stdout.contains("lr: float = 0.1"))
    }

    @Test func inspectReachesTheTensorsOfAWholeModel() throws {
        let document = try Tool.inspectJSON(object("whole_model"))
        let tensors = try #require(document["tensors"] as? [[String: Any]])
        let expected = try #require(try sidecar("whole_model")["tensors"] as? [String: Any])
        #expect(Set(tensors.compactMap { $0["path"] as? String }) == Set(expected.keys))
        #expect(tensors.allSatisfy { $0["type"] as? String == "Parameter" })
    }

    @Test(arguments: ["namespace", "with_numpy", "whole_model", "python_objects"])
    func statsWorksOnTheTensors(name: String) throws {
        let result = try Tool.run(["stats", object(name), "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let tensors = try #require(try json(result)["tensors"] as? [[String: Any]])
        let expected = try #require(try sidecar(name)["tensors"] as? [String: Any])
        #expect(Set(tensors.compactMap { $0["path"] as? String }) == Set(expected.keys))
    }

    @Test(arguments: [("with_numpy", "model/weight"), ("whole_model", "state/_modules/2/state/_parameters/bias")])
    func extractWritesTorchsBytes(name: String, key: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("t.npy").path
        let result = try Tool.run(["extract", object(name), key, out])
        #expect(result.status == 0, "\(result.stderr)")
        let spec = try #require((try sidecar(name)["tensors"] as? [String: [String: Any]])?[key])
        let hex = try #require(spec["hex"] as? String)
        let npy = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        let data = npy.suffix(hex.count / 2).map { String(format: "%02x", $0) }.joined()
        #expect(data == hex)
    }

    @Test func convertOnlyModelDropsTheObjects() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("model.pt").path
        let result = try Tool.run(["convert", object("with_numpy"), out, "--only", "model", "--no-sync"])
        #expect(result.status == 0, "\(result.stderr)")
        let tree = try StateValue(contentsOf: URL(fileURLWithPath: out))
        #expect(!tree.containsObjects)
        #expect(tree.children.map(\.key) == ["model"])
        let verify = try Tool.run(["verify", out, "--strict"])
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    @Test func convertRefusesObjectsWithoutKeepObjectsNamingTheKeyPath() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("out.pt").path
        let result = try Tool.run(["convert", object("namespace"), out, "--no-sync"])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("ckpt-tool: \(out): args: argparse.Namespace(...) is a Python object"), "\(result.stderr)")
        #expect(result.stderr.contains("--keep-objects"))
        #expect(result.stderr.contains("[forbiddenGlobal]"))
        #expect(!FileManager.default.fileExists(atPath: out))

        let safetensors = Tool.temporaryDirectory().appendingPathComponent("out.safetensors").path
        let refused = try Tool.run(["convert", object("namespace"), safetensors, "--keep-objects", "--no-sync"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("args: argparse.Namespace(...) is a Python object, which this format cannot hold"), "\(refused.stderr)")
    }

    @Test func verifyWarnsListingEveryGlobalAndFailsOnlyWithStrict() throws {
        let text = try Tool.run(["verify", object("with_numpy"), "--no-color"])
        #expect(text.status == 0, "\(text.stdout)")
        #expect(text.stdout.contains("WARN weights-only"), "\(text.stdout)")
        for global in try #require(try sidecar("with_numpy")["unsafe_globals"] as? [String]) {
            #expect(text.stdout.contains("(found \(global)) [forbiddenGlobal]"), "\(global) missing:\n\(text.stdout)")
        }
        #expect(text.stdout.contains("np_scalar/args/0, np_array/state/2, best/args/0: not on torch's weights-only allow-list"))
        #expect(text.stdout.contains("with torch.serialization.safe_globals(["))
        #expect(text.stdout.hasSuffix("verified with warnings: 6 checks passed, 1 warning\n"), "\(text.stdout)")

        let strict = try Tool.run(["verify", object("with_numpy"), "--strict", "--no-color"])
        #expect(strict.status == 1)
        #expect(strict.stdout.hasSuffix("FAILED (--strict): 1 warning\n"))

        let document = try json(try Tool.run(["verify", object("with_numpy"), "--json"]))
        #expect(document["passed"] as? Bool == true)
        #expect(document["status"] as? String == "warning")
        let globals = try #require(document["untrusted_globals"] as? [[String: Any]])
        #expect(Set(globals.compactMap { $0["name"] as? String })
            == Set(try #require(try sidecar("with_numpy")["unsafe_globals"] as? [String])))
        #expect((document["torch_load"] as? String)?.contains("safe_globals") == true)
        let strictDocument = try json(try Tool.run(["verify", object("with_numpy"), "--json", "--strict"]))
        #expect(strictDocument["passed"] as? Bool == false)
        #expect(strictDocument["strict"] as? Bool == true)
    }

    @Test func diffComparesObjectsPartByPart() throws {
        let copy = Tool.temporaryDirectory().appendingPathComponent("copy.pt").path
        #expect(try Tool.run(["convert", object("python_objects"), copy, "--keep-objects", "--no-sync"]).status == 0)
        let same = try Tool.run(["diff", object("python_objects"), copy])
        #expect(same.status == 0, "\(same.stdout)\(same.stderr)")
        let other = try Tool.run(["diff", object("namespace"), object("with_numpy"), "--no-color"])
        #expect(other.status == 1)
        #expect(other.stdout.contains("removed  args: argparse.Namespace(...)"), "\(other.stdout)")
    }

    /// Through our writer and back into torch: the objects torch rebuilds equal the original's.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason), arguments: ["namespace", "with_numpy", "whole_model", "python_objects"])
    func keptObjectsLoadEqualInTorch(name: String) throws {
        for ext in ["pt", "ckpt"] {
            let out = Tool.temporaryDirectory().appendingPathComponent("out.\(ext)").path
            let result = try Tool.run(["convert", object(name), out, "--keep-objects", "--no-sync"])
            #expect(result.status == 0, "\(result.stderr)")
            let compared = try python(torchCompare, [object(name), out])
            #expect(compared.status == 0 && compared.stdout.contains("equal"), "\(name).\(ext): \(compared.stderr)")
        }
    }

    /// The torch.load call verify suggests is one that works, and without it torch refuses the file.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason), arguments: ["namespace", "with_numpy", "whole_model", "python_objects"])
    func theSuggestedTorchLoadWorks(name: String) throws {
        let document = try json(try Tool.run(["verify", object(name), "--json"]))
        let call = try #require(document["torch_load"] as? String)
        let script = """
            import collections, sys, torch
            Point = collections.namedtuple("Point", "x y")
            f = sys.argv[1]
            try:
                torch.load(f, weights_only=True)
                print("weights_only=True loaded it")
                sys.exit(1)
            except Exception:
                pass
            exec(sys.argv[2])
            print("loaded")
            """
        let result = try python(script, [object(name), call])
        #expect(result.status == 0 && result.stdout.contains("loaded"), "\(name): \(call)\n\(result.stdout)\(result.stderr)")
    }
}
