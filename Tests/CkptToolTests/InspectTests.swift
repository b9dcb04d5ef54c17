import Checkpoint
import Foundation
import Testing
import TestSupport

private func fixture(_ name: String) -> String { Tool.fixtures.appendingPathComponent(name).path }

/// Walks a sidecar NODE tree (scripts/make_fixtures.py schema) and collects its tensor nodes in order.
private func sidecarTensors(_ node: [String: Any], into result: inout [[String: Any]]) {
    switch node["type"] as? String {
    case "Tensor", "Parameter":
        result.append(node)
    case "dict", "OrderedDict":
        for item in node["items"] as? [[String: Any]] ?? [] {
            if let value = item["value"] as? [String: Any] { sidecarTensors(value, into: &result) }
        }
        for attribute in node["attributes"] as? [[String: Any]] ?? [] {
            if let value = attribute["value"] as? [String: Any] { sidecarTensors(value, into: &result) }
        }
    case "list", "tuple", "set":
        for item in node["items"] as? [[String: Any]] ?? [] { sidecarTensors(item, into: &result) }
    default:
        break
    }
}

private let itemSizes: [String: Int] = [
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "complex64": 8, "complex128": 16, "int64": 8, "int32": 4,
    "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "uint16": 2, "uint32": 4, "uint64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1,
]

