import Checkpoint

/// Sets each group's learning rate to its initial one times a function of the epoch
/// (`torch.optim.lr_scheduler.LambdaLR`): `lr = base_lr * lrLambda(epoch)`.
///
/// The functions are Swift closures; the state dict saves `None` for each, as torch does for a
/// plain function, so the closures must be given again when a run resumes.
public final class LambdaLR: LRScheduler {
    /// A function of the epoch giving a multiplicative factor.
    public typealias Lambda = (Int) -> Double

    let lrLambdas: [Lambda]

    /// Creates the scheduler with one function for every group.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - lrLambda: The factor for an epoch.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` as torch raises; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public convenience init(
        _ optimizer: Optimizer, lrLambda: @escaping Lambda, lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        try self.init(
            optimizer, lrLambdas: Array(repeating: lrLambda, count: optimizer.paramGroups.count), lastEpoch: lastEpoch,
            loadOrderCheck: loadOrderCheck)
    }

    /// Creates the scheduler with one function per group.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - lrLambdas: One function per parameter group.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` "Expected N lr_lambdas, but got M" for a count that is not the
    ///   group count; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(_ optimizer: Optimizer, lrLambdas: [Lambda], lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error) throws {
        self.lrLambdas = try optimizer.onePerGroup(lrLambdas)
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        try requireSameCount(lrLambdas, baseLRs)
        return zip(lrLambdas, baseLRs).map { lambda, base in base * lambda(lastEpoch) }
    }

    override var trailingStateEntries: [StateEntry] { [.functions("lr_lambdas", count: lrLambdas.count)] }
}

/// Multiplies each group's learning rate by a function of the epoch at every step
/// (`torch.optim.lr_scheduler.MultiplicativeLR`): `lr = lr * lrLambda(epoch)`.
///
/// The functions are Swift closures; the state dict saves `None` for each, as torch does for a
/// plain function.
public final class MultiplicativeLR: LRScheduler {
    /// A function of the epoch giving a multiplicative factor.
    public typealias Lambda = (Int) -> Double

    let lrLambdas: [Lambda]

    /// Creates the scheduler with one function for every group.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - lrLambda: The factor for an epoch.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` as torch raises; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public convenience init(
        _ optimizer: Optimizer, lrLambda: @escaping Lambda, lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        try self.init(
            optimizer, lrLambdas: Array(repeating: lrLambda, count: optimizer.paramGroups.count), lastEpoch: lastEpoch,
            loadOrderCheck: loadOrderCheck)
    }

    /// Creates the scheduler with one function per group.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - lrLambdas: One function per parameter group.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` "Expected N lr_lambdas, but got M" for a count that is not the
    ///   group count; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(_ optimizer: Optimizer, lrLambdas: [Lambda], lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error) throws {
        self.lrLambdas = try optimizer.onePerGroup(lrLambdas)
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        let current = try groupLRs()
        guard !isInitial else { return current }
        try requireSameCount(lrLambdas, current)
        return zip(lrLambdas, current).map { lambda, lr in lr * lambda(lastEpoch) }
    }

    override var trailingStateEntries: [StateEntry] { [.functions("lr_lambdas", count: lrLambdas.count)] }
}

extension Optimizer {
    /// The functions given one per group, or torch's error for another count.
    func onePerGroup<Function>(_ lrLambdas: [Function]) throws -> [Function] {
        guard lrLambdas.count == paramGroups.count else {
            throw OptimizerError(.invalidValue, "Expected \(paramGroups.count) lr_lambdas, but got \(lrLambdas.count)")
        }
        return lrLambdas
    }
}

extension StateEntry {
    /// torch's list of functions: `None` for each (a Swift closure has no attributes to save); a
    /// loaded list may only hold `None`s.
    static func functions(_ key: String, count: Int) -> StateEntry {
        StateEntry(key, .list(Array(repeating: .none, count: count))) { value, path in
            for (index, item) in try StateCoding.list(value, path).enumerated() {
                try StateCoding.function(item, StateCoding.join(path, String(index)))
            }
            return {}
        }
    }
}
