import Checkpoint
import Foundation

/// Anneals each group's learning rate along a cosine from its initial value down to `etaMin` over
/// `tMax` epochs, and back up over the next `tMax` (`torch.optim.lr_scheduler.CosineAnnealingLR`).
///
/// ``step()`` follows torch's recursive form (each rate from the previous one), which is what
/// makes the schedule compose with other schedulers; ``step(epoch:)`` the closed form.
public final class CosineAnnealingLR: LRScheduler {
    var tMax: Int
    var etaMin: PythonNumber

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - tMax: Epochs from the initial rate to `etaMin` (torch's `T_max`).
    ///   - etaMin: The lowest rate.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` as torch raises; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, tMax: Int, etaMin: Double = 0.0, lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        self.tMax = tMax
        self.etaMin = .float(etaMin)
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        let current = try groupLRs()
        if isInitial { return current }
        let eta = etaMin.double, period = Double(tMax)
        if stepCount == 1 && lastEpoch > 0 {
            try requireSameCount(baseLRs, current)
            let angle = try PythonArithmetic.divide(Double(lastEpoch) * Double.pi, period)
            return baseLRs.map { eta + ($0 - eta) * (1 + cos(angle)) / 2 }
        }
        if try PythonArithmetic.modulo(lastEpoch - 1 - tMax, 2 * tMax) == 0 {
            try requireSameCount(baseLRs, current)
            let angle = try PythonArithmetic.divide(Double.pi, period)
            return zip(baseLRs, current).map { base, lr in lr + (base - eta) * (1 - cos(angle)) / 2 }
        }
        let now = try PythonArithmetic.divide(Double.pi * Double(lastEpoch), period)
        let before = try PythonArithmetic.divide(Double.pi * Double(lastEpoch - 1), period)
        let ratio = try PythonArithmetic.divide(1 + cos(now), 1 + cos(before))
        return current.map { ratio * ($0 - eta) + eta }
    }

    public override func closedFormLR() throws -> [Double]? {
        let eta = etaMin.double
        let angle = try PythonArithmetic.divide(Double.pi * Double(lastEpoch), Double(tMax))
        return baseLRs.map { eta + ($0 - eta) * (1 + cos(angle)) / 2 }
    }

    override var stateEntries: [StateEntry] {
        [.int("T_max", self, \.tMax), .number("eta_min", self, \.etaMin)] + baseStateEntries
    }
}

/// Anneals each group's learning rate along a cosine from its initial value to `etaMin`, restarting
/// after `t0` epochs, then after `t0 * tMult`, `t0 * tMult²`, ...
/// (`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`).
///
/// ``step(epoch:)`` takes a fractional epoch too (`epoch + batch / batches`), as torch's does.
public final class CosineAnnealingWarmRestarts: LRScheduler {
    var t0: Int
    var tI: Int
    var tMult: Int
    var etaMin: PythonNumber
    /// Epochs since the last restart: an int, or a float after a fractional or closed-form epoch.
    var tCur: PythonNumber

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - t0: Epochs until the first restart (torch's `T_0`), positive.
    ///   - tMult: The factor by which each period grows (torch's `T_mult`), at least 1.
    ///   - etaMin: The lowest rate.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` with torch's message for `t0` or `tMult` out of range;
    ///   ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, t0: Int, tMult: Int = 1, etaMin: Double = 0.0, lastEpoch: Int = -1,
        loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        guard t0 > 0 else { throw OptimizerError(.invalidValue, "Expected positive integer T_0, but got \(t0)") }
        guard tMult >= 1 else { throw OptimizerError(.invalidValue, "Expected integer T_mult >= 1, but got \(tMult)") }
        self.t0 = t0
        self.tI = t0
        self.tMult = tMult
        self.etaMin = .float(etaMin)
        self.tCur = .int(lastEpoch)
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        let eta = etaMin.double
        let angle = try PythonArithmetic.divide(Double.pi * tCur.double, Double(tI))
        return baseLRs.map { eta + ($0 - eta) * (1 + cos(angle)) / 2 }
    }

    /// Advances one epoch, restarting the cosine at the end of a period.
    ///
    /// - Throws: ``OptimizerError`` when a group's `lr` is not a number.
    public override func step() throws { try advance(to: nil) }

