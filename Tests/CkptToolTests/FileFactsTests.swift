import Checkpoint
import Foundation
import Testing
import TestSupport

// What inspect and verify say about a file beyond its tree, the facts that explain why torch will or
// will not load it: the format of the contents, the device each storage was saved on, safetensors
// metadata, the tensors a damaged storage record holds, parameter totals, and keys as Python tells them.

private func fixture(_ name: String) -> String { Tool.fixtures.appendingPathComponent(name).path }

private func json(_ result: Tool.Result) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
}

/// A copy of a fixture under another name, in a fresh directory.
private func copy(_ name: String, as newName: String) throws -> String {
    let path = Tool.temporaryDirectory().appendingPathComponent(newName).path
    try FileManager.default.copyItem(atPath: fixture(name), toPath: path)
    return path
}

/// The devices fixtures' truth, written by torch (scripts/make_device_fixtures.py).
private func deviceTruth(_ name: String) throws -> [String: Any] {
    let all = try JSONSerialization.jsonObject(with: Data(contentsOf: Tool.fixtures.appendingPathComponent("devices/expected.json")))
    return try #require((all as? [String: Any])?[name] as? [String: Any])
}

@Suite("inspect: the format comes from the contents")
struct FormatFromContentsTests {
    /// A Lightning checkpoint is a torch.save zip named `.ckpt`: its format is pt, with a note.
    @Test func aTorchArchiveNamedCkptIsPt() throws {
        let path = try copy("pt/model_tied.pt", as: "epoch=3-step=100.ckpt")
        let document = try json(try Tool.run(["inspect", path, "--json"]))
        #expect(document["format"] as? String == "pt")
        #expect(document["extension_format"] as? String == "ckpt")
        #expect(document["schema_version"] as? Int == 2)
        let text = try Tool.run(["inspect", path])
        #expect(text.status == 0)
        let lines = text.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("\(path)  pt  ") == true, "\(text.stdout)")
        #expect(lines.dropFirst().first?.hasPrefix("note: the extension .ckpt says ckpt, but the contents are pt") == true, "\(text.stdout)")
    }

    @Test func aTorchArchiveNamedSafetensorsIsPt() throws {
        let path = try copy("pt/model_tied.pt", as: "model.safetensors")
        let document = try json(try Tool.run(["inspect", path, "--json"]))
        #expect(document["format"] as? String == "pt")
        #expect(document["extension_format"] as? String == "safetensors")
        #expect(try Tool.run(["inspect", path]).stdout.contains("note: the extension .safetensors says safetensors, but the contents are pt"))
    }

    /// Contents and name agree (or the name says nothing): no note; a ckpt archive is ckpt whatever its name.
    @Test func agreeingNamesHaveNoNote() throws {
        let ckpt = Tool.temporaryDirectory().appendingPathComponent("run.bin").path
        #expect(try Tool.run(["convert", Tool.sample, ckpt, "--format", "ckpt", "--no-sync"]).status == 0)
        let document = try json(try Tool.run(["inspect", ckpt, "--json"]))
        #expect(document["format"] as? String == "ckpt")
        #expect(document["extension_format"] is NSNull)
        for path in [ckpt, fixture("pt/model_tied.pt"), fixture("safetensors/edge_shapes.safetensors")] {
            #expect(!(try Tool.run(["inspect", path]).stdout.contains("note:")), "\(path)")
        }
    }
}

@Suite("inspect and verify: devices")
struct DeviceTests {
    /// Each tensor's device is the location torch.save recorded (the fixture's truth, from torch).
    @Test(arguments: ["on_mps.pt", "mixed.pt"])
    func inspectShowsEachTensorsDevice(_ name: String) throws {
        let truth = try deviceTruth(name)
        let locations = try #require(truth["locations"] as? [String: String])
        let document = try json(try Tool.run(["inspect", fixture("devices/\(name)"), "--json"]))
        #expect(document["devices"] as? [String] == truth["devices"] as? [String])
        let tensors = try #require(document["tensors"] as? [[String: Any]])
        #expect(tensors.count == locations.count)
        for tensor in tensors {
            let path = try #require(tensor["path"] as? String)
            #expect(tensor["device"] as? String == locations[path], "\(path)")
        }
        let text = try Tool.run(["inspect", fixture("devices/\(name)")])
        for (path, location) in locations {
            let key = path.split(separator: "/").last.map(String.init) ?? path
            let line = try #require(text.stdout.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + ":") })
            #expect(line.hasSuffix(" on \(location)") == (location != "cpu"), "\(line)")
        }
        #expect(text.stdout.contains("torch.load(f, map_location=\"cpu\") loads it anywhere"), "\(text.stdout)")
    }

