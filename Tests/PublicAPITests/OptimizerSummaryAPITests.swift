import Checkpoint
import CheckpointTools
import Optim
import Testing

/// An optimizer summary read as a user outside the package would.
@Suite struct OptimizerSummaryAPITests {
    @Test func hyperparametersAndStateKeys() throws {
        let optimizer = try Adagrad([Parameter(try Tensor([Float(1), 2])), Parameter(try Tensor([Float(3)]))], lr: 0.5)
        let summaries = try OptimizerSummary.find(in: ["optimizer": optimizer.stateDict()])
        let summary = try #require(summaries.first)
        #expect(summary.path == ["optimizer"])
        #expect(summary.groups.first?.hyperparameters["lr"] == 0.5)
        #expect(summary.groups.first?.hyperparameters.keys.contains("params") == false)
        #expect(summary.stateKeys.keys == ["step", "sum"])
        #expect(summary.stateKeys["sum"] == 2)
    }
}
