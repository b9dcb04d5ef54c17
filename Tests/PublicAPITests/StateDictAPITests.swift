import Checkpoint
import Foundation
import TestSupport
import Testing

/// State dicts built, read and changed as a user outside the package would: no OrderedCollections.
@Suite struct StateDictAPITests {
    @Test func buildReadAndModify() {
        var dict: StateDict = ["b": 1, "a": 2]
        #expect(dict.keys == ["b", "a"])
        #expect(dict.values == [1, 2])
        #expect(dict.count == 2 && !dict.isEmpty)

        dict["c"] = 3
        dict["b"] = 4
        #expect(dict.keys == ["b", "a", "c"], "a new key appends, an existing one keeps its place")
        #expect(dict.values == [4, 2, 3])
        #expect(dict.updateValue(5, forKey: "a") == 2)
        #expect(dict.updateValue(6, forKey: "d") == nil)
        #expect(dict.removeValue(forKey: "b") == 4)
        #expect(dict.removeValue(forKey: "b") == nil)
        dict["d"] = nil
        #expect(dict.map(\.key) == ["a", "c"])
        #expect(dict["epoch", default: 0] == 0)
        dict["epoch", default: 0] = 7
        #expect(dict.last?.key == "epoch" && dict.last?.value == 7)

        var visited: [StateKey] = []
        for (key, _) in dict { visited.append(key) }
        #expect(visited == ["a", "c", "epoch"])
        #expect(dict.index(forKey: "c").map { dict[$0].value } == 3)
        #expect(dict.index(forKey: "missing") == nil)
    }

    /// An optimizer's `state` is keyed by ints: `state[0]` is the key 0, never the first entry.
    @Test func integerSubscriptsAreKeys() {
        let state: StateDict = [1: "one", 0: "zero"]
        #expect(state[0] == "zero")
        #expect(state[state.startIndex].key == 1)
        #expect(state.reversed().map(\.key) == [0, 1])
        #expect(state.indices.count == 2)
    }

    @Test func pairsKeepPythonOrderAndTheLastValue() {
        let metadata: StateValue = ["": ["version": 1]]
        let dict = StateDict([("a", 1), ("b", 2), ("a", 3)], isOrderedDict: true, attributes: ["_metadata": metadata])
        #expect(dict.keys == ["a", "b"])
        #expect(dict["a"] == 3)
        #expect(dict.isOrderedDict)
        #expect(dict.attributes.keys == ["_metadata"])
        #expect(dict.attributes["_metadata"] == metadata)

        let filtered = StateDict(dict.filter { $0.key != "b" }.map { ($0.key, $0.value) }, isOrderedDict: true)
        #expect(filtered.keys == ["a"])
        #expect(StateDict(zip(["x", "y"], [1, 2] as [StateValue])).keys == ["x", "y"])
        #expect(StateDict(isOrderedDict: true).isEmpty)
        #expect(StateDict() == [:])
    }

    @Test func attributesAreAnOrderedMap() {
        var dict = StateDict(isOrderedDict: true)
        dict.attributes["_metadata"] = ["": ["version": 1]]
        dict.attributes["note"] = "kept"
        #expect(dict.attributes.keys == ["_metadata", "note"])
        #expect(dict.attributes.removeValue(forKey: "note") == "kept")
        #expect(dict.attributes.map(\.key) == ["_metadata"])
        let reordered: OrderedMap<String, StateValue> = ["b": 1, "a": 2]
        #expect(reordered != ["a": 2, "b": 1], "order is part of equality, as for OrderedDict")
        #expect(OrderedMap([("a", 1), ("a", 2)]) == ["a": 2] as OrderedMap<String, Int>)
    }

    @Test func treeOfPublicTypesRoundTripsThroughAFile() throws {
        var model = StateDict(isOrderedDict: true, attributes: ["_metadata": ["": ["version": 1]]])
        model["fc.weight"] = .tensor(try Tensor([Float(1), 2, 3, 4], shape: [2, 2]))
        model["fc.bias"] = .tensor(try Tensor([Float(0.5), -0.5]))
        let tree: StateValue = ["model": .dict(model), "epoch": 3]

        let directory = try TemporaryDirectory()
        let url = directory.url.appendingPathComponent("model.pt")
        try tree.write(to: url)
        let loaded = try StateValue(contentsOf: url)
        #expect(loaded == tree)
        guard case .dict(let reloaded)? = loaded["model"] else {
            Issue.record("model is not a dict")
            return
        }
        #expect(reloaded.keys == ["fc.weight", "fc.bias"])
        #expect(reloaded.attributes.keys == ["_metadata"])
    }
}
