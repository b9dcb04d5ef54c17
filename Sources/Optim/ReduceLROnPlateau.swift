import Checkpoint

/// Reduces each group's learning rate by `factor` when a metric has stopped improving for
/// `patience` steps (`torch.optim.lr_scheduler.ReduceLROnPlateau`). Step it with the metric:
/// ``step(metric:epoch:)``.
///
/// Like torch's, it takes no initial step and writes no `initial_lr`.
public final class ReduceLROnPlateau: LRScheduler {
    /// Whether lower or higher metrics are better.
    public enum Mode: String, Sendable {
        /// Lower is better (a loss).
        case min
        /// Higher is better (an accuracy).
        case max
    }

    /// How `threshold` defines a significant improvement.
    public enum ThresholdMode: String, Sendable {
        /// Relative: better than `best * (1 ∓ threshold)`.
        case rel
        /// Absolute: better than `best ∓ threshold`.
        case abs
    }

    var factor: PythonNumber
    var defaultMinLR: PythonNumber?
    var minLRs: [PythonNumber]
    var patience: Int
    var cooldown: Int
    var eps: PythonNumber
    var modeWorse: Double
    var mode: Mode
    var threshold: PythonNumber
    var thresholdMode: ThresholdMode
    var best: Double
    var cooldownCounter = 0
    var numBadEpochs = 0

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - mode: Whether lower or higher metrics are better.
    ///   - factor: The reduction factor, below 1.
    ///   - patience: Steps without improvement tolerated before a reduction.
    ///   - threshold: The least significant improvement.
    ///   - thresholdMode: Relative or absolute threshold.
    ///   - cooldown: Steps after a reduction during which bad steps are not counted.
    ///   - minLR: The lowest rate, for all groups or per group.
    ///   - eps: Reductions smaller than this are skipped.
    /// - Throws: ``OptimizerError`` "Factor should be < 1.0." or a per-group count error, as torch raises.
    public init(
        _ optimizer: Optimizer, mode: Mode = .min, factor: Double = 0.1, patience: Int = 10, threshold: Double = 1e-4,
        thresholdMode: ThresholdMode = .rel, cooldown: Int = 0, minLR: PerGroup = 0, eps: Double = 1e-8
    ) throws {
        guard factor < 1.0 else { throw OptimizerError(.invalidValue, "Factor should be < 1.0.") }
        self.factor = .float(factor)
        switch minLR {
        case .all(let value):
            defaultMinLR = .float(value)
            minLRs = Array(repeating: .float(value), count: optimizer.paramGroups.count)
        case .each(let values):
            guard values.count == optimizer.paramGroups.count else {
                throw OptimizerError(.invalidValue, "expected \(optimizer.paramGroups.count) min_lrs, got \(values.count)")
            }
            defaultMinLR = nil
            minLRs = values.map(PythonNumber.float)
        }
        self.patience = patience
        self.cooldown = cooldown
        self.eps = .float(eps)
        self.mode = mode
        self.threshold = .float(threshold)
        self.thresholdMode = thresholdMode
        modeWorse = Self.worst(mode)
        best = modeWorse
        super.init(composing: optimizer, lastEpoch: 0, lastLR: [])
        lastLR = try groupLRs()
    }

    private static func worst(_ mode: Mode) -> Double { mode == .min ? .infinity : -.infinity }

    /// Records a metric and reduces the learning rates if it has not improved for longer than
    /// `patience` steps (outside a cooldown).
    ///
    /// - Parameters:
    ///   - metric: The metric of this epoch.
    ///   - epoch: The epoch to record instead of the next one (torch's deprecated `epoch`).
    /// - Throws: ``OptimizerError`` when a group's `lr` is not a number, or groups were added and
    ///   `minLR` was given per group.
    public func step(metric: Double, epoch: Int? = nil) throws {
        let epoch = epoch ?? lastEpoch + 1
        lastEpoch = epoch
        if isBetter(metric, than: best) {
            best = metric
            numBadEpochs = 0
        } else {
            numBadEpochs += 1
        }
        if cooldownCounter > 0 {
            cooldownCounter -= 1
            numBadEpochs = 0
        }
        if numBadEpochs > patience {
            try reduceLR()
            cooldownCounter = cooldown
            numBadEpochs = 0
        }
        lastLR = try groupLRs()
    }

    /// torch's `step()` needs the metric.
    ///
    /// - Throws: ``OptimizerError`` `.invalidType` always: use ``step(metric:epoch:)``.
    public override func step() throws {
        throw OptimizerError(.invalidType, "ReduceLROnPlateau.step() missing 1 required positional argument: 'metrics'")
    }

    /// torch's `step(epoch)` needs the metric.
    ///
    /// - Throws: ``OptimizerError`` `.invalidType` always: use ``step(metric:epoch:)``.
    public override func step(epoch: Int) throws {
        throw OptimizerError(.invalidType, "ReduceLROnPlateau.step() missing 1 required positional argument: 'metrics'")
    }

    private func reduceLR() throws {
        let groups = optimizer.paramGroups.count
        if minLRs.count != groups {
            guard let defaultMinLR else {
                throw OptimizerError(
                    .unsupported,
                    "The number of param groups in the `optimizer` (\(groups)) differs from when `ReduceLROnPlateau` was "
                        + "initialized (\(minLRs.count)), usually due to a new param group being added to the optimizer. "
                        + "Please modify the `min_lrs` field to match the length of the `optimizer` param groups.")
            }
            minLRs = Array(repeating: defaultMinLR, count: groups)
        }
        for index in 0..<groups {
            let old = try optimizer.groupNumber("lr", group: index)
            let reduced = old * factor.double
            // Python's max() keeps its first argument unless the second is larger, with its type.
            let new: PythonNumber = minLRs[index].double > reduced ? minLRs[index] : .float(reduced)
            if old - new.double > eps.double {
                optimizer.paramGroups[index].options["lr"] = new.stateValue
            }
        }
    }

    private func isBetter(_ value: Double, than best: Double) -> Bool {
        switch (mode, thresholdMode) {
        case (.min, .rel): return value < best * (1.0 - threshold.double)
        case (.min, .abs): return value < best - threshold.double
        case (.max, .rel): return value > best * (threshold.double + 1.0)
        case (.max, .abs): return value > best + threshold.double
        }
    }

    override var stateEntries: [StateEntry] {
        [
            .number("factor", self, \.factor),
            .field("default_min_lr", self, \.defaultMinLR, encode: { $0?.stateValue ?? .none }, read: { value, path in
                value == .none ? nil : try StateCoding.number(value, path)
            }),
            .numbers("min_lrs", self, \.minLRs),
            .int("patience", self, \.patience), .int("cooldown", self, \.cooldown), .number("eps", self, \.eps),
            .int("last_epoch", self, \.lastEpoch), .floats("_last_lr", self, \.lastLR),
            .float("mode_worse", self, \.modeWorse), .choice("mode", self, \.mode), .number("threshold", self, \.threshold),
            .choice("threshold_mode", self, \.thresholdMode), .float("best", self, \.best),
            .int("cooldown_counter", self, \.cooldownCounter), .int("num_bad_epochs", self, \.numBadEpochs),
        ]
    }

    override func prepareLoad(_ state: StateValue, path: String) throws -> () -> Void {
        let install = try super.prepareLoad(state, path: path)
        return { [self] in
            install()
            // torch's `_init_is_better` after `__dict__.update`.
            modeWorse = Self.worst(mode)
        }
    }
}
