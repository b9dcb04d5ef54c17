import Checkpoint
import Foundation

/// Multiplies each group's learning rate by `factor` until epoch `totalIters`
/// (`torch.optim.lr_scheduler.ConstantLR`).
public final class ConstantLR: LRScheduler {
    var factor: PythonNumber
    var totalIters: Int

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - factor: The factor, in [0, 1].
    ///   - totalIters: The epoch at which the factor stops applying.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` "Constant multiplicative factor expected to be between 0 and 1."
    ///   as torch raises; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, factor: Double = 1.0 / 3, totalIters: Int = 5, lastEpoch: Int = -1,
        loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        guard factor <= 1.0, factor >= 0 else {
            throw OptimizerError(.invalidValue, "Constant multiplicative factor expected to be between 0 and 1.")
        }
        self.factor = .float(factor)
        self.totalIters = totalIters
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        let current = try groupLRs()
        if lastEpoch == 0 { return current.map { $0 * factor.double } }
        if lastEpoch != totalIters { return current }
        let inverse = try PythonArithmetic.divide(1.0, factor.double)
        return current.map { $0 * inverse }
    }

    public override func closedFormLR() throws -> [Double]? {
        let reached: Double = lastEpoch >= totalIters ? 1 : 0
        return baseLRs.map { $0 * (factor.double + reached * (1 - factor.double)) }
    }

    override var stateEntries: [StateEntry] {
        [.number("factor", self, \.factor), .int("total_iters", self, \.totalIters)] + baseStateEntries
    }
}

/// Moves each group's learning rate linearly from `startFactor` to `endFactor` times its initial
/// one over `totalIters` epochs (`torch.optim.lr_scheduler.LinearLR`).
public final class LinearLR: LRScheduler {
    var startFactor: PythonNumber
    var endFactor: PythonNumber
    var totalIters: Int

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - startFactor: The factor at epoch 0, in (0, 1].
    ///   - endFactor: The factor from epoch `totalIters` on, in [0, 1].
    ///   - totalIters: The epochs the change takes.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` with torch's message for a factor out of range; ``LoadOrderError``
    ///   under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, startFactor: Double = 1.0 / 3, endFactor: Double = 1.0, totalIters: Int = 5,
        lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        guard startFactor <= 1.0, startFactor > 0 else {
            throw OptimizerError(
                .invalidValue, "Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        }
        guard endFactor <= 1.0, endFactor >= 0 else {
            throw OptimizerError(.invalidValue, "Ending multiplicative factor expected to be between 0 and 1.")
        }
        self.startFactor = .float(startFactor)
        self.endFactor = .float(endFactor)
        self.totalIters = totalIters
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        let current = try groupLRs()
        let start = startFactor.double, end = endFactor.double
        if lastEpoch == 0 { return current.map { $0 * start } }
        if isInitial || lastEpoch > totalIters { return current }
        let ratio = try PythonArithmetic.divide(end - start, Double(totalIters) * start + Double(lastEpoch - 1) * (end - start))
        return current.map { $0 * (1.0 + ratio) }
    }

    public override func closedFormLR() throws -> [Double]? {
        let start = startFactor.double, end = endFactor.double
        let progress = try PythonArithmetic.divide((end - start) * Double(min(totalIters, lastEpoch)), Double(totalIters))
        return baseLRs.map { $0 * (start + progress) }
    }

    override var stateEntries: [StateEntry] {
        [.number("start_factor", self, \.startFactor), .number("end_factor", self, \.endFactor), .int("total_iters", self, \.totalIters)]
            + baseStateEntries
    }
}

/// Multiplies each group's learning rate by `gamma` every epoch
/// (`torch.optim.lr_scheduler.ExponentialLR`).
public final class ExponentialLR: LRScheduler {
    var gamma: PythonNumber

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - gamma: The decay factor.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` as torch raises; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(_ optimizer: Optimizer, gamma: Double, lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error) throws {
        self.gamma = .float(gamma)
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        let current = try groupLRs()
        if isInitial { return current }
        return current.map { $0 * gamma.double }
    }

    public override func closedFormLR() throws -> [Double]? {
        baseLRs.map { $0 * pow(gamma.double, Double(lastEpoch)) }
    }

    override var stateEntries: [StateEntry] { [.number("gamma", self, \.gamma)] + baseStateEntries }
}

/// Decays each group's learning rate as a polynomial of the remaining fraction of `totalIters`
/// epochs (`torch.optim.lr_scheduler.PolynomialLR`).
public final class PolynomialLR: LRScheduler {
    var totalIters: Int
    var power: PythonNumber

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - totalIters: The epochs until the rate reaches 0.
    ///   - power: The polynomial's power.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` as torch raises; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, totalIters: Int = 5, power: Double = 1.0, lastEpoch: Int = -1,
        loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        self.totalIters = totalIters
        self.power = .float(power)
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        let current = try groupLRs()
        if isInitial || lastEpoch > totalIters { return current }
        let remaining = 1.0 - (try PythonArithmetic.divide(lastEpoch, totalIters))
        let previous = 1.0 - (try PythonArithmetic.divide(lastEpoch - 1, totalIters))
        let decay = pow(try PythonArithmetic.divide(remaining, previous), power.double)
        return current.map { $0 * decay }
    }

    public override func closedFormLR() throws -> [Double]? {
        let remaining = 1.0 - (try PythonArithmetic.divide(min(totalIters, lastEpoch), totalIters))
        return baseLRs.map { $0 * pow(remaining, power.double) }
    }

    override var stateEntries: [StateEntry] {
        [.int("total_iters", self, \.totalIters), .number("power", self, \.power)] + baseStateEntries
    }
}
