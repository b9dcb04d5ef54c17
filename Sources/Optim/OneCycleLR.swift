import Checkpoint
import Foundation

/// The 1cycle policy (`torch.optim.lr_scheduler.OneCycleLR`): each group's learning rate rises from
/// `maxLR / divFactor` to `maxLR`, then anneals to `initial_lr / finalDivFactor` (with
/// `threePhase`, back to the initial rate first), over exactly `totalSteps` steps; the momentum (or
/// beta1) moves the opposite way.
///
/// Constructing it writes `initial_lr`, `max_lr` and `min_lr` into every group (and with momentum
/// cycling `momentum` or `betas`, `max_momentum`, `base_momentum`), as torch does. Stepping past
/// `totalSteps` throws torch's error.
public final class OneCycleLR: LRScheduler {
    /// The annealing curve between two phase ends.
    public enum AnnealStrategy: String, Sendable {
        /// Cosine annealing.
        case cos
        /// Linear annealing.
        case linear
    }

    /// One phase of the cycle: where it ends and which group options it anneals between.
    struct Phase: Equatable {
        var endStep: PythonNumber
        var startLR: String
        var endLR: String
        var startMomentum: String
        var endMomentum: String
    }

    var totalSteps: Int
    var phases: [Phase]
    var annealStrategy: AnnealStrategy
    var cycleMomentum: Bool
    var useBeta1 = false
    var hasBeta1Flag: Bool

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer; with `cycleMomentum` its defaults must have `momentum` or `betas`.
    ///   - maxLR: The peak rate, for all groups or per group.
    ///   - totalSteps: The cycle's steps; or nil and `epochs` times `stepsPerEpoch`.
    ///   - epochs: With `stepsPerEpoch`, the cycle's length when `totalSteps` is nil.
    ///   - stepsPerEpoch: With `epochs`, the cycle's length when `totalSteps` is nil.
    ///   - pctStart: The fraction of the cycle spent rising.
    ///   - annealStrategy: Cosine or linear annealing.
    ///   - cycleMomentum: Cycle the momentum (or beta1) inversely to the rate.
    ///   - baseMomentum: The lower momentum.
    ///   - maxMomentum: The upper momentum.
    ///   - divFactor: `initial_lr = maxLR / divFactor`.
    ///   - finalDivFactor: `min_lr = initial_lr / finalDivFactor`.
    ///   - threePhase: Anneal back to the initial rate before the final annealing.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` with torch's message for a length or fraction out of range,
    ///   per-group values of the wrong count, or an optimizer without momentum; ``LoadOrderError``
    ///   under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, maxLR: PerGroup, totalSteps: Int? = nil, epochs: Int? = nil, stepsPerEpoch: Int? = nil,
        pctStart: Double = 0.3, annealStrategy: AnnealStrategy = .cos, cycleMomentum: Bool = true,
        baseMomentum: PerGroup = 0.85, maxMomentum: PerGroup = 0.95, divFactor: Double = 25.0,
        finalDivFactor: Double = 1e4, threePhase: Bool = false, lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        let before = optimizer.paramGroups.map(\.options)
        if let totalSteps {
            guard totalSteps > 0 else {
                throw OptimizerError(.invalidValue, "Expected positive integer total_steps, but got \(totalSteps)")
            }
            self.totalSteps = totalSteps
        } else if let epochs, let stepsPerEpoch {
            guard epochs > 0 else { throw OptimizerError(.invalidValue, "Expected positive integer epochs, but got \(epochs)") }
            guard stepsPerEpoch > 0 else {
                throw OptimizerError(.invalidValue, "Expected positive integer steps_per_epoch, but got \(stepsPerEpoch)")
            }
            self.totalSteps = epochs * stepsPerEpoch
        } else {
            throw OptimizerError(.invalidValue, "You must define either total_steps OR (epochs AND steps_per_epoch)")
        }
        let total = Double(self.totalSteps)
        let rise = Phase(
            endStep: .float(pctStart * total - 1), startLR: "initial_lr", endLR: "max_lr", startMomentum: "max_momentum",
            endMomentum: "base_momentum")
        let last = PythonNumber.int(self.totalSteps - 1)
        phases = threePhase
            ? [
                rise,
                Phase(endStep: .float(2 * pctStart * total - 2), startLR: "max_lr", endLR: "initial_lr",
                      startMomentum: "base_momentum", endMomentum: "max_momentum"),
                Phase(endStep: last, startLR: "initial_lr", endLR: "min_lr", startMomentum: "max_momentum", endMomentum: "max_momentum"),
            ]
            : [
                rise,
                Phase(endStep: last, startLR: "max_lr", endLR: "min_lr", startMomentum: "base_momentum", endMomentum: "max_momentum"),
            ]
        guard pctStart >= 0, pctStart <= 1 else {
            throw OptimizerError(.invalidValue, "Expected float between 0 and 1 pct_start, but got \(pctStart)")
        }
        self.annealStrategy = annealStrategy
        let groups = optimizer.paramGroups.count
        let maxLRs = try maxLR.values("max_lr", groups: groups)
        var changed = optimizer.paramGroups
        if lastEpoch == -1 {
            for index in changed.indices {
                let initial = try PythonArithmetic.divide(maxLRs[index], divFactor)
                changed[index].options["initial_lr"] = .float(initial)
                changed[index].options["max_lr"] = .float(maxLRs[index])
                changed[index].options["min_lr"] = .float(try PythonArithmetic.divide(initial, finalDivFactor))
            }
        }
        self.cycleMomentum = cycleMomentum
        hasBeta1Flag = cycleMomentum
        if cycleMomentum {
            useBeta1 = try optimizer.cyclesBeta1()
            // torch reads max_momentum first here (CyclicLR reads base_momentum first): the first error wins.
            let maxMomentums = try maxMomentum.values("max_momentum", groups: groups)
            let baseMomentums = try baseMomentum.values("base_momentum", groups: groups)
            if lastEpoch == -1 { try changed.startMomentumCycle(max: maxMomentums, base: baseMomentums, beta1: useBeta1) }
        }
        optimizer.paramGroups = changed
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck, groupsBefore: before)
    }

    private func anneal(_ start: Double, _ end: Double, _ pct: Double) -> Double {
        switch annealStrategy {
        case .cos: return end + (start - end) / 2.0 * (cos(Double.pi * pct) + 1)
        case .linear: return (end - start) * pct + start
        }
    }

    public override func getLR() throws -> [Double] {
        let stepNumber = lastEpoch
        guard stepNumber <= totalSteps else {
            throw OptimizerError(
                .invalidValue, "Tried to step \(stepNumber) times. The specified number of total steps is \(totalSteps)")
        }
        guard !phases.isEmpty else { throw OptimizerError(.malformedStateDict, "no phases", path: "_schedule_phases") }
        var lrs: [Double] = []
        for index in optimizer.paramGroups.indices {
            var startStep = 0.0
            for (position, phase) in phases.enumerated() {
                let endStep = phase.endStep.double
                guard Double(stepNumber) <= endStep || position == phases.count - 1 else {
                    startStep = endStep
                    continue
                }
                let pct = try PythonArithmetic.divide(Double(stepNumber) - startStep, endStep - startStep)
                lrs.append(anneal(
                    try optimizer.groupNumber(phase.startLR, group: index), try optimizer.groupNumber(phase.endLR, group: index), pct))
                if cycleMomentum {
                    let momentum = anneal(
                        try optimizer.groupNumber(phase.startMomentum, group: index),
                        try optimizer.groupNumber(phase.endMomentum, group: index), pct)
                    try optimizer.paramGroups[index].setMomentum(momentum, beta1: useBeta1, group: index)
                }
                break
            }
        }
        return lrs
    }

    override var stateEntries: [StateEntry] {
        let present = hasBeta1Flag
        return [
            .int("total_steps", self, \.totalSteps),
            .field("_schedule_phases", self, \.phases, encode: { phases in
                .list(phases.map { phase in
                    [
                        "end_step": phase.endStep.stateValue, "start_lr": .string(phase.startLR), "end_lr": .string(phase.endLR),
                        "start_momentum": .string(phase.startMomentum), "end_momentum": .string(phase.endMomentum),
                    ]
                })
            }, read: Self.readPhases),
            .choice("_anneal_func_type", self, \.annealStrategy),
            .bool("cycle_momentum", self, \.cycleMomentum),
            .bool("use_beta1", self, \.useBeta1).present(if: present) { [self] in hasBeta1Flag = true },
        ] + baseStateEntries
    }

    private static func readPhases(_ value: StateValue, _ path: String) throws -> [Phase] {
        try StateCoding.list(value, path).enumerated().map { index, item in
            let at = StateCoding.join(path, String(index))
            guard case .dict(let dict) = item else { throw StateCoding.mismatch("a dict", item, at) }
            func text(_ key: String) throws -> String {
                guard let value = dict[.string(key)] else { throw OptimizerError(.malformedStateDict, "missing", path: StateCoding.join(at, key)) }
                return try StateCoding.string(value, StateCoding.join(at, key))
            }
            guard let end = dict["end_step"] else { throw OptimizerError(.malformedStateDict, "missing", path: StateCoding.join(at, "end_step")) }
            return Phase(
                endStep: try StateCoding.number(end, StateCoding.join(at, "end_step")), startLR: try text("start_lr"),
                endLR: try text("end_lr"), startMomentum: try text("start_momentum"), endMomentum: try text("end_momentum"))
        }
    }
}