    /// Jumps to `epoch`, placing it within its period.
    ///
    /// - Parameter epoch: A non-negative epoch.
    /// - Throws: ``OptimizerError`` "Expected non-negative epoch, but got -1" for a negative epoch.
    public override func step(epoch: Int) throws { try advance(to: .int(epoch)) }

    /// Jumps to a fractional epoch (torch's `scheduler.step(epoch + i / iters)` within an epoch).
    ///
    /// - Parameter epoch: A non-negative epoch.
    /// - Throws: ``OptimizerError`` "Expected non-negative epoch, but got -0.5" for a negative epoch.
    public func step(epoch: Double) throws { try advance(to: .float(epoch)) }

    /// torch's `CosineAnnealingWarmRestarts.step`, which keeps `_step_count` as it is.
    private func advance(to epoch: PythonNumber?) throws {
        var epoch = epoch
        if epoch == nil && lastEpoch < 0 { epoch = .int(0) }
        let target: PythonNumber
        if let epoch {
            guard epoch.double >= 0 else {
                throw OptimizerError(.invalidValue, "Expected non-negative epoch, but got \(epoch.pythonText)")
            }
            if epoch.double >= Double(t0) {
                if tMult == 1 {
                    tCur = try epoch.modulo(.int(t0))
                } else {
                    let fraction = try PythonArithmetic.divide(epoch.double, Double(t0)) * Double(tMult - 1) + 1
                    let n = try Self.truncate(log(fraction) / log(Double(tMult)))
                    let power = try Self.power(tMult, n)
                    tCur = .float(epoch.double - (try PythonArithmetic.divide(t0 * (power - 1), tMult - 1)))
                    tI = t0 * power
                }
            } else {
                tI = t0
                tCur = epoch
            }
            target = epoch
        } else {
            target = .int(lastEpoch + 1)
            tCur = tCur.plusOne
            if tCur.double >= Double(tI) {
                tCur = try tCur.modulo(.int(tI))
                tI *= tMult
            }
        }
        lastEpoch = try Self.truncate(floor(target.double))
        let values: [Double]
        do {
            getLRCalledWithinStep = true
            defer { getLRCalledWithinStep = false }
            values = try getLR()
        }
        try setGroupLRs(values)
        lastLR = try groupLRs()
    }

    /// Python's `int(x)` of a float: toward zero, an error for infinities and NaN.
    private static func truncate(_ value: Double) throws -> Int {
        guard let result = Int(exactly: value.rounded(.towardZero)) else {
            throw OptimizerError(.invalidValue, "cannot convert float \(value) to integer")
        }
        return result
    }

    /// `base ** exponent` on ints, refusing what would overflow.
    private static func power(_ base: Int, _ exponent: Int) throws -> Int {
        var result = 1
        for _ in 0..<max(exponent, 0) {
            let (product, overflow) = result.multipliedReportingOverflow(by: base)
            guard !overflow else { throw OptimizerError(.invalidValue, "T_mult ** n overflows a 64-bit int") }
            result = product
        }
        return result
    }

    override var stateEntries: [StateEntry] {
        [
            .int("T_0", self, \.t0), .int("T_i", self, \.tI), .int("T_mult", self, \.tMult),
            .number("eta_min", self, \.etaMin), .number("T_cur", self, \.tCur),
        ] + baseStateEntries
    }
}

extension PythonNumber {
    /// `self + 1`: an int stays an int.
    var plusOne: PythonNumber {
        switch self {
        case .int(let value): return .int(value + 1)
        case .float(let value): return .float(value + 1)
        }
    }

    /// Python's `%`: int modulo for two ints, float modulo otherwise.
    func modulo(_ divisor: PythonNumber) throws -> PythonNumber {
        if case .int(let a) = self, case .int(let b) = divisor { return .int(try PythonArithmetic.modulo(a, b)) }
        return .float(try PythonArithmetic.modulo(double, divisor.double))
    }

    /// The number as Python prints it (`3`, `-0.5`).
    var pythonText: String {
        switch self {
        case .int(let value): return String(value)
        case .float(let value): return "\(value)"
        }
    }
}