@Suite("ckpt-tool inspect")
struct InspectTests {
    @Test func textShowsKeysTypesValuesAndTotals() throws {
        let result = try Tool.run(["inspect", fixture("safetensors/edge_shapes.safetensors")])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty)
        for line in [
            "dict (7 items)", "  cube: Tensor int16 [2, 3, 4] 48 B", "  scalar: Tensor float32 [] 4 B",
            "  empty_2d: Tensor int32 [3, 0] 0 B", "  unicode-ключ: Tensor uint8 [2] 2 B",
            "totals: 7 tensors, 49 parameters, 7 distinct storages, tensor bytes 206 B, storage bytes 206 B",
        ] {
            #expect(result.stdout.contains(line), "missing \(line) in\n\(result.stdout)")
        }
        #expect(!result.stdout.contains("\u{1B}"), "colors on a non-terminal")
    }

    @Test func textShowsScalarsByValueAndSharedStorages() throws {
        let result = try Tool.run(["inspect", fixture("pt/model_tied.pt")])
        #expect(result.status == 0, "\(result.stderr)")
        for text in [
            "OrderedDict (12 items, 1 attribute)", "head.weight: Tensor float32 [5, 3] 60 B storage #1 shared by 3 tensors",
            "view.transposed: Tensor float32 [3, 5] 60 B view(strides [1, 3], offset 0)",
            "extra.parameter: Parameter float32 [2] 8 B requires_grad", "@_metadata: OrderedDict (4 items)", "version: int = 1",
            "totals: 12 tensors, 93 parameters, 8 distinct storages",
        ] {
            #expect(result.stdout.contains(text), "missing \(text) in\n\(result.stdout)")
        }
    }

    @Test func jsonMatchesTheSafetensorsSidecar() throws {
        let json = try Tool.inspectJSON(fixture("safetensors/all_dtypes.safetensors"))
        let sidecar = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: Tool.fixtures.appendingPathComponent("safetensors/all_dtypes.expected.json"))) as? [String: Any])
        #expect(json["schema"] as? String == "ckpt-tool/inspect")
        #expect(json["schema_version"] as? Int == 2)
        #expect(json["format"] as? String == "safetensors")
        let expected = try #require(sidecar["tensors"] as? [[String: Any]])
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(tensors.map { $0["path"] as? String } == (sidecar["header_order"] as? [String])?.map { $0 })
        for tensor in tensors {
            let truth = try #require(expected.first { $0["name"] as? String == tensor["path"] as? String })
            #expect(tensor["dtype"] as? String == truth["dtype"] as? String)
            #expect(tensor["shape"] as? [Int] == truth["shape"] as? [Int])
            #expect(tensor["bytes"] as? Int == (truth["hex"] as? String).map { $0.count / 2 })
            #expect(tensor["type"] as? String == "Tensor")
        }
        let totals = try #require(json["totals"] as? [String: Any])
        let totalBytes = expected.reduce(0) { $0 + (($1["hex"] as? String)?.count ?? 0) / 2 }
        #expect(totals["tensors"] as? Int == expected.count)
        #expect(totals["storages"] as? Int == expected.count)
        #expect(totals["tensor_bytes"] as? Int == totalBytes)
        #expect(totals["storage_bytes"] as? Int == totalBytes)
    }

    @Test func jsonMatchesTheTorchSidecarForSharedStoragesAndAttributes() throws {
        let json = try Tool.inspectJSON(fixture("pt/model_tied.pt"))
        let sidecar = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: Tool.fixtures.appendingPathComponent("pt/model_tied.expected.json"))) as? [String: Any])
        var truth: [[String: Any]] = []
        sidecarTensors(try #require(sidecar["root"] as? [String: Any]), into: &truth)
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(tensors.count == truth.count)
        for (ours, theirs) in zip(tensors, truth) {
            #expect(ours["dtype"] as? String == theirs["dtype"] as? String)
            #expect(ours["shape"] as? [Int] == theirs["shape"] as? [Int])
            #expect(ours["strides"] as? [Int] == theirs["stride"] as? [Int])
            #expect(ours["storage_offset"] as? Int == theirs["storage_offset"] as? Int)
            #expect(ours["storage"] as? Int == theirs["storage"] as? Int)
            #expect(ours["storage_bytes"] as? Int == theirs["storage_nbytes"] as? Int)
            #expect(ours["requires_grad"] as? Bool == theirs["requires_grad"] as? Bool)
            #expect(ours["type"] as? String == theirs["type"] as? String)
        }
        var storageBytes: [Int: Int] = [:]
        for tensor in truth { storageBytes[tensor["storage"] as? Int ?? -1] = tensor["storage_nbytes"] as? Int }
        let tensorBytes = truth.reduce(0) { total, tensor in
            total + (tensor["shape"] as? [Int] ?? []).reduce(1, *) * (itemSizes[tensor["dtype"] as? String ?? ""] ?? 0)
        }
        let totals = try #require(json["totals"] as? [String: Any])
        #expect(totals["tensors"] as? Int == truth.count)
        #expect(totals["storages"] as? Int == storageBytes.count)
        #expect(totals["storage_bytes"] as? Int == storageBytes.values.reduce(0, +))
        #expect(totals["tensor_bytes"] as? Int == tensorBytes)
        let root = try #require(json["root"] as? [String: Any])
        #expect(root["type"] as? String == "OrderedDict")
        let attributes = try #require(root["attributes"] as? [[String: Any]])
        #expect(attributes.map { $0["name"] as? String } == ["_metadata"])
    }

    @Test func jsonNodesCarryPythonTypesAndScalarValues() throws {
        let path = Tool.temporaryDirectory().appendingPathComponent("tree.safetensors").path
        var state = StateDict()
        state[.int(3)] = .dict(["sum": .tensor(try Tensor([1, 2] as [Float]))])
        try Safetensors.write(.dict([
            "state": .dict(state),
            "scalars": .tuple([
                .int(-7), .float(.nan), .float(0.25), .string("s"), .bool(true), .none, .bytes([1, 2, 3]),
                .size([2, 3]), .device("cpu"), .dtype(.bfloat16), .complex(real: 1, imaginary: -2), .set([.int(1)]),
            ]),
        ]), to: URL(fileURLWithPath: path), options: SaveOptions(durable: false))
        let json = try Tool.inspectJSON(path)
        let root = try #require(json["root"] as? [String: Any])
        let items = try #require(root["items"] as? [[String: Any]])
        let state0 = try #require((items[0]["value"] as? [String: Any])?["items"] as? [[String: Any]])
        #expect(state0[0]["key"] as? Int == 3, "int keys are JSON numbers")
        let scalars = try #require((items[1]["value"] as? [String: Any])?["items"] as? [[String: Any]])
        #expect(scalars.map { $0["type"] as? String } == [
            "int", "float", "float", "str", "bool", "NoneType", "bytes", "Size", "device", "dtype", "complex", "set",
        ])
        #expect(scalars[0]["value"] as? Int == -7)
        #expect(scalars[1]["value"] as? String == "nan")
        #expect(scalars[2]["value"] as? Double == 0.25)
        #expect(scalars[3]["value"] as? String == "s")
        #expect(scalars[4]["value"] as? Bool == true)
        #expect(scalars[6]["length"] as? Int == 3)
        #expect(scalars[7]["value"] as? [Int] == [2, 3])
        #expect(scalars[9]["value"] as? String == "bfloat16")
        #expect(scalars[10]["imag"] as? Double == -2)
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(tensors.first?["path"] as? String == "state/3/sum")
        #expect(tensors.first?["key_path"] as? [Any] != nil)
    }

    /// Inspect must not read tensor bytes: a .ckpt whose tensor data is corrupted still inspects,
    /// while convert (which reads and CRC-checks every byte) refuses it.
    @Test func inspectNeverTouchesTensorData() throws {
        let directory = Tool.temporaryDirectory()
        let path = directory.appendingPathComponent("c.ckpt")
        let marker = [UInt8](repeating: 0xAB, count: 4096)
        try StateValue.dict(["w": .tensor(try Tensor(storage: Storage(bytes: marker), dtype: .uint8, shape: [4096]))]).write(to: path)
        var bytes = try Array(Data(contentsOf: path))
        let start = try #require(bytes.indices.first { bytes[$0] == 0xAB && bytes[$0..<min($0 + 4096, bytes.count)].allSatisfy { $0 == 0xAB } })
        bytes[start + 100] = 0xCD
        try Data(bytes).write(to: path)

        let inspect = try Tool.run(["inspect", path.path])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("w: Tensor uint8 [4096] 4.0 KiB"))
        let output = directory.appendingPathComponent("out.safetensors").path
        let convert = try Tool.run(["convert", path.path, output])
        #expect(convert.status == 1)
        #expect(convert.stderr.contains("[checksumMismatch]"), "\(convert.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output), "a failed convert left an output file")
    }

    /// A 4 GiB sparse safetensors file inspects in well under a second: only the header is read.
    @Test func inspectIsInstantOnAHugeFile() throws {
        let path = Tool.temporaryDirectory().appendingPathComponent("huge.safetensors").path
        let size = 4 << 30
        var header = Array("{\"big\":{\"dtype\":\"F32\",\"shape\":[\(size / 4)],\"data_offsets\":[0,\(size)]}}".utf8)
        header += Array(repeating: UInt8(ascii: " "), count: (8 - header.count % 8) % 8)
        var length = UInt64(header.count).littleEndian
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes: &length, count: 8) + Data(header)))
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(8 + header.count + size))
        try handle.close()

        let clock = ContinuousClock()
        var result: Tool.Result?
        let elapsed = try clock.measure { result = try Tool.run(["inspect", path, "--json"]) }
        #expect(result?.status == 0, "\(result?.stderr ?? "")")
        #expect(result?.stdout.contains("\"tensor_bytes\" : \(size)") == true)
        #expect(elapsed < .seconds(1), "inspect of a 4 GiB file took \(elapsed)")
    }

    @Test func missingFileIsACleanError() throws {
        let result = try Tool.run(["inspect", "/nonexistent/model.ckpt"])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "ckpt-tool: /nonexistent/model.ckpt: cannot open: No such file or directory [io]\n")
        #expect(!result.looksLikeCrash)
    }

    @Test(arguments: [0, 1, 7, 8, 9, 100, 600, 669])
    func truncatedFileIsACleanError(length: Int) throws {
        let bytes = try Data(contentsOf: Tool.fixtures.appendingPathComponent("safetensors/edge_shapes.safetensors"))
        let path = Tool.temporaryDirectory().appendingPathComponent("cut.safetensors").path
        try bytes.prefix(length).write(to: URL(fileURLWithPath: path))
        for arguments in [["inspect", path], ["inspect", path, "--json"]] {
            let result = try Tool.run(arguments)
            #expect(result.status == 1)
            #expect(result.stdout.isEmpty)
            #expect(result.stderr.hasPrefix("ckpt-tool: "), "\(result.stderr)")
            #expect(result.stderr.contains(path))
            #expect(!result.looksLikeCrash, "\(result.stderr)")
        }
    }

    @Test func usageErrorsExitWith64() throws {
        let result = try Tool.run(["inspect"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("Usage"))
        let negative = try Tool.run(["inspect", fixture("safetensors/edge_shapes.safetensors"), "--max-items", "-1"])
        #expect(negative.status == 64)
    }

    @Test func maxItemsLimitsEachContainerAndCountsWhatItHides() throws {
        let result = try Tool.run(["inspect", fixture("safetensors/edge_shapes.safetensors"), "--max-items", "2"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("\n  … 5 more (--max-items 2; 0 shows all)\n"), "\(result.stdout)")
        #expect(result.stdout.contains("totals: 7 tensors"))
    }

    /// `--max-items 0` shows every child: 250 keys, more than the default 100, all printed.
    @Test func maxItemsZeroShowsEverything() throws {
        let path = Tool.temporaryDirectory().appendingPathComponent("wide.safetensors")
        var dict = StateDict()
        for index in 0..<250 { dict[.string("k\(index)")] = .tensor(try Tensor([Float(index)])) }
        try StateValue.dict(dict).write(to: path, options: SaveOptions(durable: false))
        let all = try Tool.run(["inspect", path.path, "--max-items", "0"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(all.stdout.contains("\n  k249: Tensor float32 [1] 4 B\n"))
        #expect(!all.stdout.contains("more (--max-items"))
        let byDefault = try Tool.run(["inspect", path.path])
        #expect(!byDefault.stdout.contains("k100:"))
        #expect(byDefault.stdout.contains("\n  … 150 more (--max-items 100; 0 shows all)\n"), "\(byDefault.stdout)")
    }
}

/// `script` runs the tool on a pseudo-terminal, where colors are allowed.
private let scriptCommand = ["/usr/bin/script", "/bin/script"].first { FileManager.default.isExecutableFile(atPath: $0) }

@Suite("ckpt-tool colors")
struct ColorTests {
    @Test(.enabled(if: scriptCommand != nil, "needs util-linux `script` to give the tool a terminal"))
    func colorsOnlyOnATerminalAndNeverWithNoColor() throws {
        let script = URL(fileURLWithPath: try #require(scriptCommand))
        let command = "'\(Tool.binary.path)' inspect '\(fixture("safetensors/edge_shapes.safetensors"))'"
        let onTerminal = try Tool.run(executable: script, ["-qec", command, "/dev/null"], removing: ["NO_COLOR"])
        #expect(onTerminal.status == 0)
        #expect(onTerminal.stdout.contains("\u{1B}["), "no colors on a terminal:\n\(onTerminal.stdout)")
        let noColor = try Tool.run(executable: script, ["-qec", command, "/dev/null"], environment: ["NO_COLOR": "1"])
        #expect(noColor.status == 0)
        #expect(noColor.stdout.contains("cube: Tensor int16"))
        #expect(!noColor.stdout.contains("\u{1B}["), "colors despite NO_COLOR")
        let flag = try Tool.run(executable: script, ["-qec", command + " --no-color", "/dev/null"], removing: ["NO_COLOR"])
        #expect(!flag.stdout.contains("\u{1B}["), "colors despite --no-color")
    }

    /// verify and diff color PASS/FAIL and +/- lines on a terminal only; --json never has colors.
    @Test(.enabled(if: scriptCommand != nil, "needs util-linux `script` to give the tool a terminal"))
    func verifyAndDiffFollowTheSameColorRules() throws {
        let script = URL(fileURLWithPath: try #require(scriptCommand))
        let file = fixture("pt/model_tied.pt")
        let other = fixture("pt/adagrad_named.pt")
        for command in ["verify '\(file)'", "diff '\(file)' '\(other)'"] {
            let line = "'\(Tool.binary.path)' \(command)"
            let onTerminal = try Tool.run(executable: script, ["-qc", line, "/dev/null"], removing: ["NO_COLOR"])
            #expect(onTerminal.stdout.contains("\u{1B}["), "no colors on a terminal for \(command)")
            let noColor = try Tool.run(executable: script, ["-qc", line, "/dev/null"], environment: ["NO_COLOR": "1"])
            #expect(!noColor.stdout.contains("\u{1B}["), "colors despite NO_COLOR for \(command)")
            let json = try Tool.run(executable: script, ["-qc", line + " --json", "/dev/null"], removing: ["NO_COLOR"])
            #expect(!json.stdout.contains("\u{1B}["), "colors in --json for \(command)")
        }
    }
}

/// Prints, for each optimizer state_dict file given, what torch itself sees in it: each group's
/// options and params, how many parameters carry each state key, and the min/max `step`. The last
/// argument is a directory where it first saves a run whose parameters took different numbers of steps.
private let describeOptimizers = #"""
import json, sys, torch
out = sys.argv[-1]
torch.manual_seed(4)
a, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2))
optimizer = torch.optim.Adagrad([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
for step in range(5):
    optimizer.zero_grad()
    loss = a.square().sum() + (b.sum() if step >= 3 else 0)
    loss.backward()
    optimizer.step()
torch.save({"epoch": 1, "optimizer": optimizer.state_dict()}, f"{out}/uneven.pt")
def find(tree):
    if isinstance(tree, dict) and set(tree) == {"state", "param_groups"}: return tree
    if isinstance(tree, dict):
        for value in tree.values():
            found = find(value)
            if found is not None: return found
result = {}
for path in sys.argv[1:-1] + [f"{out}/uneven.pt"]:
    sd = find(torch.load(path))
    keys, steps = {}, []
    for entry in sd["state"].values():
        for key, value in entry.items():
            keys[key] = keys.get(key, 0) + 1
            if key == "step": steps.append(float(value))
    result[path.split("/")[-1]] = {
        "groups": [{"params": g["params"], "hyperparameters": {k: v for k, v in g.items() if k not in ("params", "param_names")},
                    "param_names": g.get("param_names")} for g in sd["param_groups"]],
        "state_keys": keys, "step": {"min": min(steps), "max": max(steps)} if steps else None,
    }
print(json.dumps(result))
"""#

@Suite("ckpt-tool inspect: optimizers, --depth, --filter")
struct InspectSelectionTests {
    @Test(.enabled(if: TorchVenv.python != nil, "needs the torch venv to describe the optimizers; NOT checked"))
    func optimizerSummariesMatchWhatTorchSees() throws {
        let directory = Tool.temporaryDirectory()
        let script = directory.appendingPathComponent("describe.py")
        try describeOptimizers.write(to: script, atomically: true, encoding: .utf8)
        let files = [fixture("pt/adagrad_groups.pt"), fixture("pt/adagrad_named.pt"), Tool.sample]
        let torch = try Tool.run(executable: try #require(TorchVenv.python), [script.path] + files + [directory.path])
        #expect(torch.status == 0, "\(torch.stderr)")
        let truth = try #require(try JSONSerialization.jsonObject(with: Data(torch.stdout.utf8)) as? [String: [String: Any]])
        for file in files + [directory.appendingPathComponent("uneven.pt").path] {
            let expected = try #require(truth[URL(fileURLWithPath: file).lastPathComponent])
            let optimizers = try #require(try Tool.inspectJSON(file)["optimizers"] as? [[String: Any]])
            try #require(optimizers.count == 1, "\(file)")
            let optimizer = optimizers[0]
            let groups = try #require(optimizer["groups"] as? [[String: Any]])
            let expectedGroups = try #require(expected["groups"] as? [[String: Any]])
            #expect(groups.count == expectedGroups.count)
            for (group, truth) in zip(groups, expectedGroups) {
                #expect(group["params"] as? [Int] == truth["params"] as? [Int], "\(file)")
                #expect(group["param_names"] as? [String] == truth["param_names"] as? [String], "\(file)")
                #expect(NSDictionary(dictionary: group["hyperparameters"] as? [String: Any] ?? [:])
                    == NSDictionary(dictionary: truth["hyperparameters"] as? [String: Any] ?? [:]), "\(file)")
            }
            #expect(optimizer["state_keys"] as? [String: Int] == expected["state_keys"] as? [String: Int], "\(file)")
            let step = try #require(optimizer["step"] as? [String: Double])
            #expect(step == expected["step"] as? [String: Double], "\(file)")
            #expect(optimizer["parameters"] as? Int == expectedGroups.reduce(0) { $0 + (($1["params"] as? [Int])?.count ?? 0) })
        }
    }

    @Test func textSummarizesTheOptimizerAfterTheTree() throws {
        let result = try Tool.run(["inspect", fixture("pt/adagrad_named.pt")])
        #expect(result.status == 0, "\(result.stderr)")
        for line in [
            "optimizer at the root: 2 groups, 4 parameters, 4 with state; state keys step ×4, sum ×4; step 2; 8 state tensors, 68 B",
            "  group 0: 2 parameters (0.weight, 0.bias)  lr=0.01 lr_decay=0 eps=1e-10",
            "  group 1: 2 parameters (2.weight, 2.bias)  lr=0.2 lr_decay=0.001",
        ] {
            #expect(result.stdout.contains(line), "missing \(line) in\n\(result.stdout)")
        }
    }

    @Test func filesWithoutAnOptimizerHaveNone() throws {
        let json = try Tool.inspectJSON(fixture("pt/model_tied.pt"))
        #expect((json["optimizers"] as? [Any])?.isEmpty == true)
        #expect(!(try Tool.run(["inspect", fixture("pt/model_tied.pt")]).stdout.contains("optimizer at")))
    }

    @Test func depthCutsTheTreeButNotTheTotals() throws {
        let text = try Tool.run(["inspect", Tool.sample, "--depth", "1"])
        #expect(text.status == 0)
        #expect(text.stdout.contains("\n  model: OrderedDict (4 items, 1 attribute)\n  optimizer: dict (2 items)\n"), "\(text.stdout)")
        #expect(!text.stdout.contains("0.weight"))
        #expect(text.stdout.contains("totals: 12 tensors"))
        let cut = try Tool.run(["inspect", Tool.sample, "--depth", "1", "--json"])
        let root = try #require((try JSONSerialization.jsonObject(with: Data(cut.stdout.utf8)) as? [String: Any])?["root"] as? [String: Any])
        let items = try #require(root["items"] as? [[String: Any]])
        let model = try #require(items.first?["value"] as? [String: Any])
        #expect(model["items_omitted"] as? Int == 5)
        #expect(model["items"] == nil)
        #expect((items.last?["value"] as? [String: Any])?["value"] as? Double != nil, "a scalar at the cut keeps its value")
        let zero = try Tool.run(["inspect", Tool.sample, "--depth", "0"])
        #expect(zero.stdout.contains("dict (4 items)\n\n"), "\(zero.stdout)")
        #expect(try Tool.run(["inspect", Tool.sample, "--depth", "-1"]).status == 64)
    }

    @Test func filterKeepsMatchesAndTheirAncestors() throws {
        let text = try Tool.run(["inspect", Tool.sample, "--filter", "model/*.weight"])
        #expect(text.status == 0)
        #expect(text.stdout.contains("  model: OrderedDict (4 items, 1 attribute)\n    0.weight: Tensor float32 [16, 8] 512 B\n    2.weight: Tensor float32 [4, 16] 256 B\n"), "\(text.stdout)")
        #expect(!text.stdout.contains("bias"))
        #expect(!text.stdout.contains("epoch"))
        #expect(!text.stdout.contains("optimizer"), "an optimizer outside the filter is not summarized")
        #expect(text.stdout.contains("totals (filtered): 2 tensors, 192 parameters, 2 distinct storages, tensor bytes 768 B"))

        let result = try Tool.run(["inspect", Tool.sample, "--filter", "model/*.weight", "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["root"] is NSNull)
        #expect(json["filter"] as? String == "model/*.weight")
        let matches = try #require(json["matches"] as? [[String: Any]])
        #expect(matches.map { $0["path"] as? String } == ["model/0.weight", "model/2.weight"])
        #expect((matches.first?["node"] as? [String: Any])?["shape"] as? [Int] == [16, 8])
        #expect((json["tensors"] as? [[String: Any]])?.map { $0["path"] as? String } == ["model/0.weight", "model/2.weight"])
        #expect((json["totals"] as? [String: Any])?["tensor_bytes"] as? Int == 768)
    }

    /// The tool writes its own JSON: awkward strings must come back unchanged through a real parser.
    @Test func jsonEscapesEveryAwkwardString() throws {
        let awkward = "quote\" backslash\\ slash/ newline\n tab\t bell\u{07} nul\u{00} ключ 🙂"
        let path = Tool.temporaryDirectory().appendingPathComponent("strings.ckpt")
        try StateValue.dict([awkward: .string(awkward), "nan": .float(.nan), "big": .int(.max), "tiny": .float(.leastNonzeroMagnitude)]).write(to: path,
            options: SaveOptions(durable: false))
        let json = try Tool.inspectJSON(path.path)
        let items = try #require((json["root"] as? [String: Any])?["items"] as? [[String: Any]])
        #expect(items.first?["key"] as? String == awkward)
        #expect((items.first?["value"] as? [String: Any])?["value"] as? String == awkward)
        #expect((items[1]["value"] as? [String: Any])?["value"] as? String == "nan")
        #expect((items[2]["value"] as? [String: Any])?["value"] as? Int64 == .max)
        #expect((items[3]["value"] as? [String: Any])?["value"] as? Double == .leastNonzeroMagnitude)
    }

    @Test func filterOnAContainerKeepsItsSubtreeAndListIndices() throws {
        let text = try Tool.run(["inspect", Tool.sample, "--filter", "optimizer/param_groups/*"])
        #expect(text.status == 0)
        #expect(text.stdout.contains("  optimizer: dict (2 items)\n    param_groups: list (1 item)\n      [0]: dict ("), "\(text.stdout)")
        #expect(text.stdout.contains("        lr: float = 0.05"))
        #expect(text.stdout.contains("optimizer at optimizer:"))
        #expect(text.stdout.contains("totals (filtered): 0 tensors"))
        let all = try Tool.run(["inspect", Tool.sample, "--filter", "optimizer/**/sum", "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(all.stdout.utf8)) as? [String: Any])
        #expect((json["tensors"] as? [[String: Any]])?.map { $0["path"] as? String } == (0..<4).map { "optimizer/state/\($0)/sum" })
        // A selection that matches nothing is an error, as in every command (it printed an empty tree, exit 0).
        let none = try Tool.run(["inspect", Tool.sample, "--filter", "nothing/here"])
        #expect(none.status == 1)
        #expect(none.stderr.contains("matches --select 'nothing/here'"))
    }
}
