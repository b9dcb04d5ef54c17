import Checkpoint
import Foundation
import Testing
@testable import Optim

// The example of torch's `Optimizer.load_state_dict` docs, line for line, on the files torch wrote
// (Tests/Fixtures/schedulers/page, scripts/make_scheduler_fixtures.py): a tiny nn.Linear(3, 2)
// trained 50 steps with SGD(lr=3e-4) under LinearLR then CosineAnnealingLR in a SequentialLR, saved,
// and continued 100 steps.

enum PageExample {
    static let directory = SchedulerFixtures.directory.appendingPathComponent("page", isDirectory: true)

    /// page.json (read-only after initialization, hence nonisolated(unsafe)).
    nonisolated(unsafe) static let json: Result<[String: Any], Error> = Result {
        let url = directory.appendingPathComponent("page.json")
        guard let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw OptimFixtures.FixtureError(description: "\(url.path): not a JSON object")
        }
        return root
    }

    static func file(_ name: String) throws -> StateValue {
        try StateValue(contentsOf: directory.appendingPathComponent(name))
    }

    static func float32(_ json: Any?) throws -> Tensor {
        guard let node = json as? [String: Any], let shape = node["shape"] as? [Int], let hex = node["hex"] as? String else {
            throw OptimFixtures.FixtureError(description: "bad tensor \(String(describing: json))")
        }
        return try Tensor(storage: Storage(bytes: OptimFixtures.bytes(hex: hex)), dtype: .float32, shape: shape)
    }

    /// The model's parameters in `model.parameters()` order, from torch's `save_model.pt`.
    static func model() throws -> [Parameter] {
        let state = try file("save_model.pt")
        return try ["weight", "bias"].map { name in
            guard case .tensor(let tensor)? = state[.string(name)] else {
                throw OptimFixtures.FixtureError(description: "save_model.pt has no \(name)")
            }
            return Parameter(try tensor.contiguousCopy())
        }
    }

    /// `torch.optim.SGD(model.parameters(), lr=3e-4)`.
    static func makeOptimizer(_ model: [Parameter]) throws -> Optimizer {
        try SGD(model, lr: 3e-4)
    }

    /// The example's three schedulers, as the docs build them.
    static func schedulers(_ optimizer: Optimizer, loadOrderCheck: LoadOrderCheck = .error) throws -> SequentialLR {
        let scheduler1 = try LinearLR(optimizer, startFactor: 0.1, endFactor: 1, totalIters: 20, loadOrderCheck: loadOrderCheck)
        let scheduler2 = try CosineAnnealingLR(optimizer, tMax: 80, etaMin: 3e-5, loadOrderCheck: loadOrderCheck)
        return try SequentialLR(optimizer, schedulers: [scheduler1, scheduler2], milestones: [20], loadOrderCheck: loadOrderCheck)
    }

    /// Training from the save point: each step sets torch's gradients, steps the optimizer, then the
    /// scheduler; returns the rate and the parameters after every step.
    static func train(_ model: [Parameter], _ optimizer: Optimizer, _ scheduler: LRScheduler) throws -> (lrs: [Double], params: [[Tensor]]) {
        let page = try json.get()
        guard let grads = page["grads"] as? [[Any]], let start = page["saved_after"] as? Int else {
            throw OptimFixtures.FixtureError(description: "page.json: no grads")
        }
        var lrs: [Double] = []
        var params: [[Tensor]] = []
        for step in start..<(start + 100) {
            for (parameter, grad) in zip(model, grads[step]) { parameter.grad = .dense(try float32(grad)) }
            try optimizer.step()
            try scheduler.step()
            lrs.append(try optimizer.groupNumber("lr", group: 0))
            params.append(try model.map { try $0.data.contiguousCopy() })
        }
        return (lrs, params)
    }

    static func sequence(_ key: String) throws -> [Double] { try SchedulerFixtures.sequence(json.get()[key]) }
}

@Suite struct SchedulerPageExampleTests {
    @Test func continuesOnTorchsLearningRates() throws {
        let model = try PageExample.model()
        let optimizer = try PageExample.makeOptimizer(model)
        let lr = try PageExample.schedulers(optimizer)
        try lr.loadStateDict(PageExample.file("save_seq.pt"))
        // now load the optimizer checkpoint after loading the LRScheduler
        try optimizer.loadStateDict(PageExample.file("save_optim.pt"))

        #expect(lr.stateDict() == (try PageExample.file("save_seq.pt")), "the loaded state saves back as torch wrote it")
        #expect(optimizer.stateDict() == (try PageExample.file("save_optim.pt")))
        #expect(lr.getLastLR().last == (try PageExample.sequence("lrs_before_save")).last)
        let (lrs, _) = try PageExample.train(model, optimizer, lr)
        #expect(SchedulerFixtures.firstMismatch(lrs, try PageExample.sequence("continuation_lrs")) == nil)
        #expect(lr.warnings.isEmpty)
    }

    @Test func continuesOnTorchsParameters() throws {
        let model = try PageExample.model()
        let optimizer = try PageExample.makeOptimizer(model)
        let lr = try PageExample.schedulers(optimizer)
        try lr.loadStateDict(PageExample.file("save_seq.pt"))
        try optimizer.loadStateDict(PageExample.file("save_optim.pt"))
        let (_, params) = try PageExample.train(model, optimizer, lr)
        try Self.expectTorchsParameters(params)
    }

    /// The same resume through TrainingState, torch's three files as the one tree torch users save
    /// (`{"model", "optimizer", "scheduler"}`), into a model whose weights start at zero.
    @Test func continuesThroughTrainingState() throws {
        let weights = try PageExample.file("save_model.pt")
        let model = try ["weight", "bias"].map { name in
            guard case .tensor(let tensor)? = weights[.string(name)] else {
                throw OptimFixtures.FixtureError(description: "save_model.pt has no \(name)")
            }
            return Parameter(try Tensor(zeros: tensor.dtype, shape: tensor.shape), name: name)
        }
        let optimizer = try PageExample.makeOptimizer(model)
        let lr = try PageExample.schedulers(optimizer)
        let tree: StateValue = [
            "model": weights, "optimizer": try PageExample.file("save_optim.pt"), "scheduler": try PageExample.file("save_seq.pt"),
        ]
        try TrainingState(model: model, optimizer: optimizer, scheduler: lr).loadStateDict(tree)
        let (lrs, params) = try PageExample.train(model, optimizer, lr)
        #expect(SchedulerFixtures.firstMismatch(lrs, try PageExample.sequence("continuation_lrs")) == nil)
        try Self.expectTorchsParameters(params)
        #expect(lr.warnings.isEmpty && lr.schedulers.allSatisfy { $0.warnings.isEmpty })
    }

    /// The parameters after every step of the continuation are torch's, bit for bit.
    static func expectTorchsParameters(_ params: [[Tensor]]) throws {
        let expected = try #require(try PageExample.json.get()["continuation_params"] as? [[Any]])
        #expect(params.count == expected.count)
        for (step, pair) in zip(params, expected).enumerated() {
            for (tensor, spec) in zip(pair.0, pair.1) {
                #expect(try tensor.isBitwiseEqual(to: PageExample.float32(spec)), "step \(step)")
            }
        }
    }
}
