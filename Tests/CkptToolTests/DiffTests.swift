import Checkpoint
import Foundation
import Testing
import TestSupport

/// Writes pairs of checkpoints with torch and prints, per pair, what torch says about them:
/// `torch.allclose` and the largest absolute and relative difference of every same-shaped tensor.
private let makePairs = #"""
import copy, json, sys, torch
out = sys.argv[1]
torch.manual_seed(0)
base = {
    "model": {"w": torch.randn(64, 32), "b": torch.randn(32), "i": torch.arange(10)},
    "optimizer": {"state": {0: {"step": torch.tensor(3.0), "sum": torch.rand(64, 32)}},
                  "param_groups": [{"lr": 0.1, "eps": 1e-10, "params": [0]}]},
    "epoch": 3,
}
def variant(edit):
    tree = copy.deepcopy(base)
    edit(tree)
    return tree
def tiny(t): t["model"]["w"] *= 1 + 1e-7 * torch.randn(64, 32)
def poke(t): t["model"]["w"][3, 4] += 0.01
def nan(t): t["model"]["w"][0, 0] = float("nan")
def bf16(t): t["model"]["w"] = t["model"]["w"].to(torch.bfloat16)
def structure(t):
    t["optimizer"]["param_groups"][0]["lr"] = 0.05
    del t["model"]["b"]
    t["model"]["extra"] = torch.zeros(2)
    t["model"]["i"] = torch.arange(11)
    t["epoch"] = 3.0
pairs = {"same": (base, variant(lambda t: None)), "tiny": (base, variant(tiny)), "poke": (base, variant(poke)),
         "nan": (variant(nan), variant(nan)), "bf16": (variant(bf16), base), "structure": (base, variant(structure))}
def tensors(tree, prefix=""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict): yield from tensors(value, path + "/")
        elif torch.is_tensor(value): yield path, value
expected = {}
for name, (a, b) in pairs.items():
    torch.save(a, f"{out}/{name}_a.pt")
    torch.save(b, f"{out}/{name}_b.pt")
    bt = dict(tensors(b))
    result = {}
    for path, x in tensors(a):
        y = bt.get(path)
        if y is None or x.shape != y.shape: continue
        x64, y64 = x.double(), y.double()
        diff = (x64 - y64).abs()
        finite = ~(x64.isnan() | y64.isnan())
        result[path] = {
            "close": bool(torch.allclose(x64, y64)),
            "close_equal_nan": bool(torch.allclose(x64, y64, equal_nan=True)),
            "max_abs": float(diff[finite].max()) if finite.any() else 0.0,
            "max_rel": float((diff / y64.abs())[finite & (diff > 0)].max()) if (finite & (diff > 0)).any() else 0.0,
        }
    expected[name] = result
