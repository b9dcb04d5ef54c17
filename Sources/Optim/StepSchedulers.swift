import Checkpoint
import Foundation
import OrderedCollections

/// Multiplies each group's learning rate by `gamma` every `stepSize` epochs
/// (`torch.optim.lr_scheduler.StepLR`).
public final class StepLR: LRScheduler {
    var stepSize: Int
    var gamma: PythonNumber

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - stepSize: The period of the decay, in epochs.
    ///   - gamma: The decay factor.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` as torch raises; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, stepSize: Int, gamma: Double = 0.1, lastEpoch: Int = -1, loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        self.stepSize = stepSize
        self.gamma = .float(gamma)
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        let current = try groupLRs()
        // `or` short-circuits: epoch 0 never divides (a step size of 0 fails from epoch 1, as in torch).
        if lastEpoch == 0 { return current }
        if try PythonArithmetic.modulo(lastEpoch, stepSize) != 0 { return current }
        return current.map { $0 * gamma.double }
    }

    public override func closedFormLR() throws -> [Double]? {
        let exponent = try PythonArithmetic.floorDivide(lastEpoch, stepSize)
        return baseLRs.map { $0 * pow(gamma.double, Double(exponent)) }
    }

    override var stateEntries: [StateEntry] {
        [.int("step_size", self, \.stepSize), .number("gamma", self, \.gamma)] + baseStateEntries
    }
}

/// Multiplies each group's learning rate by `gamma` at each milestone epoch, once per time the
/// milestone is listed (`torch.optim.lr_scheduler.MultiStepLR`).
///
/// The milestones are kept as torch keeps them, a `collections.Counter` of epoch to count in first-seen
/// order; the state dict holds one (a ``PickledObject`` of `collections.Counter`, which
/// `torch.load(weights_only=True)` accepts).
public final class MultiStepLR: LRScheduler {
    var milestones: OrderedDictionary<Int, Int>
    var gamma: PythonNumber

    /// Creates the scheduler.
    ///
    /// - Parameters:
    ///   - optimizer: The optimizer.
    ///   - milestones: The epochs at which the rate decays; a repeated epoch decays once per listing.
    ///   - gamma: The decay factor.
    ///   - lastEpoch: -1 to start; the epoch to resume from otherwise.
    ///   - loadOrderCheck: What to do if construction overwrites a loaded optimizer state's options.
    /// - Throws: ``OptimizerError`` as torch raises; ``LoadOrderError`` under ``LoadOrderCheck/error``.
    public init(
        _ optimizer: Optimizer, milestones: [Int], gamma: Double = 0.1, lastEpoch: Int = -1,
        loadOrderCheck: LoadOrderCheck = .error
    ) throws {
        var counts = OrderedDictionary<Int, Int>()
        for milestone in milestones { counts[milestone, default: 0] += 1 }
        self.milestones = counts
        self.gamma = .float(gamma)
        try super.init(optimizer: optimizer, lastEpoch: lastEpoch, loadOrderCheck: loadOrderCheck)
    }

    public override func getLR() throws -> [Double] {
        let current = try groupLRs()
        guard let count = milestones[lastEpoch] else { return current }
        return current.map { $0 * pow(gamma.double, Double(count)) }
    }

    public override func closedFormLR() throws -> [Double]? {
        // Counter.elements(): each milestone as often as its count (none for a count below 1), sorted.
        let elements = milestones.flatMap { milestone, count in Array(repeating: milestone, count: max(count, 0)) }.sorted()
        let exponent = PythonArithmetic.bisectRight(elements, lastEpoch)
        return baseLRs.map { $0 * pow(gamma.double, Double(exponent)) }
    }

    override var stateEntries: [StateEntry] {
        [.counter("milestones", self, \.milestones), .number("gamma", self, \.gamma)] + baseStateEntries
    }
}

extension StateEntry {
    /// A `collections.Counter` of ints: pickled as `Counter({...})`, read back from that or from a
    /// plain dict.
    static func counter<Root: AnyObject>(
        _ key: String, _ root: Root, _ keyPath: ReferenceWritableKeyPath<Root, OrderedDictionary<Int, Int>>
    ) -> StateEntry {
        field(key, root, keyPath, encode: { counts in
            let dict = StateDict(counts.map { (StateKey.int(Int64($0.key)), StateValue.int(Int64($0.value))) })
            return .object(PickledObject(module: "collections", name: "Counter", construction: .reduce, args: [.dict(dict)]))
        }, read: { value, path in
            var dict: StateDict
            switch value {
            case .dict(let plain):
                dict = plain
            case .object(let object) where object.qualifiedName == "collections.Counter" && object.construction == .reduce:
                switch object.args.first {
                case .dict(let counts)?: dict = counts
                case nil: dict = StateDict()
                case let other?: throw StateCoding.mismatch("a dict inside the Counter", other, StateCoding.join(path, "args/0"))
                }
            default:
                throw StateCoding.mismatch("a collections.Counter", value, path)
            }
            var counts = OrderedDictionary<Int, Int>()
            for (milestone, count) in dict {
                guard case .int(let epoch) = milestone else {
                    throw OptimizerError(.malformedStateDict, "expected int milestones, found str '\(milestone)'", path: path)
                }
                counts[Int(epoch)] = try StateCoding.int(count, StateCoding.join(path, String(epoch)))
            }
            return counts
        })
    }
}
