import Checkpoint
import Foundation
import Optim

/// A training run torch recorded (Tests/Fixtures/schedulers/resume, scripts/make_scheduler_fixtures.py):
/// a small `nn.Sequential(Linear(4, 8), Tanh(), Linear(8, 2))` trained 60 steps on fixed gradients
/// with `SGD(lr=0.1, momentum=0.9, weight_decay=5e-4)` under its schedulers, and checkpointed after
/// the steps in ``saveAt`` as torch users save one.
struct TorchRun: Sendable, CustomStringConvertible {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/schedulers/resume", isDirectory: true)
    static let names = ["sequential", "two_schedulers"]
    static let steps = 60
    /// `model.state_dict()`'s keys.
    static let parameterNames = ["0.weight", "0.bias", "2.weight", "2.bias"]

    struct FixtureError: Error, CustomStringConvertible { var description: String }

    let name: String
    /// The weights before the first step, in `model.parameters()` order.
    let initial: [Tensor]
    /// Per parameter, its gradient at every step, stacked (`[steps, ...]`).
    let grads: [Tensor]
    /// Per parameter, its value after every step, stacked.
    let params: [Tensor]
    /// The group's lr after construction, then after every step.
    let lrs: [Double]
    /// The steps after which torch saved the run (`<name>_at_<k>.pt`).
    let saveAt: [Int]
    /// Where the run saves its schedulers: `scheduler` or `schedulers`.
    let key: String
    /// ATen's CPU capability where torch ran (`torch.backends.cpu.get_cpu_capability()`).
    let atenCapability: String

    /// Whether ckpt's SGD can reproduce the run's bits: torch's float32 SGD depends on the machine
    /// only through ATen fusing multiply-adds (AVX2 or AVX-512 capability; DEFAULT does not), and
    /// ckpt's kernels fuse them on every CPU (see SGDFidelityTests).
    var isReproducible: Bool { atenCapability == "AVX2" || atenCapability == "AVX512" }

    /// Every run, if each loads and is reproducible; nil otherwise (the tests comparing bits are then
    /// skipped, and ResumeTests.fixturesArePresent says why).
    static let reproducible: [TorchRun]? = {
        let runs = names.compactMap { try? TorchRun($0) }
        return runs.count == names.count && runs.allSatisfy(\.isReproducible) ? runs : nil
    }()

    var description: String { name }

    init(_ name: String) throws {
        self.name = name
        let run = try StateValue(contentsOf: Self.directory.appendingPathComponent("\(name).pt"))
        func tensors(_ value: StateValue?) throws -> [Tensor] {
            let items: [StateValue]
            switch value {
            case .list(let list)?: items = list
            case .dict(let dict)?: items = dict.map(\.value)
            default: throw FixtureError(description: "\(name).pt: expected a list or dict of tensors")
            }
            return try items.map { item in
                guard case .tensor(let tensor) = item else { throw FixtureError(description: "\(name).pt: not a tensor") }
                return try tensor.contiguousCopy()
            }
        }
        initial = try tensors(run["initial"])
        grads = try tensors(run["grads"])
        params = try tensors(run["params"])
        guard case .list(let lrs)? = run["lrs"], case .list(let saveAt)? = run["save_at"], case .string(let key)? = run["key"],
              case .string(let capability)? = run["aten_capability"]
        else {
            throw FixtureError(description: "\(name).pt: no lrs, save_at, key or aten_capability")
        }
        self.lrs = try lrs.map { value in
            guard case .float(let lr) = value else { throw FixtureError(description: "\(name).pt: lr \(value) is not a float") }
            return lr
        }
        self.saveAt = saveAt.compactMap { if case .int(let step) = $0 { Int(step) } else { nil } }
        self.key = key
        atenCapability = capability
        guard initial.count == Self.parameterNames.count, self.lrs.count == Self.steps + 1, self.saveAt.count == saveAt.count else {
            throw FixtureError(description: "\(name).pt: unexpected layout")
        }
    }

