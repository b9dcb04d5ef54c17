import Foundation
import Testing
import TestSupport

// `extract` writes .npy files that numpy itself must read back equal to what torch loads from
// the same checkpoint; the comparison runs once per test in the torch venv's Python.

private let dtypesFixture = Tool.fixtures.appendingPathComponent("pt/dtypes.pt").path

/// Asks numpy whether each `.npy` equals `expression` evaluated on torch's tensor `t` at its key
/// (NaNs equal, dtype and shape included).
private func numpyAgrees(checkpoint: String = dtypesFixture, _ files: [(key: String, npy: String)], expression: String) throws {
    let python = try #require(TorchVenv.python).path
    let script = """
        import sys, numpy as np, torch
        tree = torch.load(sys.argv[1])
        def at(node, path):
            for part in path.split('/'):
                if isinstance(node, (list, tuple)): node = node[int(part)]
                elif part.isdigit() and int(part) in node: node = node[int(part)]
                else: node = node[part]
            return node
        for key, npy in zip(sys.argv[2::2], sys.argv[3::2]):
            t = at(tree, key)
            want = \(expression)
            got = np.load(npy)
            assert got.dtype == want.dtype, (key, got.dtype, want.dtype)
            assert got.shape == want.shape, (key, got.shape, want.shape)
            assert np.array_equal(got, want, equal_nan=want.dtype.kind in 'fc'), (key, got, want)
        print('ok', len(sys.argv[2:]) // 2)
        """
    let result = try Tool.run(executable: URL(fileURLWithPath: python), ["-c", script, checkpoint] + files.flatMap { [$0.key, $0.npy] })
    #expect(result.status == 0 && result.stdout == "ok \(files.count)\n", "\(result.stderr)")
}

@Suite("ckpt-tool extract")
struct ExtractTests {
    @Test(.enabled(if: TorchVenv.python != nil, "needs the torch venv (CKPT_TORCH_VENV or ~/.cache/ckpt/venv-torch): numpy reads back what torch holds"))
    func numpyReadsBackWhatTorchHolds() throws {
        let directory = Tool.temporaryDirectory()
        var files: [(key: String, npy: String)] = []
        for key in ["float64", "float32", "float16", "complex64", "complex128", "int64", "int32", "int16", "int8", "uint8", "bool", "uint16", "uint32", "uint64"] {
            let out = directory.appendingPathComponent("\(key).npy").path
            let result = try Tool.run(["extract", dtypesFixture, key, out])
            #expect(result.status == 0, "\(key): \(result.stderr)")
            #expect(result.stderr.isEmpty, "\(key)")
            #expect(result.stdout.contains("→"))
            files.append((key, out))
        }
        try numpyAgrees(files, expression: "t.numpy()")
    }

    @Test(.enabled(if: TorchVenv.python != nil, "needs the torch venv (CKPT_TORCH_VENV or ~/.cache/ckpt/venv-torch): numpy reads back what torch holds"))
    func typesNumpyLacksAreWrittenAsBitsWithANote() throws {
        let directory = Tool.temporaryDirectory()
        for (key, bits) in [("bfloat16", "uint16"), ("float8_e4m3fn", "uint8"), ("float8_e5m2", "uint8")] {
            let out = directory.appendingPathComponent("\(key).npy").path
            let result = try Tool.run(["extract", dtypesFixture, key, out])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stderr.contains("note") && result.stderr.contains(bits) && result.stderr.contains("--cast"), "\(key)")
            try numpyAgrees([(key, out)], expression: "t.view(torch.\(bits)).numpy()")
        }
    }

    @Test(.enabled(if: TorchVenv.python != nil, "needs the torch venv (CKPT_TORCH_VENV or ~/.cache/ckpt/venv-torch): numpy reads back what torch holds"))
    func castToFloat32GivesTheValues() throws {
        let directory = Tool.temporaryDirectory()
        var files: [(key: String, npy: String)] = []
        for key in ["bfloat16", "float8_e4m3fn", "float8_e5m2", "float16"] {
            let out = directory.appendingPathComponent("\(key).npy").path
            let result = try Tool.run(["extract", dtypesFixture, key, out, "--cast", "float32"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stderr.isEmpty, "no note once cast")
            files.append((key, out))
        }
        try numpyAgrees(files, expression: "t.float().numpy()")
    }

    @Test(.enabled(if: TorchVenv.python != nil, "needs the torch venv (CKPT_TORCH_VENV or ~/.cache/ckpt/venv-torch): numpy reads back what torch holds"))
    func nestedKeyPathsAndViews() throws {
        let directory = Tool.temporaryDirectory()
        let stats = Tool.fixtures.appendingPathComponent("numeric/stats_input.pt").path
        var files: [(key: String, npy: String)] = []
        for key in ["optimizer/state/0/sum", "special/sliced", "special/expanded", "model/encoder.layer.1.weight", "special/scalar", "special/empty"] {
            let out = directory.appendingPathComponent(key.replacingOccurrences(of: "/", with: "_") + ".npy").path
            let result = try Tool.run(["extract", stats, key, out])
            #expect(result.status == 0, "\(key): \(result.stderr)")
            files.append((key, out))
        }
        try numpyAgrees(checkpoint: stats, files, expression: "t.numpy()")
    }

    @Test func missingKeyAndNonTensorAreErrors() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("x.npy").path
        let missing = try Tool.run(["extract", dtypesFixture, "no/such/key", out])
        #expect(missing.status == 1 && missing.stderr.contains("[missingEntry]"))
        let groups = Tool.fixtures.appendingPathComponent("pt/adagrad_groups.pt").path
        let notTensor = try Tool.run(["extract", groups, "param_groups", out])
        #expect(notTensor.status == 1 && notTensor.stderr.contains("[typeMismatch]"))
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test(arguments: ["float128", "bfloat16"])
    func castToADTypeNumpyCannotHoldIsAUsageError(dtype: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("x.npy").path
        let result = try Tool.run(["extract", dtypesFixture, "float32", out, "--cast", dtype])
        #expect(result.status == 64, "\(result.stderr)")
    }
}
