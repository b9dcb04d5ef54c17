import Checkpoint
import CheckpointTools
import OrderedCollections
import Testing

@Suite("StateValue filter by KeyGlob")
struct StateValueFilterTests {
    /// model (OrderedDict with a _metadata attribute), optimizer state keyed by ints, a list and a tuple.
    static func tree() throws -> StateValue {
        let weight = StateValue.tensor(try Tensor([Float(1), 2]))
        let bias = StateValue.tensor(try Tensor([Float(3)]))
        var model = StateDict(["layer.0.weight": weight, "layer.0.bias": bias, "layer.1.weight": weight], isOrderedDict: true)
        model.attributes["_metadata"] = .dict(["": .dict(["version": .int(1)])])
        let state = StateDict([.int(0): .dict(["sum": weight, "step": .float(3)]), .int(1): .dict(["sum": bias])])
        return .dict([
            "model": .dict(model),
            "optimizer": .dict(["state": .dict(state), "param_groups": .list([.dict(["lr": .float(0.1)])])]),
            "history": .list([.float(1), .tensor(try Tensor([Int64(7)])), .float(3)]),
            "pair": .tuple([.string("a"), .string("b")]),
        ])
    }

    @Test(arguments: [
        ("model/*.weight", ["model/layer.0.weight", "model/layer.1.weight"]),
        ("**/sum", ["optimizer/state/0/sum", "optimizer/state/1/sum"]),
        ("optimizer/state/0/*", ["optimizer/state/0/sum"]),
        ("model/layer.?.bias", ["model/layer.0.bias"]),
        ("history/1", ["history/1"]),
        ("nothing", []),
    ])
    func tensorsMatching(pattern: String, paths: [String]) throws {
        #expect(try Self.tree().tensors(matching: KeyGlob(pattern)).map(\.path.pathString) == paths)
    }

    @Test func noPatternSelectsEveryTensor() throws {
        #expect(try Self.tree().tensors(matching: nil).count == 6)
    }

    @Test func filteredKeepsContainersTypesAndOrder() throws {
        let tree = try Self.tree()
        let kept = try #require(tree.filtered(by: KeyGlob("model/layer.*.weight")))
        guard case .dict(let root) = kept, case .dict(let model)? = root["model"] else {
            Issue.record("expected dict/OrderedDict, found \(kept)")
            return
        }
        #expect(root.items.keys.elementsEqual(["model"]))
        #expect(model.isOrderedDict)
        #expect(model.items.keys.elementsEqual(["layer.0.weight", "layer.1.weight"]))
        #expect(model.attributes.isEmpty, "_metadata does not match the pattern")
    }

    @Test func matchingContainerIsKeptWhole() throws {
        let tree = try Self.tree()
        #expect(tree.filtered(by: KeyGlob("optimizer")) == .dict(["optimizer": try #require(tree.value(atPath: "optimizer"))]))
        #expect(tree.filtered(by: KeyGlob("model/_metadata"))?.value(atPath: "model/_metadata") == tree.value(atPath: "model/_metadata"))
    }

    @Test func listsKeepMatchingElementsAndTuplesStayTuples() throws {
        let tree = try Self.tree()
        #expect(tree.filtered(by: KeyGlob("history/1")) == .dict(["history": .list([tree.value(atPath: "history/1")!])]))
        #expect(tree.filtered(by: KeyGlob("pair/0")) == .dict(["pair": .tuple([.string("a")])]))
    }

    @Test func intKeysMatchTheirDigits() throws {
        let kept = try #require(try Self.tree().filtered(by: KeyGlob("optimizer/state/1/**")))
        #expect(kept.tensors(matching: nil).map(\.path.pathString) == ["optimizer/state/1/sum"])
        guard case .dict(let state)? = kept.value(atPath: "optimizer/state") else { return }
        #expect(state.items.keys.elementsEqual([StateKey.int(1)]))
    }

    @Test func nothingMatchingGivesNil() throws {
        #expect(try Self.tree().filtered(by: KeyGlob("absent/**")) == nil)
    }
}
