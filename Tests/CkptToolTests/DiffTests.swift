import Checkpoint
import Foundation
import Testing
import TestSupport

/// Writes pairs of checkpoints with torch and prints, per pair, what torch says about them:
/// `torch.allclose` and the largest absolute and relative difference of every same-shaped tensor.
///
/// `close` is torch.isclose's verdict with one documented difference of ckpt-tool: a NaN is close
/// to a NaN of the same bits (torch.allclose without equal_nan says no).
private let makePairs = #"""
import collections, copy, json, sys, torch
from safetensors.torch import save_file
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
def nan_payload(t): t["model"]["w"].view(torch.int32)[0, 0] = 0x7FC00001
def bf16(t): t["model"]["w"] = t["model"]["w"].to(torch.bfloat16)
# Tensors of several chunks (ckpt-tool compares 2^18 elements at a time): changes at chunk
# boundaries and at the end, infinities and NaNs; float16 and int64 beside float32.
n = 3 * 2**18 + 123
big = {"f": torch.randn(n), "h": torch.randn(n).half(), "i": torch.arange(n)}
big["f"][[5, 2**18 + 7]] = float("nan")
big["f"][[9, 2**18 - 1]] = float("inf")
big_b = copy.deepcopy(big)
for position in [0, 2**18 - 2, 2**18, 2 * 2**18, n - 1]:
    big_b["f"][position] *= 1 + 1e-3
big_b["h"][2**18 + 3] += 0.5
big_b["h"][n - 2] *= -1
big_b["i"][2 * 2**18 + 1] += 1
def structure(t):
    t["optimizer"]["param_groups"][0]["lr"] = 0.05
    del t["model"]["b"]
    t["model"]["extra"] = torch.zeros(2)
    t["model"]["i"] = torch.arange(11)
    t["epoch"] = 3.0
pairs = {"same": (base, variant(lambda t: None)), "tiny": (base, variant(tiny)), "poke": (base, variant(poke)),
         "nan": (variant(nan), variant(nan)), "nanbits": (variant(nan), variant(nan_payload)), "bf16": (variant(bf16), base),
         "structure": (base, variant(structure)), "chunks": (big, big_b)}
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
        # Equal pairs (inf against inf) differ by 0, as the maxima are defined.
        diff = torch.where(x64 == y64, torch.zeros_like(x64), (x64 - y64).abs())
        finite = ~(x64.isnan() | y64.isnan())
        if x.dtype == y.dtype and x.dtype.is_floating_point:
            bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
            same_bits = x.view(bits) == y.view(bits)
        else:
            same_bits = x64.view(torch.int64) == y64.view(torch.int64)
        same_nan = x64.isnan() & y64.isnan() & same_bits
        close = torch.isclose(x64, y64) | same_nan
        result[path] = {
            "close": bool(close.all()),
            "mismatched": int((~close).sum()),
            "close_rtol_1e-2": bool((torch.isclose(x64, y64, rtol=1e-2) | same_nan).all()),
            "close_equal_nan": bool(torch.allclose(x64, y64, equal_nan=True)),
            "max_abs": float(diff[finite].max()) if finite.any() else 0.0,
            "max_rel": float((diff / y64.abs())[finite & (diff > 0)].max()) if (finite & (diff > 0)).any() else 0.0,
        }
    expected[name] = result
