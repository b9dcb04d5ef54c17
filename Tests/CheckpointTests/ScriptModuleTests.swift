@testable import Checkpoint
import Foundation
import Testing
import TestSupport

// TorchScript archives written by torch.jit.save (scripts/make_torchscript_fixtures.py), read as
// data: the module tree and the state dict torch.jit.load(f).state_dict() gives.
struct ScriptModuleTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/torchscript", isDirectory: true)

    static func sidecar(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent("\(name).expected.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func fields(_ tensor: Tensor) throws -> [String: String] {
        ["dtype": tensor.dtype.rawValue, "shape": "\(tensor.shape)", "hex": try tensor.contiguousBytes().map { String(format: "%02x", $0) }.joined()]
    }

    static func fields(_ spec: [String: Any]) -> [String: String] {
        ["dtype": spec["dtype"] as? String ?? "?", "shape": "\(spec["shape"] as? [Int] ?? [])", "hex": spec["hex"] as? String ?? "?"]
    }

    /// Loading an archive gives torch.jit.load(f).state_dict(): keys in order, dtypes, shapes, bytes.
    @Test(arguments: ["scripted", "traced"])
    func loadsAsTorchsStateDict(name: String) throws {
        let tree = try StateValue(contentsOf: Self.directory.appendingPathComponent("\(name).pt"))
        guard case .dict(let dict) = tree else {
            Issue.record("\(name): \(tree.pythonTypeName)")
            return
        }
        #expect(dict.isOrderedDict)
        let expected = try #require(try Self.sidecar(name)["state_dict"] as? [[String: Any]])
        #expect(dict.items.keys.map(\.description) == expected.map { $0["key"] as? String ?? "" })
        for spec in expected {
            guard case .tensor(let tensor)? = dict.items[.string(spec["key"] as? String ?? "")] else { continue }
            #expect(try Self.fields(tensor) == Self.fields(spec), "\(name): \(spec["key"] ?? "")")
            #expect(!tensor.requiresGrad, "state_dict() gives detached tensors")
        }
    }

    /// The module tree: classes by path, parameters and buffers as the classes declare them, other
    /// attributes kept, the archive's constants.
    @Test func theModuleTreeKeepsWhatIsNotState() throws {
        let module = try ScriptModule(contentsOf: Self.directory.appendingPathComponent("scripted.pt"))
        let sidecar = try Self.sidecar("scripted")
        let classes = try #require(sidecar["modules"] as? [String: String])
        func walk(_ module: ScriptModule, _ path: String) {
            #expect(module.qualifiedName.hasSuffix("." + (classes[path] ?? "?")), "\(path): \(module.qualifiedName)")
            for (name, child) in module.submodules { walk(child, path.isEmpty ? name : "\(path).\(name)") }
        }
        walk(module, "")
        #expect(Array(module.parameters.keys) == ["scale", "frozen"])
        #expect(module.parameters["scale"]?.requiresGrad == true)
        #expect(module.parameters["frozen"]?.requiresGrad == false)
        #expect(Array(module.submodules["norm"]?.buffers.keys ?? []) == ["running_mean", "running_var", "num_batches_tracked"])
        let attributes = try #require(sidecar["attributes"] as? [String: Any])
        #expect(module.attributes["depth"] == .int(Int64(attributes["depth"] as? Int ?? 0)))
        #expect(module.attributes["tag"] == .string(attributes["tag"] as? String ?? ""))
        guard case .tensor(let offset)? = module.attributes["offset"] else {
            Issue.record("offset is not a tensor attribute")
            return
        }
        #expect(try Self.fields(offset) == Self.fields(try #require(attributes["offset"] as? [String: Any])))
        #expect(module.stateDict().items.keys.contains(.string("offset")) == false, "a plain tensor attribute is not state")

        let traced = try ScriptModule(contentsOf: Self.directory.appendingPathComponent("traced.pt"))
        let constants = try #require(try Self.sidecar("traced")["constants"] as? [[String: Any]])
        #expect(traced.constants.count == constants.count)
        for (value, spec) in zip(traced.constants, constants) {
            guard case .tensor(let tensor) = value else { continue }
            #expect(try Self.fields(tensor) == Self.fields(spec))
        }
    }

    @Test func aZipWithoutConstantsIsNotTorchScript() throws {
        let plain = Self.directory.deletingLastPathComponent().appendingPathComponent("pt/protocol2.pt")
        let error = try #require(throws: CheckpointError.self) { try ScriptModule(contentsOf: plain) }
        #expect(error.code == .notRecognized)
    }

    /// Without the class's source in code/, which attributes are parameters cannot be known.
    @Test func aMissingDeclarationIsNamed() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-jit")
        let source = Self.directory.appendingPathComponent("traced.pt")
        let copy = directory.url.appendingPathComponent("stripped.pt")
        // Rewritten without code/: the archive is otherwise whole.
        let reader = try ZipReader(mapping: MappedFile(path: source.path))
        try DurableFile.write(to: copy.path, sync: false) { descriptor in
            let zip = ZipWriter(fileDescriptor: descriptor, path: copy.path)
            for entry in reader.entries where !entry.name.contains("/code/") {
                let bytes = try reader.contents(of: entry)
                try bytes.withUnsafeBytes { _ = try zip.addEntry(name: entry.name, bytes: $0) }
            }
            try zip.finish()
        }
        let error = try #require(throws: CheckpointError.self) { try StateValue(contentsOf: copy) }
        #expect(error.code == .missingEntry)
        #expect(error.path == "traced/code/__torch__.py")
    }
}

struct ClassDeclarationTests {
    @Test func readsOnlyTheClassesOwnLists() {
        let source = """
            class Outer(Module):
              __parameters__ = ["weight", "bias", ]
              __buffers__ = []
              weight : Tensor
              def forward(self) -> Tensor:
                __parameters__ = ["not", "this"]
                return self.weight
            class Inner(Module):
              __parameters__ = []
              __buffers__ = ['steps', ]
            class Point(NamedTuple):
              x : int
            """
        let outer = ClassDeclaration(name: "Outer", in: source)
        #expect(outer?.isModule == true)
        #expect(outer?.parameters == ["weight", "bias"])
        #expect(outer?.buffers == [])
        #expect(ClassDeclaration(name: "Inner", in: source)?.buffers == ["steps"])
        #expect(ClassDeclaration(name: "Point", in: source)?.isModule == false)
        #expect(ClassDeclaration(name: "Out", in: source) == nil)
    }
}