print(json.dumps(expected))
"""#

/// The pairs and torch's verdicts, made once per test process.
private let torchPairs: (directory: URL, expected: Data)? = {
    guard let python = TorchVenv.python else { return nil }
    let directory = Tool.temporaryDirectory()
    let script = directory.appendingPathComponent("make_pairs.py")
    guard (try? makePairs.write(to: script, atomically: true, encoding: .utf8)) != nil,
        let result = try? Tool.run(executable: python, [script.path, directory.path]), result.status == 0
    else { return nil }
    return (directory, Data(result.stdout.utf8))
}()

private func diffJSON(_ arguments: [String]) throws -> (status: Int32, json: [String: Any]) {
    let result = try Tool.run(["diff"] + arguments + ["--json"])
    #expect(!result.looksLikeCrash, "\(result.stderr)")
    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    return (result.status, try #require(object as? [String: Any]))
}

@Suite("ckpt-tool diff", .enabled(if: TorchVenv.python != nil, "needs the torch venv (CKPT_TORCH_VENV or ~/.cache/ckpt/venv-torch) to make the pairs"))
struct DiffTests {
    private func pair(_ name: String) throws -> (a: String, b: String, expected: [String: [String: Any]]) {
        let pairs = try #require(torchPairs, "torch failed to write the pairs")
        let expected = try #require(try JSONSerialization.jsonObject(with: pairs.expected) as? [String: [String: [String: Any]]])
        return (
            pairs.directory.appendingPathComponent("\(name)_a.pt").path, pairs.directory.appendingPathComponent("\(name)_b.pt").path,
            try #require(expected[name])
        )
    }

    @Test(arguments: [("same", Int32(0)), ("tiny", 0), ("poke", 1), ("nan", 1), ("bf16", 1), ("structure", 1)])
    func exitStatusAndNumbersMatchTorch(_ name: String, _ status: Int32) throws {
        let (a, b, expected) = try pair(name)
        let (exit, json) = try diffJSON([a, b])
        #expect(exit == status)
        #expect(json["schema"] as? String == "ckpt-tool/diff")
        #expect(json["equal"] as? Bool == (status == 0))
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(Set(tensors.compactMap { $0["path"] as? String }) == Set(expected.keys))
        for tensor in tensors {
            let path = try #require(tensor["path"] as? String)
            let truth = try #require(expected[path])
            #expect(tensor["close"] as? Bool == truth["close"] as? Bool, "\(name) \(path)")
            let maxAbs = try #require(tensor["max_abs_diff"] as? Double)
            let torchAbs = try #require(truth["max_abs"] as? Double)
            #expect(abs(maxAbs - torchAbs) <= 1e-12 * max(1, torchAbs), "\(name) \(path): \(maxAbs) vs torch \(torchAbs)")
            let maxRel = try #require(tensor["max_rel_diff"] as? Double)
            let torchRel = try #require(truth["max_rel"] as? Double)
            #expect(abs(maxRel - torchRel) <= 1e-9 * max(1, torchRel), "\(name) \(path): \(maxRel) vs torch \(torchRel)")
        }
    }

    @Test func equalNaNFollowsTorch() throws {
        let (a, b, expected) = try pair("nan")
        #expect(expected["model/w"]?["close_equal_nan"] as? Bool == true)
        let (exit, json) = try diffJSON([a, b, "--equal-nan"])
        #expect(exit == 0)
        #expect(json["equal"] as? Bool == true)
        #expect((json["tolerance"] as? [String: Any])?["equal_nan"] as? Bool == true)
    }

    @Test func looseToleranceMakesAPokeEqual() throws {
        let (a, b, _) = try pair("poke")
        #expect(try diffJSON([a, b, "--atol", "0.02"]).status == 0)
        #expect(try diffJSON([a, b, "--rtol", "0", "--atol", "0.001"]).status == 1)
    }

    @Test func structuralChangesAreListed() throws {
        let (a, b, _) = try pair("structure")
        let differences = try #require(try diffJSON([a, b]).json["differences"] as? [[String: Any]])
        let found = Set(differences.compactMap { d in (d["kind"] as? String).map { "\($0) \(d["path"] as? String ?? "")" } })
        #expect(found == [
            "removed model/b", "added model/extra", "shape model/i", "value optimizer/param_groups/0/lr", "type epoch",
        ])
        let lr = try #require(differences.first { $0["kind"] as? String == "value" })
        #expect(lr["a"] as? String == "float 0.1")
        #expect(lr["b"] as? String == "float 0.05")
        #expect(lr["key_path"] as? [AnyHashable] == ["optimizer", "param_groups", 0, "lr"])
    }

    @Test func textOutputNamesEachDifference() throws {
        let (a, b, _) = try pair("structure")
        let result = try Tool.run(["diff", a, b])
        #expect(result.status == 1)
        for line in [
            "- removed  model/b: Tensor float32 [32]", "+ added    model/extra: Tensor float32 [2]",
            "~ value    optimizer/param_groups/0/lr: float 0.1 → float 0.05", "~ type     epoch: int 3 → float 3.0",
        ] {
            #expect(result.stdout.contains(line), "missing \(line) in\n\(result.stdout)")
        }
        #expect(!result.stdout.contains("\u{1B}"))
    }

    @Test func unreadableFileExitsWith2() throws {
        let (a, _, _) = try pair("same")
        let result = try Tool.run(["diff", a, "/nonexistent/b.pt"])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.hasPrefix("ckpt-tool: /nonexistent/b.pt: cannot open"))
    }

    @Test func damagedDataExitsWith2() throws {
        let (a, _, _) = try pair("same")
        let damaged = Tool.temporaryDirectory().appendingPathComponent("damaged.pt")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: a)))
        let blob = try #require(try ZipReader(path: a).entries.first { $0.name.hasSuffix("/data/0") })
        bytes[blob.dataOffset + blob.uncompressedSize / 2] ^= 0xFF
        try Data(bytes).write(to: damaged)
        let result = try Tool.run(["diff", a, damaged.path])
        #expect(result.status == 2, "\(result.stdout)")
        #expect(result.stderr.contains("[checksumMismatch]"), "\(result.stderr)")
    }

    @Test func usageErrorsExitWith64() throws {
        #expect(try Tool.run(["diff", "only-one.pt"]).status == 64)
        #expect(try Tool.run(["diff", "a.pt", "b.pt", "--rtol", "-1"]).status == 64)
    }
}