# A model's state_dict (an OrderedDict with _metadata) and its safetensors copy, made by safetensors.
model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
torch.save(model.state_dict(), f"{out}/container_a.pt")
save_file(model.state_dict(), f"{out}/container_b.safetensors")
state = model.state_dict()
print(json.dumps({"pairs": expected, "container_metadata": type(state).__name__ + " " + str(hasattr(state, "_metadata"))}))
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
        let document = try #require(try JSONSerialization.jsonObject(with: pairs.expected) as? [String: Any])
        let expected = try #require(document["pairs"] as? [String: [String: [String: Any]]])
        return (
            pairs.directory.appendingPathComponent("\(name)_a.pt").path, pairs.directory.appendingPathComponent("\(name)_b.pt").path,
            try #require(expected[name])
        )
    }

    @Test(arguments: [
        ("same", Int32(0)), ("tiny", 0), ("poke", 1), ("nan", 0), ("nanbits", 1), ("bf16", 1), ("structure", 1), ("chunks", 1),
    ])
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
            #expect(tensor["mismatched"] as? Int == truth["mismatched"] as? Int, "\(name) \(path)")
            let maxAbs = try #require(tensor["max_abs_diff"] as? Double)
            let torchAbs = try #require(truth["max_abs"] as? Double)
            #expect(abs(maxAbs - torchAbs) <= 1e-12 * max(1, torchAbs), "\(name) \(path): \(maxAbs) vs torch \(torchAbs)")
            let maxRel = try #require(tensor["max_rel_diff"] as? Double)
            let torchRel = try #require(truth["max_rel"] as? Double)
            #expect(abs(maxRel - torchRel) <= 1e-9 * max(1, torchRel), "\(name) \(path): \(maxRel) vs torch \(torchRel)")
        }
    }

    /// A tensor with a NaN against itself is equal (issue 11: it was "not close (max abs diff 0.0)").
    @Test func aNaNEqualsTheSameNaN() throws {
        let (a, b, _) = try pair("nan")
        let result = try Tool.run(["diff", a, b])
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.contains("equal: 0 differences"), "\(result.stdout)")
    }

    /// NaNs of other bits differ unless --equal-nan, which keeps torch's meaning: any NaN equals any NaN.
    @Test func equalNaNFollowsTorch() throws {
        let (a, b, expected) = try pair("nanbits")
        #expect(expected["model/w"]?["close"] as? Bool == false)
        #expect(expected["model/w"]?["close_equal_nan"] as? Bool == true)
        let (before, different) = try diffJSON([a, b])
        #expect(before == 1)
        let tensor = try #require((different["tensors"] as? [[String: Any]])?.first { $0["path"] as? String == "model/w" })
        #expect(tensor["nan_mismatches"] as? Int == 1)
        let (exit, json) = try diffJSON([a, b, "--equal-nan"])
        #expect(exit == 0)
        #expect(json["equal"] as? Bool == true)
        #expect((json["tolerance"] as? [String: Any])?["equal_nan"] as? Bool == true)
    }

    /// bf16 against f32 with a loose rtol (issue 11: exit 1 with "16 differences", all dtype).
    @Test func ignoreDTypeComparesByValue() throws {
        let (a, b, expected) = try pair("bf16")
        #expect(expected["model/w"]?["close_rtol_1e-2"] as? Bool == true)
        #expect(expected["model/w"]?["close"] as? Bool == false)
        let (exit, json) = try diffJSON([a, b, "--rtol", "1e-2", "--ignore-dtype"])
        #expect(exit == 0)
        #expect(json["ignored"] as? [String] == ["dtype"])
        #expect((json["differences"] as? [Any])?.isEmpty == true)
        // Without the flag the dtype is still a difference, and the values are compared as well.
        let (strict, both) = try diffJSON([a, b, "--rtol", "1e-2"])
        #expect(strict == 1)
        let kinds = try #require(both["differences"] as? [[String: Any]]).map { "\($0["kind"] ?? "") \($0["path"] ?? "")" }
        #expect(kinds == ["dtype model/w"])
        let w = try #require((both["tensors"] as? [[String: Any]])?.first { $0["path"] as? String == "model/w" })
        #expect(w["close"] as? Bool == true)
        let text = try Tool.run(["diff", a, b, "--rtol", "1e-2"])
        #expect(text.stdout.contains("--ignore-dtype"), "a hint names the flag:\n\(text.stdout)")
        // By value the loose tolerance matters: torch says bf16 is not within the default rtol.
        #expect(try diffJSON([a, b, "--ignore-dtype"]).status == 1)
    }

    /// A state_dict saved by torch.save against its safetensors copy (issue 11: always
    /// `OrderedDict → dict` and `removed _metadata`).
    @Test func ignoreContainerTypesMatchesAPtWithItsSafetensorsCopy() throws {
        let pairs = try #require(torchPairs)
        let document = try #require(try JSONSerialization.jsonObject(with: pairs.expected) as? [String: Any])
        #expect(document["container_metadata"] as? String == "OrderedDict True", "torch's state_dict carries _metadata")
        let a = pairs.directory.appendingPathComponent("container_a.pt").path
        let b = pairs.directory.appendingPathComponent("container_b.safetensors").path
        let (before, strict) = try diffJSON([a, b])
        #expect(before == 1)
        let kinds = try #require(strict["differences"] as? [[String: Any]]).map { "\($0["kind"] ?? "") \($0["path"] ?? "")" }
        #expect(kinds == ["type ", "removed _metadata"])
        let (exit, json) = try diffJSON([a, b, "--ignore-container-types"])
        #expect(exit == 0)
        #expect(json["ignored"] as? [String] == ["container_types"])
        #expect((json["tensors"] as? [Any])?.count == 4)
    }

    @Test func quietPrintsNothingAndTellsByExitStatus() throws {
        let (a, b, _) = try pair("poke")
        for (arguments, status) in [([a, b], Int32(1)), ([a, a], 0), ([a, "/nonexistent/b.pt"], 2)] {
            for flag in ["--quiet", "-q"] {
                let result = try Tool.run(["diff"] + arguments + [flag])
                #expect(result.status == status, "\(arguments) \(flag)")
                #expect(result.stdout.isEmpty, "\(result.stdout)")
                #expect(result.stderr.isEmpty == (status != 2), "only an error is printed: \(result.stderr)")
            }
        }
        #expect(try Tool.run(["diff", a, b, "--quiet", "--json"]).status == 64)
    }

    /// Maxima print with three significant digits, or as many more as it takes not to read equal
    /// to the tolerance they fail (issue 11: 17 digits).
    @Test func maximaPrintWithTheDigitsTheyNeed() throws {
        let (a, b, expected) = try pair("poke")
        let torchAbs = try #require(expected["model/w"]?["max_abs"] as? Double)
        let torchRel = try #require(expected["model/w"]?["max_rel"] as? Double)
        let text = try Tool.run(["diff", a, b]).stdout
        let line = "(max abs diff \(String(format: "%.3g", torchAbs)), max rel diff \(String(format: "%.3g", torchRel)))"
        #expect(text.contains(line), "missing \(line) in\n\(text)")
        // An rtol equal to the 3-digit rounding of the max rel diff, which lies above it.
        let rtol = try #require(Double(String(format: "%.3g", torchRel)))
        #expect(torchRel > rtol)
        let strict = try Tool.run(["diff", a, b, "--atol", "0", "--rtol", String(rtol)])
        #expect(strict.status == 1)
        let printed = try #require(strict.stdout.split(separator: "max rel diff ").last?.prefix { $0 != ")" })
        #expect(Double(printed).map { $0 > rtol } == true, "\(printed) must read above rtol \(rtol)")
        #expect(printed == String(format: "%.4g", torchRel), "\(printed): the fewest digits that read above \(rtol)")
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
        // Unchecked, the flipped byte is a changed value.
        let unchecked = try Tool.run(["diff", a, damaged.path, "--no-verify"])
        #expect(unchecked.status == 1, "\(unchecked.stderr)")
        #expect(unchecked.stdout.contains("~ values   model/w: 1 of 2048 elements not close"), "\(unchecked.stdout)")
    }

    @Test func usageErrorsExitWith64() throws {
        #expect(try Tool.run(["diff", "only-one.pt"]).status == 64)
        #expect(try Tool.run(["diff", "a.pt", "b.pt", "--rtol", "-1"]).status == 64)
    }
}
