import Checkpoint
import Testing
@testable import Optim

/// A parameter of float32 values.
func floatParameter(_ values: [Float], name: String? = nil) throws -> Parameter {
    Parameter(try Tensor(values), name: name)
}

/// The keys of a `.dict` in order, as text.
func keys(_ value: StateValue?) -> [String] {
    guard case .dict(let dict)? = value else { return [] }
    return dict.items.keys.map(\.description)
}

@Suite struct OptimizerCoreTests {
    @Test func emptyParameterListIsRejected() throws {
        #expect(throws: OptimizerError(.invalidValue, "optimizer got an empty parameter list")) {
            try Adagrad([])
        }
    }

    @Test func eagerStateIsCreatedForEveryParameter() throws {
        let a = try floatParameter([1, 2, 3]), b = try floatParameter([4])
        let optimizer = try Adagrad([a, b], initialAccumulatorValue: 0.5)
        guard case .dict(let state)? = optimizer.state(for: b) else { Issue.record("no state"); return }
        #expect(state.items.keys.map(\.description) == ["step", "sum"])
        guard case .tensor(let step)? = state["step"], case .tensor(let sum)? = state["sum"] else {
            Issue.record("state is not tensors"); return
        }
        #expect(step.dtype == .float32 && step.shape == [])
        #expect(try step.scalars(as: Float.self) == [0])
        #expect(try sum.scalars(as: Float.self) == [0.5])
    }
}

@Suite struct OptimizerBehaviourTests {
    @Test func zeroGradDropsOrZeroesGradients() throws {
        let dense = try floatParameter([1, 2]), sparse = try floatParameter([0, 0, 0])
        let optimizer = try Adagrad([dense, sparse])
        dense.grad = .dense(try Tensor([Float(3), 4]))
        sparse.grad = .sparse(try SparseTensor(indices: Tensor([Int64(0), 2], shape: [1, 2]), values: Tensor([Float(1), 2]), shape: [3]))
        try optimizer.zeroGrad(setToNone: false)
        guard case .dense(let zeroed)? = dense.grad, case .sparse(let emptied)? = sparse.grad else {
            Issue.record("gradients were dropped instead of zeroed"); return
        }
        #expect(try zeroed.scalars(as: Float.self) == [0, 0])
        // torch's sparse zero_() leaves an empty, coalesced tensor of the same shape.
        #expect(emptied.nnz == 0 && emptied.shape == [3] && emptied.isCoalesced)
        try optimizer.zeroGrad()
        #expect(dense.grad == nil && sparse.grad == nil)
    }

    @Test func zeroGradKeepsTheGradientStorageShared() throws {
        let parameter = try floatParameter([1, 2, 3, 4])
        let optimizer = try Adagrad([parameter])
        let buffer = try Tensor([Float](repeating: 7, count: 6))
        // A strided view (every other element) of a larger gradient buffer: only it is zeroed.
        let view = try Tensor(storage: buffer.storage, dtype: .float32, shape: [2], strides: [2], storageOffset: 1)
        parameter.grad = .dense(view)
        try optimizer.zeroGrad(setToNone: false)
        #expect(try buffer.scalars(as: Float.self) == [7, 0, 7, 0, 7, 7])
    }

    @Test func setOptionChangesOneGroupAndRejectsBadTargets() throws {
        let optimizer = try Adagrad(groups: [ParamGroup(params: [floatParameter([1])]), ParamGroup(params: [floatParameter([2])])])
        try optimizer.setOption("lr", to: .float(0.5), inGroup: 1)
        #expect(optimizer.paramGroups[0]["lr"] == .float(0.01))
        #expect(optimizer.paramGroups[1]["lr"] == .float(0.5))
        #expect(throws: OptimizerError.self) { try optimizer.setOption("lr", to: .float(1), inGroup: 2) }
        #expect(throws: OptimizerError.self) { try optimizer.setOption("params", to: .list([]), inGroup: 0) }
    }

    @Test func differentiableIsUnsupported() throws {
        let error = #expect(throws: OptimizerError.self) { try Adagrad([floatParameter([1])], differentiable: true) }
        #expect(error?.code == .unsupported)
        #expect(error?.message.contains("no autograd") == true)
    }

    @Test func requiredOptionMustBeSetByEveryGroup() throws {
        let defaults: OrderedMap<String, Optimizer.OptionDefault> = ["lr": .required, "momentum": .value(.int(0))]
        let error = #expect(throws: OptimizerError.self) {
            try Optimizer(groups: [ParamGroup(params: [floatParameter([1])])], defaults: defaults)
        }
        #expect(error?.message == "parameter group didn't specify a value of required optimization parameter lr")
        let optimizer = try Optimizer(groups: [ParamGroup(params: [floatParameter([1])], options: ["lr": .float(0.1)])], defaults: defaults)
        #expect(keys(optimizer.stateDict()["param_groups"]?[0]) == ["lr", "momentum", "params"])
        #expect(throws: OptimizerError(.unsupported, "Optimizer does not implement step")) { try optimizer.step() }
    }

    @Test func addParamGroupGivesFreshStateAndTheNextId() throws {
        let first = try floatParameter([1]), second = try floatParameter([2, 3])
        let optimizer = try Adagrad([first], initialAccumulatorValue: 0.25)
        try optimizer.addParamGroup(ParamGroup(params: [second], lr: 0.5))
        let stateDict = optimizer.stateDict()
        #expect(stateDict["param_groups"]?[1]?["params"] == .list([.int(1)]))
        guard case .tensor(let sum)? = stateDict["state"]?[1]?["sum"] else { Issue.record("no fresh sum"); return }
        #expect(try sum.scalars(as: Float.self) == [0.25, 0.25])
        second.grad = .dense(try Tensor([Float(1), 1]))
        try optimizer.step()
        #expect(try optimizer.state(for: second)?["step"].map { if case .tensor(let t) = $0 { try t.singleValue() } else { -1 } } == 1)
    }

    @Test func setStateRejectsForeignParameters() throws {
        let optimizer = try Adagrad([floatParameter([1])])
        #expect(throws: OptimizerError.self) { try optimizer.setState(.dict([:]), for: floatParameter([2])) }
    }
}