    /// A legacy file records locations in its persistent ids as a zip archive does: lpips' weights
    /// (pickled by Python 2 on a GPU) and facenet's (on the CPU), against the locations torch
    /// handed its map_location function (scripts/make_foreign_fixtures.py).
    @Test(arguments: ["foreign_lpips_v0_0_alex", "foreign_facenet_pnet"])
    func aLegacyFileNamesItsDevices(_ name: String) throws {
        let sidecar = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Tool.fixtures.appendingPathComponent("pt/\(name).expected.json"))) as? [String: Any]
        let locations = try #require(sidecar?["locations"] as? [String: String])
        let document = try json(try Tool.run(["inspect", fixture("pt/\(name).pt"), "--json"]))
        #expect(document["devices"] as? [String] == Array(Set(locations.values)))
        let tensors = try #require(document["tensors"] as? [[String: Any]])
        #expect(tensors.count == locations.count)
        for tensor in tensors {
            let path = try #require(tensor["path"] as? String)
            #expect(tensor["device"] as? String == locations[path], "\(path)")
        }
    }

    @Test func safetensorsAndCPUFilesNameNoOtherDevice() throws {
        let safetensors = try json(try Tool.run(["inspect", fixture("safetensors/edge_shapes.safetensors"), "--json"]))
        #expect((safetensors["devices"] as? [String])?.isEmpty == true)
        #expect((safetensors["tensors"] as? [[String: Any]])?.allSatisfy { $0["device"] is NSNull } == true)
        let cpu = try json(try Tool.run(["inspect", fixture("pt/model_tied.pt"), "--json"]))
        #expect(cpu["devices"] as? [String] == ["cpu"])
        #expect(!(try Tool.run(["inspect", fixture("pt/model_tied.pt")]).stdout.contains("devices:")))
    }

    /// verify warns (exit 0; 1 with --strict) and gives the torch.load call that works anywhere.
    @Test(arguments: ["on_mps.pt", "mixed.pt"])
    func verifyWarnsWithMapLocation(_ name: String) throws {
        let truth = try deviceTruth(name)
        let result = try Tool.run(["verify", fixture("devices/\(name)"), "--json"])
        #expect(result.status == 0, "\(result.stdout)")
        let document = try json(result)
        #expect(document["status"] as? String == "warning")
        #expect(document["devices"] as? [String] == truth["devices"] as? [String])
        #expect(document["torch_load"] as? String == "torch.load(f, map_location=\"cpu\")")
        let check = try #require((document["checks"] as? [[String: Any]])?.first { $0["name"] as? String == "devices" })
        #expect(check["status"] as? String == "warning")
        let elsewhere = (truth["devices"] as? [String] ?? []).filter { $0 != "cpu" }
        for device in elsewhere { #expect((check["detail"] as? String)?.contains("saved on \(device)") == true) }
        let text = try Tool.run(["verify", fixture("devices/\(name)")])
        #expect(text.stdout.contains("WARN devices"), "\(text.stdout)")
        #expect(text.stdout.contains("load it in torch with:\n  torch.load(f, map_location=\"cpu\")\n"), "\(text.stdout)")
        #expect(try Tool.run(["verify", fixture("devices/\(name)"), "--strict"]).status == 1)
    }

    @Test func verifyPassesStoragesOnTheCPU() throws {
        let document = try json(try Tool.run(["verify", fixture("pt/model_tied.pt"), "--json"]))
        #expect(document["devices"] as? [String] == ["cpu"])
        #expect(document["torch_load"] is NSNull)
        let check = try #require((document["checks"] as? [[String: Any]])?.first { $0["name"] as? String == "devices" })
        #expect(check["status"] as? String == "passed")
    }

    /// The call verify prints is what loads the file in torch here, where torch.load(f) alone fails.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason), arguments: ["on_mps.pt", "mixed.pt"])
    func theAdvisedCallLoadsTheFileInTorch(_ name: String) throws {
        let path = fixture("devices/\(name)")
        let call = try #require(try json(try Tool.run(["verify", path, "--json"]))["torch_load"] as? String)
        let script = """
            import sys, torch
            f = sys.argv[1]
            try:
                torch.load(f)
                print("plain torch.load loaded it")
            except RuntimeError:
                pass
            loaded = \(call)
            print(sum(t.numel() for t in (loaded.get("model", loaded)).values()))
            """
        let result = try Tool.run(executable: try #require(TorchVenv.python), ["-c", script, path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "\(try deviceTruth(name)["parameters"] as? Int ?? -1)\n", "\(result.stdout)")
    }
}

@Suite("inspect and verify: safetensors __metadata__")
struct SafetensorsMetadataTests {
    /// all_dtypes.safetensors was written by the safetensors library with metadata; its sidecar has the pairs.
    @Test func inspectAndVerifyShowTheMetadata() throws {
        let path = fixture("safetensors/all_dtypes.safetensors")
        let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: Tool.fixtures.appendingPathComponent("safetensors/all_dtypes.expected.json")))
        let truth = try #require((sidecar as? [String: Any])?["metadata"] as? [String: String])
        try #require(!truth.isEmpty)
        let inspected = try json(try Tool.run(["inspect", path, "--json"]))
        #expect(inspected["metadata"] as? [String: String] == truth)
        let verified = try json(try Tool.run(["verify", path, "--json"]))
        #expect(verified["metadata"] as? [String: String] == truth)
        let inspectText = try Tool.run(["inspect", path]).stdout
        let verifyText = try Tool.run(["verify", path]).stdout
        #expect(inspectText.contains("__metadata__ (\(truth.count) pairs)"), "\(inspectText)")
        #expect(verifyText.contains("__metadata__ (\(truth.count) pairs)"), "\(verifyText)")
        for (key, value) in truth {
            #expect(inspectText.contains("  \(key): '\(value)'\n"), "\(key) in\n\(inspectText)")
            #expect(verifyText.contains("  \(key): \(value)\n"), "\(key) in\n\(verifyText)")
        }
    }

    @Test func filesWithoutMetadataHaveNull() throws {
        for path in [fixture("safetensors/edge_shapes.safetensors"), fixture("pt/model_tied.pt")] {
            #expect(try json(try Tool.run(["inspect", path, "--json"]))["metadata"] is NSNull)
            #expect(try json(try Tool.run(["verify", path, "--json"]))["metadata"] is NSNull)
            #expect(!(try Tool.run(["inspect", path]).stdout.contains("__metadata__")))
        }
    }
}

