import Checkpoint
import Foundation
import Testing
import TestSupport

// One selection syntax across commands (`--select`, with `--filter`, `--only` and stats' positional
// glob as older spellings), key paths that escape `/` and `*`, convert's prefixes, and `-` as input.

private let statsInput = Tool.fixtures.appendingPathComponent("numeric/stats_input.pt").path

/// A safetensors file whose names hold `/` and `*`, as Hugging Face and JAX exports have them.
private func slashFile() throws -> String {
    let path = Tool.temporaryDirectory().appendingPathComponent("slash.safetensors").path
    let tree = StateValue.dict([
        "enc/w": .tensor(try Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])),
        "enc/b": .tensor(try Tensor([0, 0] as [Float])),
        "a*b": .tensor(try Tensor([5] as [Float])),
    ])
    try tree.write(to: URL(fileURLWithPath: path), format: .safetensors)
    return path
}

@Suite("ckpt-tool --select and key paths")
struct SelectionTests {
    /// Problem 4: `extract x.safetensors enc/w` gave "no value at this key path"; the escaped
    /// path names the one key `enc/w`, and the unescaped one says how to escape.
    @Test func keysWithSlashesAreReachableEscaped() throws {
        let file = try slashFile()
        let out = Tool.temporaryDirectory().appendingPathComponent("w.npy").path
        let escaped = try Tool.run(["extract", file, #"enc\/w"#, out])
        #expect(escaped.status == 0, "\(escaped.stderr)")
        #expect(FileManager.default.fileExists(atPath: out))
        let plain = try Tool.run(["extract", file, "enc/w", out])
        #expect(plain.status == 1)
        #expect(plain.stderr.contains(#"written '\/'"#), "\(plain.stderr)")
        let tree = try Tool.run(["inspect", file])
        #expect(tree.stdout.contains(#"  enc\/w: Tensor"#), "\(tree.stdout)")
        let star = try Tool.run(["stats", file, "--select", #"a\*b"#])
        #expect(star.status == 0, "\(star.stderr)")
        #expect(star.stdout.contains(#"a\*b"#) && !star.stdout.contains("enc"))
    }

    /// Printed key paths are escaped, so what stats prints pastes back into --select.
    @Test func printedPathsPasteBackIntoSelect() throws {
        let file = try slashFile()
        let all = try Tool.run(["stats", file, "--json"])
        let document = try #require(try JSONSerialization.jsonObject(with: Data(all.stdout.utf8)) as? [String: Any])
        let paths = try #require((document["tensors"] as? [[String: Any]])?.compactMap { $0["path"] as? String })
        #expect(Set(paths) == [#"enc\/w"#, #"enc\/b"#, #"a\*b"#])
        for path in paths {
            let one = try Tool.run(["stats", file, "--select", path, "--json"])
            let selected = try #require(try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as? [String: Any])
            #expect((selected["tensors"] as? [[String: Any]])?.compactMap { $0["path"] as? String } == [path])
        }
    }

    /// Problem 8: the same selection was spelled `--filter`, a positional glob and `--only`. Each
    /// old spelling still works and selects what `--select` does.
    @Test func oldSpellingsAreAliasesOfSelect() throws {
        let pattern = "model/**/*.weight"
        let select = try Tool.run(["stats", statsInput, "--select", pattern])
        let positional = try Tool.run(["stats", statsInput, pattern])
        #expect(select.status == 0, "\(select.stderr)")
        #expect(select.stdout == positional.stdout)
        let directory = Tool.temporaryDirectory()
        let viaSelect = directory.appendingPathComponent("select.pt").path
        let viaOnly = directory.appendingPathComponent("only.pt").path
        #expect(try Tool.run(["convert", statsInput, viaSelect, "--select", pattern]).status == 0)
        #expect(try Tool.run(["convert", statsInput, viaOnly, "--only", pattern]).status == 0)
        let kept = try StateValue(contentsOf: URL(fileURLWithPath: viaSelect))
        #expect(kept == (try StateValue(contentsOf: URL(fileURLWithPath: viaOnly))))
        var tensors = 0
        kept.forEachTensor { path, _ in
            tensors += 1
            #expect(path.first == "model" && path.last?.description.hasSuffix(".weight") == true)
        }
        #expect(tensors > 0)
        let inspect = try Tool.run(["inspect", Tool.sample, "--select", "model/**"])
        let filter = try Tool.run(["inspect", Tool.sample, "--filter", "model/**"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout == filter.stdout)
    }

    /// Repeated --select keeps what any of the patterns matches.
    @Test func repeatedSelectIsAUnion() throws {
        let file = try slashFile()
        let result = try Tool.run(["stats", file, "--select", #"a\*b"#, "--select", #"enc\/w"#, "--json"])
        let document = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(Set((document["tensors"] as? [[String: Any]])?.compactMap { $0["path"] as? String } ?? []) == [#"a\*b"#, #"enc\/w"#])
    }

    /// Problem 8: a glob matching nothing exited 0 in inspect and 1 elsewhere. Now every command
    /// says so on stderr, naming the file absolutely and some keys that are there, and exits 1.
    @Test(arguments: [["inspect"], ["stats"], ["convert", "OUT"]])
    func aSelectionThatMatchesNothingFails(command: [String]) throws {
        let out = Tool.temporaryDirectory().appendingPathComponent("out.pt").path
        var arguments = [command[0], statsInput] + command.dropFirst().map { $0 == "OUT" ? out : $0 }
        arguments += ["--select", "no/such/*"]
        let result = try Tool.run(arguments)
        #expect(result.status == 1, "\(command[0]): \(result.stdout)")
        #expect(result.stderr.contains("matches --select 'no/such/*'"), "\(result.stderr)")
        #expect(result.stderr.contains(statsInput), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// diff compares only what --select keeps in each file, and fails with its error status (2, since
    /// 1 means "different") when neither file has a match.
    @Test func diffComparesTheSelection() throws {
        let directory = Tool.temporaryDirectory()
        let changed = directory.appendingPathComponent("changed.pt").path
        guard case .dict(var dict) = try StateValue(contentsOf: URL(fileURLWithPath: statsInput)) else { Issue.record("not a dict"); return }
        dict["extra"] = .int(1)
        try StateValue.dict(dict).write(to: URL(fileURLWithPath: changed), format: .pt)
        #expect(try Tool.run(["diff", statsInput, changed]).status == 1)
        let selected = try Tool.run(["diff", statsInput, changed, "--select", "model/**"])
        #expect(selected.status == 0, "\(selected.stdout)\(selected.stderr)")
        let onlyExtra = try Tool.run(["diff", statsInput, changed, "--select", "extra"])
        #expect(onlyExtra.status == 1)
        #expect(onlyExtra.stdout.contains("+ added    extra"), "\(onlyExtra.stdout)")
        let none = try Tool.run(["diff", statsInput, changed, "--select", "no/such/*"])
        #expect(none.status == 2)
        #expect(none.stderr.contains("matches --select 'no/such/*'"), "\(none.stderr)")
    }

    /// `-` reads standard input: a pipe is spooled to a temp file that is gone afterwards.
    @Test func standardInputIsReadThroughAPipe() throws {
        let spoolDirectory = Tool.temporaryDirectory()
        let piped = try Tool.run(
            executable: URL(fileURLWithPath: "/bin/sh"), ["-c", "cat \"$1\" | \"$2\" stats - --json", "sh", statsInput, Tool.binary.path],
            environment: ["TMPDIR": spoolDirectory.path])
        #expect(piped.status == 0, "\(piped.stderr)")
        let direct = try Tool.run(["stats", statsInput, "--json"])
        let pipedTensors = try #require(try JSONSerialization.jsonObject(with: Data(piped.stdout.utf8)) as? [String: Any])["tensors"]
        let directTensors = try #require(try JSONSerialization.jsonObject(with: Data(direct.stdout.utf8)) as? [String: Any])["tensors"]
        #expect((pipedTensors as? NSArray) == (directTensors as? NSArray))
        #expect(try FileManager.default.contentsOfDirectory(atPath: spoolDirectory.path).isEmpty)
        let converted = spoolDirectory.appendingPathComponent("from-stdin.safetensors").path
        let convert = try Tool.run(
            executable: URL(fileURLWithPath: "/bin/sh"), ["-c", "\"$2\" convert - \"$3\" < \"$1\"", "sh", statsInput, Tool.binary.path, converted])
        #expect(convert.status == 0, "\(convert.stderr)")
    }

    /// Several files in stats: one table each, or a JSON array of the one-file documents.
    @Test func statsTakesSeveralFiles() throws {
        let file = try slashFile()
        let text = try Tool.run(["stats", statsInput, file])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("==> \(statsInput) <==") && text.stdout.contains("==> \(file) <=="))
        let json = try Tool.run(["stats", statsInput, file, "--json"])
        let documents = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(documents.map { $0["file"] as? String } == [statsInput, file])
        #expect(documents.allSatisfy { $0["schema"] as? String == "ckpt-tool/stats" })
    }
}

@Suite("ckpt-tool convert --strip-prefix / --add-prefix")
struct PrefixTests {
    /// Problem 6: `convert --only model` to safetensors kept the `model/` prefix, so
    /// `model.load_state_dict(load_file(...))` refused the file. With --strip-prefix the keys are
    /// the model's own, and torch loads them strictly.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason))
    func aLightningCheckpointBecomesLoadableWeights() throws {
        let directory = Tool.temporaryDirectory()
        let source = directory.appendingPathComponent("lightning.ckpt").path
        let weights = directory.appendingPathComponent("model.safetensors").path
        let make = """
            import sys, torch
            torch.manual_seed(0)
            class Net(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
            torch.save({"state_dict": Net().state_dict(), "epoch": 3, "global_step": 30}, sys.argv[1])
            """
        let made = try Tool.run(executable: try #require(TorchVenv.python), ["-c", make, source])
        #expect(made.status == 0, "\(made.stderr)")
        let result = try Tool.run(["convert", source, weights, "--select", "state_dict", "--strip-prefix", "state_dict/", "--strip-prefix", "model."])
        #expect(result.status == 0, "\(result.stderr)")
        let check = """
            import sys, torch
            from safetensors.torch import load_file
            net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
            net.load_state_dict(load_file(sys.argv[2]), strict=True)
            source = torch.load(sys.argv[1], weights_only=True)["state_dict"]
            for k, v in net.state_dict().items():
                assert torch.equal(v, source["model." + k]), k
            print("ok")
            """
        let checked = try Tool.run(executable: try #require(TorchVenv.python), ["-c", check, source, weights])
        #expect(checked.status == 0 && checked.stdout.hasSuffix("ok\n"), "\(checked.stdout)\(checked.stderr)")
    }

    /// `--strip-prefix module.` renames keys and `_metadata` exactly as torch's
    /// consume_prefix_in_state_dict_if_present does to a DataParallel model's state_dict, and
    /// `--add-prefix module.` gives the original back.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason))
    func strippingMatchesTorchsConsumePrefix() throws {
        let directory = Tool.temporaryDirectory()
        let source = directory.appendingPathComponent("ddp.pt").path
        let expected = directory.appendingPathComponent("expected.pt").path
        let stripped = directory.appendingPathComponent("stripped.pt").path
        let restored = directory.appendingPathComponent("restored.pt").path
        let make = """
            import sys, torch
            from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present
            torch.manual_seed(0)
            net = torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)))
            sd = net.state_dict()
            sd["extra"] = torch.ones(1)
            torch.save(sd, sys.argv[1])
            consume_prefix_in_state_dict_if_present(sd, "module.")
            torch.save(sd, sys.argv[2])
            """
        let made = try Tool.run(executable: try #require(TorchVenv.python), ["-c", make, source, expected])
        #expect(made.status == 0, "\(made.stderr)")
        let strip = try Tool.run(["convert", source, stripped, "--strip-prefix", "module."])
        #expect(strip.status == 0, "\(strip.stderr)")
        let ours = try StateValue(contentsOf: URL(fileURLWithPath: stripped))
        let torchs = try StateValue(contentsOf: URL(fileURLWithPath: expected))
        // torch pops and re-inserts each renamed key, so they move behind `extra`; ckpt keeps every
        // key in its place. Same keys, values, dict type and `_metadata` otherwise.
        guard case .dict(let dict) = ours, case .dict(let expectedDict) = torchs else { Issue.record("not dicts"); return }
        #expect(dict.keys.map(\.description) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked", "extra"])
        #expect(Set(dict.keys) == Set(expectedDict.keys))
        for (key, value) in expectedDict { #expect(dict[key] == value, "\(key)") }
        #expect(dict.isOrderedDict == expectedDict.isOrderedDict)
        #expect(dict.attributes == expectedDict.attributes)
        let add = try Tool.run(["convert", stripped, restored, "--add-prefix", "module."])
        #expect(add.status == 0, "\(add.stderr)")
        // Every key gets the prefix back; `extra`, which never had it, now has it too.
        guard case .dict(let back) = try StateValue(contentsOf: URL(fileURLWithPath: restored)) else { return }
        #expect(back.keys.allSatisfy { $0.description.hasPrefix("module.") })
    }

    @Test func addingAWholeKeyWrapsAndStrippingItUnwraps() throws {
        let directory = Tool.temporaryDirectory()
        let wrapped = directory.appendingPathComponent("wrapped.pt").path
        let unwrapped = directory.appendingPathComponent("unwrapped.pt").path
        #expect(try Tool.run(["convert", statsInput, wrapped, "--add-prefix", "run/"]).status == 0)
        let original = try StateValue(contentsOf: URL(fileURLWithPath: statsInput))
        #expect(try StateValue(contentsOf: URL(fileURLWithPath: wrapped)).value(atPath: "run") == original)
        #expect(try Tool.run(["convert", wrapped, unwrapped, "--strip-prefix", "run/"]).status == 0)
        #expect(try StateValue(contentsOf: URL(fileURLWithPath: unwrapped)) == original)
    }

    @Test func aCollisionIsRefusedNamingTheKey() throws {
        let directory = Tool.temporaryDirectory()
        let source = directory.appendingPathComponent("collide.pt").path
        try StateValue.dict(["model.w": .int(1), "w": .int(2)]).write(to: URL(fileURLWithPath: source), format: .pt)
        let out = directory.appendingPathComponent("out.pt").path
        let result = try Tool.run(["convert", source, out, "--strip-prefix", "model."])
        #expect(result.status == 1)
        #expect(result.stderr.contains("w: two keys would both become this key"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
