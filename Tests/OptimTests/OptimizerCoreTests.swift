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
