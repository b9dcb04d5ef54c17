import Checkpoint
import Optim
import Testing

/// Parameter groups and optimizer defaults read and changed as a user outside the package would.
@Suite struct ParamGroupAPITests {
    @Test func groupsAndDefaultsWithoutOrderedCollections() throws {
        let first = Parameter(try Tensor([Float(1), 2]), name: "first")
        let second = Parameter(try Tensor([Float(3)]), name: "second")
        var group = ParamGroup(params: [second], options: ["lr": 0.5])
        group["eps"] = 1e-8
        #expect(group.options.keys == ["lr", "eps"])
        group.options["eps"] = nil
        #expect(group["eps"] == nil)

        let optimizer = try Adagrad(groups: [ParamGroup(params: [first]), group], lr: 0.1)
        #expect(optimizer.defaults.keys == [
            "lr", "lr_decay", "eps", "weight_decay", "initial_accumulator_value", "foreach", "maximize", "differentiable", "fused",
        ])
        guard case .value(let lr)? = optimizer.defaults["lr"] else {
            Issue.record("lr has no default")
            return
        }
        #expect(lr == 0.1)
        #expect(optimizer.paramGroups[0]["lr"] == 0.1)
        #expect(optimizer.paramGroups[1]["lr"] == 0.5)
        #expect(optimizer.paramGroups[1].paramNames == ["second"])
        let keys = optimizer.paramGroups[0].options.keys
        #expect(keys.first == "param_names")
        try optimizer.setOption("lr", to: 0.25, inGroup: 0)
        #expect(optimizer.paramGroups[0].options.keys == keys)
        #expect(optimizer.paramGroups[0]["lr"] == 0.25)
    }

    @Test func adagradSpellsOutItsGroupOptions() throws {
        let group = ParamGroup(params: [Parameter(try Tensor([Float(1)]))], lr: 0.3, eps: 1e-6)
        #expect(group.options.keys == ["lr", "eps"])
        #expect(group["lr"] == 0.3)
    }

    @Test func optimizerDefaultsForAnyOptimizer() throws {
        let defaults: OrderedMap<String, Optimizer.OptionDefault> = ["lr": .required, "momentum": .value(0)]
        let optimizer = try Optimizer(groups: [ParamGroup(params: [Parameter(try Tensor([Float(1)]))], options: ["lr": 0.1])], defaults: defaults)
        #expect(optimizer.paramGroups[0].options.keys == ["lr", "momentum"])
        guard case .dict(let stateDict) = optimizer.stateDict(), case .list(let groups)? = stateDict["param_groups"],
            case .dict(let packed)? = groups.first
        else {
            Issue.record("not an optimizer state dict")
            return
        }
        #expect(packed.keys == ["lr", "momentum", "params"])
    }
}
