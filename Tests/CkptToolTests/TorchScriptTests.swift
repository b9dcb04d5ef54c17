import Checkpoint
import Foundation
import Testing
import TestSupport

// TorchScript archives (scripts/make_torchscript_fixtures.py) through the binary: inspect lists the
// parameters by module path, convert writes the state dict, and torch's load_state_dict takes it
// for the same eager model.

private func scriptFile(_ name: String) -> String { Tool.fixtures.appendingPathComponent("torchscript/\(name).pt").path }

@Suite("ckpt-tool on TorchScript archives")
struct TorchScriptTests {
    @Test func inspectShowsParametersByModulePath() throws {
        let result = try Tool.run(["inspect", scriptFile("scripted"), "--no-color"])
        #expect(result.status == 0, "\(result.stderr)")
        for line in [
            "OrderedDict (14 items)\n  scale: Tensor float32 [2] 8 B\n  frozen: Tensor float32 [2] 8 B\n  block.steps: Tensor int64 [4] 32 B\n",
            "  norm.num_batches_tracked: Tensor int64 [] 8 B\n  head.0.weight: Tensor float32 [2, 2] 16 B\n",
        ] {
            #expect(result.stdout.contains(line), "missing \(line.debugDescription) in\n\(result.stdout)")
        }
        let verify = try Tool.run(["verify", scriptFile("scripted"), "--no-color"])
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("torch.jit.load(f)"), "\(verify.stdout)")
    }

    /// The safetensors convert writes is a state dict torch's load_state_dict takes for the eager
    /// model the archive was scripted from, with the values torch.jit.load reads.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason), arguments: [("scripted", "Scripted"), ("traced", "Traced")])
    func loadStateDictAcceptsTheConvertedStateDict(name: String, eagerClass: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("\(name).safetensors").path
        let pt = Tool.temporaryDirectory().appendingPathComponent("\(name).pt").path
        for target in [out, pt] {
            let result = try Tool.run(["convert", scriptFile(name), target, "--no-sync"])
            #expect(result.status == 0, "\(result.stderr)")
        }
        let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts").path
        let script = """
            import sys, torch
            from safetensors.torch import load_file
            sys.path.insert(0, sys.argv[3])
            import make_torchscript_fixtures as fixtures
            state = load_file(sys.argv[2])
            jit = torch.jit.load(sys.argv[1]).state_dict()
            # safetensors orders tensors its own way; the .pt keeps state_dict()'s order.
            assert set(state) == set(jit) and list(torch.load(sys.argv[5])) == list(jit), (list(state), list(jit))
            for key in jit:
                assert torch.equal(state[key], jit[key]) and state[key].dtype == jit[key].dtype, key
            model = getattr(fixtures, sys.argv[4])()
            missing, unexpected = model.load_state_dict(state, strict=False)
            eager = model.state_dict()
            # TorchScript keeps no mark of a non-persistent buffer: the one key load_state_dict does not expect.
            assert missing == [] and set(unexpected) == set(state) - set(eager), (missing, unexpected)
            for key in eager:
                assert torch.equal(eager[key], state[key]), key
            if not unexpected:
                model.load_state_dict(state, strict=True)
            print("accepted", len(eager), "unexpected", unexpected)
            """
        let output = try python(script, [scriptFile(name), out, scripts, eagerClass, pt])
        #expect(output.status == 0 && output.stdout.contains("accepted"), "\(output.stdout)\(output.stderr)")
        if name == "traced" { #expect(output.stdout.contains("unexpected ['mask']"), "\(output.stdout)") }
    }
}
