import Checkpoint
import Foundation
import Testing
import TestSupport
@testable import Optim

@Suite struct LoadStateDictTests {
    @Test(arguments: [
        ("not a dict", StateValue.list([])),
        ("no groups", StateValue.dict(["state": .dict([:])])),
        ("no state", StateValue.dict(["param_groups": .list([.dict(["params": .list([.int(0)])])])])),
        ("group without params", StateValue.dict(["state": .dict([:]), "param_groups": .list([.dict(["lr": .float(1)])])])),
        ("non-int id", StateValue.dict(["state": .dict([:]), "param_groups": .list([.dict(["params": .list([.float(0)])])])])),
    ])
    func malformedDictsThrowAndChangeNothing(_ label: String, _ dict: StateValue) throws {
        let parameter = try floatParameter([1, 2])
        let optimizer = try Adagrad([parameter])
        let before = optimizer.stateDict()
        let error = #expect(throws: OptimizerError.self, "\(label)") { try optimizer.loadStateDict(dict) }
        #expect(error?.code == .malformedStateDict, "\(label)")
        #expect(optimizer.stateDict() == before, "\(label)")
    }

    @Test func stateOfTheWrongShapeFailsAtStepWithoutUpdating() throws {
        let parameter = try floatParameter([1, 2])
        let optimizer = try Adagrad([parameter])
        guard case .dict(var root) = optimizer.stateDict(), case .dict(var state)? = root["state"],
              case .dict(var entry)? = state[0] else { Issue.record("unexpected layout"); return }
        entry["sum"] = .tensor(try Tensor([Float(1), 2, 3]))
        state[0] = .dict(entry)
        root["state"] = .dict(state)
        try optimizer.loadStateDict(.dict(root))
        parameter.grad = .dense(try Tensor([Float(1), 1]))
        #expect(throws: CheckpointError.self) { try optimizer.step() }
        #expect(try parameter.data.scalars(as: Float.self) == [1, 2])
    }

    /// A state dict torch.save'd by torch (Tests/Fixtures/optim/adagrad_named.pt) loads through
    /// Checkpoint into exactly the tree its JSON sidecar records, into ckpt's Adagrad, and back out
    /// unchanged; saved again as .pt and .ckpt it reads back equal.
    @Test func torchSavedStateDictRoundTrips() throws {
        let sidecar = try JSONSerialization.jsonObject(
            with: Data(contentsOf: OptimFixtures.directory.appendingPathComponent("adagrad_named.json"))) as? [String: Any]
        let expected = try OptimFixtures.stateValue(sidecar?["state_dict"])
        let loaded = try StateValue(contentsOf: OptimFixtures.directory.appendingPathComponent("adagrad_named.pt"))
        var observed: Int64 = 0
        let readDifference = OptimFixtures.difference(loaded, expected, observedULP: &observed)
        #expect(readDifference == nil, "Checkpoint.load: \(readDifference ?? "")")

        let weight = Parameter(try Tensor(zeros: .float32, shape: [2, 3]), name: "layer.weight")
        let bias = Parameter(try Tensor(zeros: .float32, shape: [3]), name: "layer.bias")
        let optimizer = try Adagrad([weight, bias])
        try optimizer.loadStateDict(loaded)
        let ours = optimizer.stateDict()
        let stateDifference = OptimFixtures.difference(ours, expected, observedULP: &observed)
        #expect(stateDifference == nil, "stateDict after load: \(stateDifference ?? "")")

        let directory = TemporaryDirectory.scoped(prefix: "optim")
        defer { try? FileManager.default.removeItem(at: directory) }
        for name in ["state.pt", "state.ckpt"] {
            let url = directory.appendingPathComponent(name)
            try ours.write(to: url)
            let back = try StateValue(contentsOf: url)
            let difference = OptimFixtures.difference(back, expected, observedULP: &observed)
            #expect(difference == nil, "\(name): \(difference ?? "")")
        }
    }
}

@Suite struct StridedStateTests {
    /// A `sum` loaded as a strided view (every other element of a larger buffer) still steps
    /// correctly: same result as a packed one.
    @Test func stridedSumFromALoadedDictIsPacked() throws {
        func run(strided: Bool) throws -> [Float] {
            let parameter = try floatParameter([1, 2, 3])
            let optimizer = try Adagrad([parameter], lr: 0.5)
            guard case .dict(var root) = optimizer.stateDict(), case .dict(var state)? = root["state"],
                  case .dict(var entry)? = state[0] else { throw OptimFixtures.FixtureError(description: "layout") }
            let buffer = try Tensor([Float(0.5), 9, 0.25, 9, 2, 9])
            entry["sum"] = .tensor(strided
                ? try Tensor(storage: buffer.storage, dtype: .float32, shape: [3], strides: [2])
                : try Tensor([Float(0.5), 0.25, 2]))
            state[0] = .dict(entry)
            root["state"] = .dict(state)
            try optimizer.loadStateDict(.dict(root))
            parameter.grad = .dense(try Tensor([Float(1), -1, 0.5]))
            try optimizer.step()
            return try parameter.data.scalars(as: Float.self)
        }
        #expect(try run(strided: true) == run(strided: false))
    }
}

@Suite struct LoadedOptionTests {
    /// torch deep-copies the loaded param_groups: changing the caller's tensor `lr` afterwards
    /// must not change the optimizer's.
    @Test func loadedTensorLearningRateIsACopy() throws {
        let source = try Adagrad([floatParameter([1])], lr: Tensor([Float(0.5)], shape: []))
        let stateDict = source.stateDict()
        let target = try Adagrad([floatParameter([2])])
        try target.loadStateDict(stateDict)
        guard case .tensor(let given)? = stateDict["param_groups"]?[0]?["lr"],
              case .tensor(let loaded)? = target.paramGroups[0]["lr"] else { Issue.record("lr is not a tensor"); return }
        try given.storage.withUnsafeMutableBytes { $0.storeBytes(of: Float(9), as: Float.self) }
        #expect(try loaded.singleValue() == 0.5)
    }
}
