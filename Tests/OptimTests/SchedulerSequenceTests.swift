import Checkpoint
import Testing
@testable import Optim

// Every scheduler scenario torch ran (scripts/make_scheduler_fixtures.py) replayed through ckpt:
// each group's learning rate (and cycled momentum) after construction and after every step must be
// torch's, bit for bit; the final state dict and parameter groups must equal torch's.

@Suite struct SchedulerSequenceTests {
    @Test func fixturesCoverEveryScheduler() throws {
        var types = Set<String>()
        func collect(_ spec: Any?) {
            guard let spec = spec as? [String: Any] else { return }
            if let type = spec["type"] as? String { types.insert(type) }
            for inner in spec["schedulers"] as? [Any] ?? [] { collect(inner) }
        }
        for scenario in try SchedulerFixtures.scenarioJSONs() { collect(scenario["scheduler"]) }
        #expect(types == [
            "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
            "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "ReduceLROnPlateau", "SequentialLR",
            "ChainedScheduler",
        ])
        #expect(try SchedulerFixtures.file.get()["steps"] as? Int ?? 0 >= 300)
    }

    @Test(arguments: SchedulerFixtures.names)
    func learningRatesMatchTorch(_ name: String) throws {
        let scenario = try SchedulerFixtures.scenario(name)
        let optimizer = try scenario.makeOptimizer()
        let scheduler = try scenario.makeScheduler(on: optimizer)
        var lrs = try optimizer.groupNumbers("lr").map { [$0] }
        var momenta = optimizer.paramGroups.map { [SchedulerFixtures.momentum(of: $0) ?? .nan] }
        var failure: OptimizerError?
        for operation in scenario.operations {
            try optimizer.step()
            do {
                try SchedulerFixtures.apply(operation, to: scheduler)
            } catch let error as OptimizerError {
                failure = error
                break
            }
            let current = try optimizer.groupNumbers("lr")
            #expect(scheduler.getLastLR().map(\.bitPattern) == current.map(\.bitPattern))
            for index in current.indices {
                lrs[index].append(current[index])
                momenta[index].append(SchedulerFixtures.momentum(of: optimizer.paramGroups[index]) ?? .nan)
            }
        }
        #expect(lrs.count == scenario.lrs.count)
        for (group, pair) in zip(lrs, scenario.lrs).enumerated() {
            #expect(SchedulerFixtures.firstMismatch(pair.0, pair.1) == nil, "group \(group)")
        }
        if let expected = scenario.momenta {
            for (group, pair) in zip(momenta, expected).enumerated() {
                #expect(SchedulerFixtures.firstMismatch(pair.0, pair.1) == nil, "momentum of group \(group)")
            }
        }
        #expect(failure?.message == scenario.error)
        #expect(SchedulerFixtures.pythonDifference(scheduler.stateDict(), scenario.finalState) == nil)
        let groups = StateValue.list(optimizer.paramGroups.map { group in
            .dict(StateDict(group.options.map { (StateKey.string($0.key), $0.value) }))
        })
        #expect(SchedulerFixtures.pythonDifference(groups, scenario.optimizerGroups) == nil)
    }
}
