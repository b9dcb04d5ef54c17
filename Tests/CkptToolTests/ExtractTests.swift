import Foundation
import Testing

// `extract` writes .npy files that numpy itself must read back equal to what torch loads from
// the same checkpoint; the comparison runs in the torch venv's Python.

private let dtypesFixture = Tool.fixtures.appendingPathComponent("pt/dtypes.pt").path

/// The torch venv's python, or nil (then every numpy check records that it did NOT run).
private let python: String? = {
    let venv = ProcessInfo.processInfo.environment["CKPT_TORCH_VENV"]
        ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/ckpt/venv-torch").path
    let path = venv + "/bin/python"
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}()

/// Asks numpy whether `npy` equals `expression` evaluated on torch's tensor `t` (NaNs equal), dtype and shape included.
private func numpyAgrees(npy: String, key: String, expression: String) throws {
    guard let python else {
        Issue.record("torch venv not found (set CKPT_TORCH_VENV): numpy round trip NOT checked")
        return
    }
    let script = """
        import sys, numpy as np, torch
        t = torch.load(sys.argv[1])[sys.argv[2]]
        want = \(expression)
        got = np.load(sys.argv[3])
        assert got.dtype == want.dtype, (got.dtype, want.dtype)
        assert got.shape == want.shape, (got.shape, want.shape)
        assert np.array_equal(got, want, equal_nan=want.dtype.kind in 'fc'), (got, want)
        print('ok')
        """
    let result = try Tool.run(executable: URL(fileURLWithPath: python), ["-c", script, dtypesFixture, key, npy])
    #expect(result.status == 0 && result.stdout == "ok\n", "\(key): \(result.stderr)")
}

@Suite("ckpt-tool extract")
struct ExtractTests {
    @Test(arguments: ["float64", "float32", "float16", "complex64", "complex128", "int64", "int32", "int16", "int8", "uint8", "bool", "uint16", "uint32", "uint64"])
    func numpyReadsBackWhatTorchHolds(key: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("\(key).npy").path
        let result = try Tool.run(["extract", dtypesFixture, key, out])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty)
        #expect(result.stdout.contains("→"))
        try numpyAgrees(npy: out, key: key, expression: "t.numpy()")
    }

    @Test(arguments: [("bfloat16", "uint16"), ("float8_e4m3fn", "uint8"), ("float8_e5m2", "uint8")])
    func typesNumpyLacksAreWrittenAsBitsWithANote(key: String, bits: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("\(key).npy").path
        let result = try Tool.run(["extract", dtypesFixture, key, out])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("note") && result.stderr.contains(bits) && result.stderr.contains("--cast"))
        try numpyAgrees(npy: out, key: key, expression: "t.view(torch.\(bits)).numpy()")
    }

    @Test(arguments: ["bfloat16", "float8_e4m3fn", "float8_e5m2", "float16"])
    func castToFloat32GivesTheValues(key: String) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("\(key).npy").path
        let result = try Tool.run(["extract", dtypesFixture, key, out, "--cast", "float32"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty, "no note once cast")
        try numpyAgrees(npy: out, key: key, expression: "t.float().numpy()")
    }

    @Test func nestedKeyPathsAndViews() throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("sum.npy").path
        let stats = Tool.fixtures.appendingPathComponent("numeric/stats_input.pt").path
        #expect(try Tool.run(["extract", stats, "optimizer/state/0/sum", out]).status == 0)
        let sliced = Tool.temporaryDirectory().appendingPathComponent("sliced.npy").path
        #expect(try Tool.run(["extract", stats, "special/sliced", sliced]).status == 0)
        guard let python else {
            Issue.record("torch venv not found (set CKPT_TORCH_VENV): numpy round trip NOT checked")
            return
        }
        let script = """
            import sys, numpy as np, torch
            tree = torch.load(sys.argv[1])
            assert np.array_equal(np.load(sys.argv[2]), tree['optimizer']['state'][0]['sum'].numpy())
            assert np.array_equal(np.load(sys.argv[3]), tree['special']['sliced'].numpy())
            print('ok')
            """
        let result = try Tool.run(executable: URL(fileURLWithPath: python), ["-c", script, stats, out, sliced])
        #expect(result.stdout == "ok\n", "\(result.stderr)")
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