    /// torch's checkpoint after `step` (`torch.save({"model", "optimizer", "scheduler(s)", "epoch"})`).
    func checkpoint(after step: Int) throws -> StateValue {
        try StateValue(contentsOf: Self.directory.appendingPathComponent("\(name)_at_\(step).pt"))
    }

    /// Row `index` of a stacked tensor.
    static func row(_ stacked: Tensor, _ index: Int) throws -> Tensor {
        try stacked.viewed(
            shape: Array(stacked.shape.dropFirst()), strides: Array(stacked.strides.dropFirst()),
            storageOffset: stacked.storageOffset + index * stacked.strides[0])
    }

    /// torch's parameters after `step` (1-based: after the first step is 1).
    func parameters(after step: Int) throws -> [Tensor] {
        try params.map { try Self.row($0, step - 1) }
    }
}

/// The run's model, optimizer and schedulers, built in Swift as its torch trainer builds them.
struct Trainer {
    let model: [Parameter]
    let optimizer: SGD
    let schedulers: [LRScheduler]
    let training: TrainingState

    /// - Parameter weights: The model's starting values; nil for zeros (a model whose weights a
    ///   checkpoint is about to replace).
    init(_ run: TorchRun, weights: [Tensor]? = nil) throws {
        model = try zip(TorchRun.parameterNames, run.initial).enumerated().map { index, pair in
            let data = try weights?[index].contiguousCopy() ?? Tensor(zeros: pair.1.dtype, shape: pair.1.shape)
            return Parameter(data, name: pair.0)
        }
        optimizer = try SGD(model, lr: 0.1, momentum: 0.9, weightDecay: 5e-4)
        switch run.name {
        case "sequential":
            let warmup = try LinearLR(optimizer, startFactor: 0.1, totalIters: 10)
            let cosine = try CosineAnnealingLR(optimizer, tMax: 50, etaMin: 1e-3)
            let scheduler = try SequentialLR(optimizer, schedulers: [warmup, cosine], milestones: [10])
            schedulers = [scheduler]
            training = try TrainingState(model: model, optimizer: optimizer, scheduler: scheduler)
        default:
            schedulers = [try LinearLR(optimizer, startFactor: 0.25, totalIters: 8), try ExponentialLR(optimizer, gamma: 0.97)]
            training = try TrainingState(model: model, optimizer: optimizer, schedulers: schedulers)
        }
    }

    /// The group's current learning rate.
    var lr: Double {
        get throws {
            guard case .float(let lr)? = optimizer.paramGroups[0].options["lr"] else {
                throw TorchRun.FixtureError(description: "lr is not a float: \(String(describing: optimizer.paramGroups[0].options["lr"]))")
            }
            return lr
        }
    }

    /// One step with torch's gradients of `step` (0-based), the optimizer's then each scheduler's.
    func step(_ run: TorchRun, _ step: Int) throws {
        for (parameter, grads) in zip(model, run.grads) { parameter.grad = .dense(try TorchRun.row(grads, step).contiguousCopy()) }
        try optimizer.step()
        for scheduler in schedulers { try scheduler.step() }
    }

    /// The first step in `steps` (0-based) whose learning rate or parameters differ from torch's
    /// after it, with what differed; nil when every one has torch's bits.
    func trainComparing(_ run: TorchRun, _ steps: Range<Int>) throws -> String? {
        for index in steps {
            try step(run, index)
            if try lr.bitPattern != run.lrs[index + 1].bitPattern {
                return "step \(index + 1): lr \(try lr), torch \(run.lrs[index + 1])"
            }
            for (name, (parameter, expected)) in zip(TorchRun.parameterNames, zip(model, try run.parameters(after: index + 1)))
            where try !parameter.data.isBitwiseEqual(to: expected) {
                return "step \(index + 1): \(name) differs from torch's"
            }
        }
        return nil
    }
}
