import Checkpoint
import Foundation
import Testing
import TestSupport

// Only the public library: a state dict is written with literals and saved, no other import.
struct StateValueLiteralTests {
    @Test func aStateDictBuiltFromLiteralsSavesAndLoads() throws {
        let weight = try Tensor([Float(1), 2, 3, 4], shape: [2, 2])
        let state: StateValue = [
            "model": ["fc.weight": .tensor(weight)],
            "epoch": 3,
            "lr": 0.125,
            "name": "run-7",
            "resumed": false,
            "best": .none,
            "losses": [0.5, 0.25],
            "state": [0: ["step": 10]],
        ]
        let directory = try TemporaryDirectory(prefix: "ckpt-literals")
        let url = URL(fileURLWithPath: directory.path("run.ckpt"))
        try state.write(to: url)
        let loaded = try StateValue(contentsOf: url)
        #expect(loaded == state)
        #expect(loaded.value(atPath: "epoch") == .int(3))
        #expect(loaded.value(atPath: "state/0/step") == .int(10))
        #expect(loaded.value(atPath: "losses") == .list([.float(0.5), .float(0.25)]))
    }

    /// As in a Python dict display: a repeated key keeps its first place and its last value.
    @Test func aRepeatedKeyKeepsItsPlaceAndTheLastValue() {
        let dict: StateDict = ["a": 1, "b": 2, "a": 3]
        #expect(Array(dict.items.keys) == ["a", "b"])
        #expect(dict["a"] == .int(3))
        #expect(!dict.isOrderedDict)
        #expect(StateDict().items.isEmpty)
    }
}