@Suite("verify: a damaged storage record names its tensors")
struct DamagedStorageTests {
    /// model_tied.pt's storage 1 (torch numbers storages `data/N` in pickling order, as the sidecar's
    /// `storage` does) is shared by three tensors: a bad CRC there names all three.
    @Test func aBadCRCNamesTheTensors() throws {
        let path = try copy("pt/model_tied.pt", as: "tied.pt")
        let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: Tool.fixtures.appendingPathComponent("pt/model_tied.expected.json")))
        let items = try #require(((sidecar as? [String: Any])?["root"] as? [String: Any])?["items"] as? [[String: Any]])
        let holders = items.compactMap { item -> String? in
            guard let value = item["value"] as? [String: Any], value["storage"] as? Int == 1 else { return nil }
            return (item["key"] as? [String: Any])?["value"] as? String
        }
        try #require(holders.count == 3)
        let reader = try ZipReader(path: path)
        let entry = try #require(reader.entries.first { $0.name.hasSuffix("/data/1") })
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[entry.dataOffset] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let text = try Tool.run(["verify", path])
        #expect(text.status == 1)
        #expect(text.stdout.contains("\(entry.name): bytes do not match the entry's CRC-32, the storage of \(holders.joined(separator: ", ")) ("), "\(text.stdout)")
        let document = try json(try Tool.run(["verify", path, "--json"]))
        let crc = try #require((document["checks"] as? [[String: Any]])?.first { $0["name"] as? String == "crc32" })
        let failure = try #require((crc["failures"] as? [[String: Any]])?.first)
        #expect(failure["path"] as? String == entry.name)
        #expect(failure["tensors"] as? [String] == holders)
        #expect((failure["tensor_key_paths"] as? [[String]]) == holders.map { [$0] })
    }

    /// A storage record shorter than the pickle says: the pickle check fails naming the tensor, and
    /// the checks after it still run on the tree.
    @Test func aWrongSizeNamesTheTensor() throws {
        let path = try copy("devices/on_mps.pt", as: "short.pt")
        // Storage "0" is fc1.weight's (the first tensor torch pickles, see the fixture's truth), 12
        // float32 elements: the pickle now says 16, 64 bytes, for a 48-byte record.
        let numel: [UInt8] = Array("X\u{01}\u{00}\u{00}\u{00}0".utf8)
        try patchStoredEntry(path, "on_mps/data.pkl") { pickle in
            let start = pickle.indices.first { pickle[$0...].starts(with: numel) }!
            let count = pickle[start...].firstIndex(of: UInt8(ascii: "K"))!
            #expect(pickle[count + 1] == 12)
            pickle[count + 1] = 16
        }
        let document = try json(try Tool.run(["verify", path, "--json"]))
        let checks = try #require(document["checks"] as? [[String: Any]])
        let pickle = try #require(checks.first { $0["name"] as? String == "pickle" })
        #expect(pickle["status"] as? String == "failed")
        let failure = try #require((pickle["failures"] as? [[String: Any]])?.first)
        #expect(failure["path"] as? String == "on_mps/data/0")
        #expect(failure["expected"] as? String == "64 bytes")
        #expect(failure["found"] as? String == "48 bytes")
        #expect(failure["tensors"] as? [String] == ["fc1.weight"])
        #expect(checks.first { $0["name"] as? String == "devices" }?["status"] as? String == "warning", "the tree was still read")
        let text = try Tool.run(["verify", path])
        #expect(text.stdout.contains("on_mps/data/0: storage record size differs from the pickle, the storage of fc1.weight (expected 64 bytes, found 48 bytes)"), "\(text.stdout)")
    }
}

