import Checkpoint
import CheckpointTools
import Foundation
import Testing
import TestSupport

// `convert --dtype` and `--only`: torch loads what the tool wrote and compares it with its own
// `tensor.to(dtype)` of the input, so the expected values are torch's.

private let statsInput = Tool.fixtures.appendingPathComponent("numeric/stats_input.pt").path

/// Runs a torch check script with arguments (tests that call it are enabled only with torch).
private func torchCheck(_ script: String, _ arguments: [String]) throws {
    let result = try Tool.run(executable: try #require(TorchVenv.python), ["-c", script] + arguments)
    #expect(result.status == 0 && result.stdout.hasSuffix("ok\n"), "\(result.stdout)\n\(result.stderr)")
}

@Suite("ckpt-tool convert --dtype / --only")
struct ConvertOptionsTests {
    @Test(
        .enabled(if: TorchVenv.python != nil, "needs the torch venv (CKPT_TORCH_VENV or ~/.cache/ckpt/venv-torch): torch compares the result"),
        arguments: [("bf16", "bfloat16"), ("f16", "float16"), ("f32", "float32"), ("f64", "float64"), ("bfloat16", "bfloat16")])
    func floatingTensorsAreCastAsTorchCastsThem(option: String, torchName: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("cast.pt").path
        let result = try Tool.run(["convert", statsInput, out, "--dtype", option])
        #expect(result.status == 0, "\(result.stderr)")
        let script = """
            import sys, torch
            def leaves(v, p=''):
                if isinstance(v, torch.Tensor): yield p, v
                elif isinstance(v, dict):
                    for k, c in v.items(): yield from leaves(c, p + '/' + str(k))
                elif isinstance(v, (list, tuple)):
                    for i, c in enumerate(v): yield from leaves(c, p + '/' + str(i))
            src = dict(leaves(torch.load(sys.argv[1])))
            out = dict(leaves(torch.load(sys.argv[2])))
            target = getattr(torch, sys.argv[3])
            assert src.keys() == out.keys()
            for k, t in src.items():
                want = t.to(target) if t.is_floating_point() else t
                got = out[k]
                assert got.dtype == want.dtype and got.shape == want.shape, (k, got.dtype, want.dtype)
                bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64, 16: torch.int64}[want.element_size()]
                if want.is_complex():
                    assert torch.equal(torch.view_as_real(got), torch.view_as_real(want)), k
                elif want.numel():
                    assert torch.equal(got.contiguous().view(bits), want.contiguous().view(bits)), k
            print('ok')
            """
        try torchCheck(script, [statsInput, out, torchName])
    }

    @Test(.enabled(if: TorchVenv.python != nil, "needs the torch venv (CKPT_TORCH_VENV or ~/.cache/ckpt/venv-torch): torch compares the result"))
    func tiedTensorsStayTiedAndViewsStayViews() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("tied.pt").path
        let source = Tool.fixtures.appendingPathComponent("pt/model_tied.pt").path
        #expect(try Tool.run(["convert", source, out, "--dtype", "f16"]).status == 0)
        let before = try #require(Tool.inspectJSON(source)["totals"] as? [String: Any])
        let after = try #require(Tool.inspectJSON(out)["totals"] as? [String: Any])
        #expect(after["storages"] as? Int == before["storages"] as? Int)
        #expect(after["tensors"] as? Int == before["tensors"] as? Int)
        let script = """
            import sys, torch
            a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
            for k, t in a.items():
                want = t.to(torch.float16) if t.is_floating_point() else t
                assert b[k].dtype == want.dtype and torch.equal(b[k], want), k
                assert b[k].stride() == t.stride() and b[k].storage_offset() == t.storage_offset(), k
                assert b[k].requires_grad == t.requires_grad, k
            ptr = lambda d: {k: v.untyped_storage().data_ptr() for k, v in d.items()}
            pa, pb = ptr(a), ptr(b)
            for k in a:
                for j in a:
                    assert (pa[k] == pa[j]) == (pb[k] == pb[j]), (k, j)
            print('ok')
            """
        try torchCheck(script, [source, out])
    }

    @Test func onlyKeepsMatchingValuesAndTheirContainers() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("only.ckpt").path
        let result = try Tool.run(["convert", statsInput, out, "--only", "model/*.weight"])
        #expect(result.status == 0, "\(result.stderr)")
        let tree = try StateValue(contentsOf: URL(fileURLWithPath: out))
        #expect(tree.tensors(matching: nil).map(\.path.pathString) == [
            "model/encoder.layer.0.weight", "model/encoder.layer.1.weight", "model/decoder.weight",
        ])
        let original = try StateValue(contentsOf: URL(fileURLWithPath: statsInput))
        #expect(tree.value(atPath: "model/decoder.weight") == original.value(atPath: "model/decoder.weight"))
    }

    @Test func onlyWithAContainerKeepsItsWholeSubtree() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("optimizer.pt").path
        #expect(try Tool.run(["convert", statsInput, out, "--only", "optimizer"]).status == 0)
        let tree = try StateValue(contentsOf: URL(fileURLWithPath: out))
        let original = try StateValue(contentsOf: URL(fileURLWithPath: statsInput))
        #expect(tree == .dict(["optimizer": try #require(original.value(atPath: "optimizer"))]))
    }

    @Test func onlyAndDtypeTogetherToSafetensors() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("model.safetensors").path
        let result = try Tool.run(["convert", statsInput, out, "--only", "model/**", "--dtype", "bf16"])
        #expect(result.status == 0, "\(result.stderr)")
        let tree = try StateValue(contentsOf: URL(fileURLWithPath: out))
        let tensors = tree.tensors(matching: nil)
        #expect(tensors.count == 5)
        #expect(tensors.allSatisfy { $0.tensor.dtype == .bfloat16 })
    }

    @Test func onlyMatchingNothingIsAnError() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("none.pt").path
        let result = try Tool.run(["convert", statsInput, out, "--only", "nothing/*"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("[invalidArgument]"))
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test(arguments: ["int8", "complex64", "bf17"])
    func nonFloatingDtypeIsAUsageError(dtype: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("x.pt").path
        let result = try Tool.run(["convert", statsInput, out, "--dtype", dtype])
        #expect(result.status == 64, "\(result.stderr)")
    }
}
