import Checkpoint
import Testing
@testable import Optim

// SGD's behaviour where torch has nothing to record: what ckpt refuses (its scenarios recorded by
// torch, sgd_*.json, run in TorchScenarioTests).

@Suite struct SGDScenarioTests {
    /// torch keeps a sparse momentum buffer here; ckpt's state holds dense tensors only, so it
    /// refuses before changing anything.
    @Test func momentumWithSparseGradientIsRefusedUntouched() throws {
        let parameter = Parameter(try Tensor([Float](repeating: 1, count: 4)))
        let optimizer = try SGD([parameter], lr: 0.1, momentum: 0.9)
        parameter.grad = .sparse(try SparseTensor(indices: Tensor([Int64(1)], shape: [1, 1]), values: Tensor([Float(2)]), shape: [4]))
        #expect(throws: OptimizerError.self) { try optimizer.step() }
        #expect(try parameter.data.scalars(as: Float.self) == [1, 1, 1, 1])
        #expect(optimizer.state(for: parameter) == nil)
    }

    /// A buffer that does not fit its parameter names itself, with what was expected and found.
    @Test func mismatchedBufferIsATypedError() throws {
        let parameter = Parameter(try Tensor([Float](repeating: 1, count: 4)))
        let optimizer = try SGD([parameter], lr: 0.1, momentum: 0.9)
        try optimizer.setState(["momentum_buffer": .tensor(try Tensor([Float](repeating: 0, count: 3)))], for: parameter)
        parameter.grad = .dense(try Tensor([Float](repeating: 1, count: 4)))
        let error = try #require(throws: CheckpointError.self) { try optimizer.step() }
        #expect(error.path == "param_groups/0/momentum_buffer")
        #expect(try parameter.data.scalars(as: Float.self) == [1, 1, 1, 1])
    }
}
