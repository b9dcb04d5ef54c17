import Checkpoint
import Foundation

/// Cycles each group's learning rate between `baseLR` and `maxLR` (and, optionally, its momentum or
/// Adam's beta1 the opposite way), changing it every step (`torch.optim.lr_scheduler.CyclicLR`).
///
/// Constructing it sets each group's `lr` to its base rate and, with momentum cycling, its
/// `momentum` (or `betas[0]`) to `maxMomentum` plus `max_momentum`/`base_momentum` entries, as
/// torch does. A custom scale function is a Swift closure; the state dict saves `None` for it.
public final class CyclicLR: LRScheduler {
    /// How the amplitude changes from cycle to cycle.
    public enum Mode: String, Sendable {
        /// The same amplitude every cycle.
        case triangular
        /// Half the amplitude each cycle.
        case triangular2
        /// The amplitude times `gamma ** iteration`.
        case expRange = "exp_range"
    }

    /// What a custom scale function is given.
    public enum ScaleMode: String, Sendable {
        /// The cycle number, from 1.
        case cycle
        /// The iteration (the scheduler's epoch).
        case iterations
    }

    var maxLRs: [Double]
    var totalSize: Double
    var stepRatio: Double
    var mode: Mode
    var gamma: PythonNumber
    let scaleFn: ((Int) -> Double)?
    var scaleMode: ScaleMode
    var cycleMomentum: Bool
    var useBeta1 = false
    var baseMomentums: [Double] = []
    var maxMomentums: [Double] = []
    /// True when `use_beta1`, `base_momentums` and `max_momentums` are in torch's `__dict__`
    /// (built or loaded with momentum cycling).
    var hasMomentumState: Bool

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer; with `cycleMomentum` its defaults must have `momentum` or `betas`.
    ///   - baseLR: The lower rate, for all groups or per group.
    ///   - maxLR: The upper rate, for all groups or per group.
    ///   - stepSizeUp: Iterations in the rising half of a cycle.
    ///   - stepSizeDown: Iterations in the falling half; nil for `stepSizeUp`.
    ///   - mode: The amplitude policy, unless `scaleFn` is given.
    ///   - gamma: The factor of ``Mode/expRange``.
    ///   - scaleFn: A custom amplitude factor of the cycle or the iteration (see `scaleMode`).
    ///   - scaleMode: What `scaleFn` is given.
    ///   - cycleMomentum: Cycle the momentum (or beta1) inversely to the rate.
    ///   - baseMomentum: The lower momentum.
    ///   - maxMomentum: The upper momentum.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` with torch's message for per-group values of the wrong count or an
    ///   optimizer without momentum; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, baseLR: PerGroup, maxLR: PerGroup, stepSizeUp: Int = 2000, stepSizeDown: Int? = nil,
        mode: Mode = .triangular, gamma: Double = 1.0, scaleFn: ((Int) -> Double)? = nil, scaleMode: ScaleMode = .cycle,
        cycleMomentum: Bool = true, baseMomentum: PerGroup = 0.8, maxMomentum: PerGroup = 0.9, lastEpoch: Int = -1,
        loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        let before = optimizer.paramGroups.map(\.options)
        let groups = optimizer.paramGroups.count
        let baseLRs = try baseLR.values("base_lr", groups: groups)
        var changed = optimizer.paramGroups
        if lastEpoch == -1 {
            for index in changed.indices { changed[index].options["lr"] = .float(baseLRs[index]) }
        }
        maxLRs = try maxLR.values("max_lr", groups: groups)
        let up = Double(stepSizeUp)
        let down = stepSizeDown.map(Double.init) ?? up
        totalSize = up + down
        stepRatio = try PythonArithmetic.divide(up, totalSize)
        self.mode = mode
        self.gamma = .float(gamma)
        self.scaleFn = scaleFn
        self.scaleMode = scaleMode
        self.cycleMomentum = cycleMomentum
        hasMomentumState = cycleMomentum
        if cycleMomentum {
            useBeta1 = try optimizer.cyclesBeta1()
            baseMomentums = try baseMomentum.values("base_momentum", groups: groups)
            maxMomentums = try maxMomentum.values("max_momentum", groups: groups)
            if lastEpoch == -1 { try changed.startMomentumCycle(max: maxMomentums, base: baseMomentums, beta1: useBeta1) }
        }
        optimizer.paramGroups = changed
        if scaleFn == nil { self.scaleMode = Self.scaleMode(of: mode) }
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck, groupsBefore: before)
        // torch sets base_lrs after the initial step, which ran from each group's initial_lr.
        self.baseLRs = baseLRs
    }

    /// torch's `_init_scale_fn`: the built-in modes fix the scale mode.
    private static func scaleMode(of mode: Mode) -> ScaleMode {
        mode == .expRange ? .iterations : .cycle
    }

    private func scale(_ x: Int) -> Double {
        if let scaleFn { return scaleFn(x) }
        switch mode {
        case .triangular: return 1.0
        case .triangular2: return 1 / pow(2.0, Double(x - 1))
        case .expRange: return pow(gamma.double, Double(x))
        }
    }

    public override func getLR() throws -> [Double] {
        let position = try PythonArithmetic.divide(Double(lastEpoch), totalSize)
        let cycle = Int(floor(1 + position))
        let x = 1.0 + position - Double(cycle)
        let scaleFactor = x <= stepRatio
            ? try PythonArithmetic.divide(x, stepRatio)
            : try PythonArithmetic.divide(x - 1, stepRatio - 1)
        let argument = scaleMode == .cycle ? cycle : lastEpoch
        try requireSameCount(baseLRs, maxLRs)
        // The scale function is called once per group and value, as torch calls it.
        let lrs = zip(baseLRs, maxLRs).map { base, top in base + (top - base) * scaleFactor * scale(argument) }
        if cycleMomentum {
            try requireSameCount(baseMomentums, maxMomentums)
            let momentums = zip(baseMomentums, maxMomentums).map { base, top in top - (top - base) * scaleFactor * scale(argument) }
            try requireSameCount(optimizer.paramGroups, momentums)
            for (index, momentum) in momentums.enumerated() {
                try optimizer.paramGroups[index].setMomentum(momentum, beta1: useBeta1, group: index)
            }
        }
        return lrs
    }

    override var stateEntries: [StateEntry] {
        var entries: [StateEntry] = [
            .floats("max_lrs", self, \.maxLRs), .float("total_size", self, \.totalSize), .float("step_ratio", self, \.stepRatio),
            .choice("mode", self, \.mode), .number("gamma", self, \.gamma), .choice("scale_mode", self, \.scaleMode),
            .bool("cycle_momentum", self, \.cycleMomentum),
        ]
        let present = hasMomentumState
        let momentumEntries: [StateEntry] = [
            .bool("use_beta1", self, \.useBeta1), .floats("base_momentums", self, \.baseMomentums),
            .floats("max_momentums", self, \.maxMomentums),
        ]
        entries += momentumEntries.map { $0.present(if: present) { [self] in hasMomentumState = true } }
        return entries + baseStateEntries
    }

    override var trailingStateEntries: [StateEntry] { [.function("_scale_fn_custom")] }

    override func prepareLoad(_ state: StateValue, path: String) throws -> () -> Void {
        let install = try super.prepareLoad(state, path: path)
        return { [self] in
            install()
            if scaleFn == nil { scaleMode = Self.scaleMode(of: mode) }
        }
    }
}
