import Checkpoint
import Foundation
import Testing
@testable import Optim

// What torch raises for invalid scheduler arguments and failing steps (errors.json, recorded by
// scripts/make_scheduler_fixtures.py) against ckpt's OptimizerError; where torch's load_state_dict
// puts keys it does not know; and ckpt's checks on loaded state dicts, which torch does not make.

@Suite struct SchedulerErrorTests {
    /// errors.json (read-only after initialization, hence nonisolated(unsafe)).
    nonisolated(unsafe) static let file: [String: Any] = {
        let url = SchedulerFixtures.directory.appendingPathComponent("errors.json")
        return (try? JSONSerialization.jsonObject(with: Data(contentsOf: url))) as? [String: Any] ?? [:]
    }()

    static func entries(_ section: String) -> [[String: Any]] { file[section] as? [[String: Any]] ?? [] }
    static let errorNames = entries("errors").compactMap { $0["name"] as? String }
    static let extrasNames = entries("extras").compactMap { $0["name"] as? String }

    /// The code ckpt gives each Python exception torch raises.
    static let codes: [String: OptimizerError.Code] = [
        "ValueError": .invalidValue, "KeyError": .invalidValue, "ZeroDivisionError": .invalidValue,
        "TypeError": .invalidType, "NotImplementedError": .unsupported, "RuntimeError": .unsupported,
    ]

    @Test func fixturesArePresent() {
        #expect(Self.errorNames.count >= 25)
        #expect(Self.extrasNames.count == 3)
    }

    @Test(arguments: errorNames)
    func errorMatchesTorch(_ name: String) throws {
        let entry = try #require(Self.entries("errors").first { $0["name"] as? String == name })
        let type = try #require(entry["type"] as? String)
        let error = try #require(throws: OptimizerError.self) {
            let optimizer = try SchedulerFixtures.makeOptimizer(entry)
            let scheduler = try SchedulerFixtures.build(entry["scheduler"], on: optimizer, loadOrderCheck: .error)
            #expect(entry["phase"] as? String == "step", "torch raised while constructing")
            for operation in try SchedulerFixtures.operations(entry["ops"]) {
                try SchedulerFixtures.apply(operation, to: scheduler)
            }
        }
        #expect(error.code == Self.codes[type], "torch raised \(type)")
        // NotImplementedError carries no message in torch; ckpt says what is missing.
        if type != "NotImplementedError" {
            #expect(error.message == entry["message"] as? String)
        }
    }

    /// Unknown keys of a loaded state are kept, after the known ones and before those torch's
    /// `state_dict()` appends (lr_lambdas, _scale_fn_custom, _schedulers), as in torch.
    @Test(arguments: extrasNames)
    func unknownKeysAreKeptWhereTorchKeepsThem(_ name: String) throws {
        let entry = try #require(Self.entries("extras").first { $0["name"] as? String == name })
        let optimizer = try SchedulerFixtures.makeOptimizer(entry)
        let scheduler = try SchedulerFixtures.build(entry["scheduler"], on: optimizer, loadOrderCheck: .error)
        for _ in 0..<4 {
            try optimizer.step()
            try scheduler.step()
        }
        try scheduler.loadStateDict(try OptimFixtures.stateValue(entry["loaded"]))
        let expected = try OptimFixtures.stateValue(entry["state_after"])
        #expect(SchedulerFixtures.pythonDifference(scheduler.stateDict(), expected) == nil)
    }

    static func sequential() throws -> (OptionsOnlyOptimizer, SequentialLR) {
        let scenario = try SchedulerFixtures.scenario("sequential_three")
        let optimizer = try scenario.makeOptimizer()
        return (optimizer, try #require(try scenario.makeScheduler(on: optimizer) as? SequentialLR))
    }

    /// A bad value deep in a nested state names its key path, expected and found type, and
    /// changes nothing (the schedulers before it in the list included).
    @Test func aBadNestedValueNamesItsPathAndChangesNothing() throws {
        let (_, scheduler) = try Self.sequential()
        let before = scheduler.stateDict()
        guard case .dict(var state) = before, case .list(var nested)? = state["_schedulers"],
              case .dict(var second) = nested[1], case .dict(var first) = nested[0] else {
            Issue.record("unexpected layout")
            return
        }
        first["last_epoch"] = 40
        second["last_epoch"] = "seven"
        nested[0] = .dict(first)
        nested[1] = .dict(second)
        state["_schedulers"] = .list(nested)
        state["last_epoch"] = 41
        let error = try #require(throws: OptimizerError.self) { try scheduler.loadStateDict(.dict(state)) }
        #expect(error.code == .malformedStateDict)
        #expect(error.path == "_schedulers/1/last_epoch")
        #expect(error.message == "expected an int, found str")
        #expect(scheduler.stateDict() == before)
    }

    @Test func moreSavedSchedulersThanBuiltIsAnError() throws {
        let (_, scheduler) = try Self.sequential()
        guard case .dict(var state) = scheduler.stateDict(), case .list(let nested)? = state["_schedulers"] else {
            Issue.record("unexpected layout")
            return
        }
        state["_schedulers"] = .list(nested + [nested[0]])
        let error = try #require(throws: OptimizerError.self) { try scheduler.loadStateDict(.dict(state)) }
        #expect(error.path == "_schedulers")
    }

    /// torch restores a callable object's attributes from `lr_lambdas`; a Swift closure has none,
    /// so such a state is refused rather than half-restored.
    @Test func savedCallableObjectAttributesAreRefused() throws {
        let scenario = try SchedulerFixtures.scenario("lambda_pow")
        let scheduler = try scenario.makeScheduler(on: try scenario.makeOptimizer())
        guard case .dict(var state) = scheduler.stateDict() else { return }
        state["lr_lambdas"] = [["factor": 0.5]]
        let error = try #require(throws: OptimizerError.self) { try scheduler.loadStateDict(.dict(state)) }
        #expect(error.code == .unsupported)
        #expect(error.path == "lr_lambdas/0")
    }

    @Test func aStateThatIsNotADictIsAnError() throws {
        let scenario = try SchedulerFixtures.scenario("step_30")
        let scheduler = try scenario.makeScheduler(on: try scenario.makeOptimizer())
        let error = try #require(throws: OptimizerError.self) { try scheduler.loadStateDict([1, 2]) }
        #expect(error.code == .malformedStateDict && error.message.contains("found list"))
    }

    @Test func tensorLearningRatesAreRefused() throws {
        let optimizer = try Adagrad([Parameter(try Tensor([1] as [Float]))], lr: try Tensor([0.1] as [Float], shape: []))
        let error = try #require(throws: OptimizerError.self) { try StepLR(optimizer, stepSize: 2) }
        #expect(error.code == .unsupported && error.path == "param_groups/0/lr")
    }

    @Test func plateauNeedsItsMetric() throws {
        let plateau = try ReduceLROnPlateau(try SchedulerFixtures.scenario("plateau_default").makeOptimizer())
        #expect(throws: OptimizerError.self) { try plateau.step() }
    }
}