@Suite("inspect: totals and keys")
struct TotalsAndKeysTests {
    /// The devices fixtures hold a model of 23 parameters (torch's count in the fixture's truth).
    @Test func totalsCountParameters() throws {
        let parameters = try #require(try deviceTruth("mixed.pt")["parameters"] as? Int)
        let document = try json(try Tool.run(["inspect", fixture("devices/mixed.pt"), "--json"]))
        let totals = try #require(document["totals"] as? [String: Any])
        #expect(totals["parameters"] as? Int == parameters)
        #expect(totals["elements"] as? Int == parameters)
        #expect(try Tool.run(["inspect", fixture("devices/mixed.pt")]).stdout.contains("totals: 4 tensors, \(parameters) parameters, 4 distinct storages"))
    }

    /// A model plus its optimizer: parameters are the model's, elements add the optimizer's state.
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason))
    func parametersLeaveOutOptimizerState() throws {
        let script = """
            import sys, torch
            c = torch.load(sys.argv[1])
            model = sum(t.numel() for t in c["model"].values())
            state = sum(t.numel() for s in c["optimizer"]["state"].values() for t in s.values() if torch.is_tensor(t))
            print(model, model + state)
            """
        let torch = try Tool.run(executable: try #require(TorchVenv.python), ["-c", script, Tool.sample])
        #expect(torch.status == 0, "\(torch.stderr)")
        let numbers = torch.stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(numbers.count == 2)
        let totals = try #require(try json(try Tool.run(["inspect", Tool.sample, "--json"]))["totals"] as? [String: Any])
        #expect(totals["parameters"] as? Int == numbers[0])
        #expect(totals["elements"] as? Int == numbers[1])
        let text = try Tool.run(["inspect", Tool.sample]).stdout
        #expect(text.contains(" \(numbers[0]) parameters (+\(numbers[1] - numbers[0]) in optimizer state), "), "\(text)")
    }

    @Test func largeCountsHaveThousandsSeparators() throws {
        let path = Tool.temporaryDirectory().appendingPathComponent("big.safetensors")
        try StateValue.dict(["w": .tensor(try Tensor(storage: Storage(byteCount: 1_234_567), dtype: .uint8, shape: [1_234_567]))])
            .write(to: path, options: SaveOptions(durable: false))
        #expect(try Tool.run(["inspect", path.path]).stdout.contains("totals: 1 tensor, 1,234,567 parameters, 1 distinct storage, "))
    }

    /// An int key 0 and a str key '0' print as Python's repr tells them apart; JSON keeps their types.
    @Test func intAndStrKeysAreToldApart() throws {
        let path = Tool.temporaryDirectory().appendingPathComponent("keys.pt")
        var dict = StateDict()
        dict[.int(0)] = .string("int")
        dict[.string("0")] = .string("str")
        dict[.int(-1)] = .string("negative int")
        dict[.string("-1")] = .string("negative str")
        dict[.string("w")] = .string("plain")
        try StateValue.dict(dict).write(to: path, options: SaveOptions(durable: false))
        let text = try Tool.run(["inspect", path.path])
        #expect(text.status == 0, "\(text.stderr)")
        for line in ["  0: str = 'int'", "  '0': str = 'str'", "  -1: str = 'negative int'", "  '-1': str = 'negative str'", "  w: str = 'plain'"] {
            #expect(text.stdout.contains(line + "\n"), "missing \(line) in\n\(text.stdout)")
        }
        let root = try #require(try json(try Tool.run(["inspect", path.path, "--json"]))["root"] as? [String: Any])
        let keys = try #require((root["items"] as? [[String: Any]])?.map { $0["key"] })
        #expect(keys[0] as? Int == 0)
        #expect(keys[1] as? String == "0")
    }
}
