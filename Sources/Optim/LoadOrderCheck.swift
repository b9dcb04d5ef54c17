import Checkpoint

/// What a scheduler does when building it overwrites options that a loaded optimizer state set.
///
/// torch's docs ask for `optimizer.load_state_dict` only after the schedulers are built, "as calling
/// it beforehand will overwrite the loaded learning rates", and torch overwrites them silently. ckpt
/// notices: ``Optimizer/loadStateDict(_:)`` remembers the options it loaded until the optimizer's
/// next step, and a scheduler built in between compares those options before and after its
/// construction. Every one it changed (`lr`, `initial_lr`, a cycled `momentum`, ...) is reported.
/// A scheduler built before the load, or after a step, reports nothing; so does one whose
/// construction leaves the loaded options as they were (a `CosineAnnealingLR` whose initial step
/// keeps the current `lr`).
public enum LoadOrderCheck {
    /// Throw ``LoadOrderError``, after putting back every group option the construction changed.
    case error
    /// Keep torch's result and add the report to the scheduler's ``LRScheduler/warnings``.
    case warn
    /// Keep torch's result and say nothing (torch's behaviour).
    case ignore
    /// Keep torch's result and pass the report to a handler (a logger, a metrics counter).
    case report((LoadOrderError) -> Void)
}

/// A scheduler was built after the optimizer's state was loaded, and its construction overwrote
/// loaded options: the run would not continue as the saved one.
public struct LoadOrderError: Error, CustomStringConvertible {
    /// One loaded option the construction changed.
    public struct Overwrite: Equatable, Sendable {
        /// The parameter group's index.
        public var group: Int
        /// The option (`lr`, `initial_lr`, ...).
        public var key: String
        /// The value the optimizer's state had loaded (an earlier scheduler may have changed it
        /// since, and been reported then).
        public var loaded: StateValue
        /// The value after construction; nil if construction removed the option.
        public var current: StateValue?
    }

    /// The scheduler's type, as torch names it (`LinearLR`).
    public var scheduler: String
    /// Every option changed, by group then by the option's position.
    public var overwrites: [Overwrite]

    /// `LinearLR was built after optimizer.loadStateDict and overwrote the loaded param_groups/0/lr
    /// (0.00027 -> 2.7e-05); build the schedulers first, then load the optimizer's state`
    public var description: String {
        let changes = overwrites.map { change in
            "param_groups/\(change.group)/\(change.key) (\(Self.text(change.loaded)) -> \(change.current.map(Self.text) ?? "removed"))"
        }
        return "\(scheduler) was built after optimizer.loadStateDict and overwrote the loaded "
            + changes.joined(separator: ", ")
            + "; build the schedulers first, then load the optimizer's state (torch: call optimizer.load_state_dict "
            + "after initializing the LRScheduler)"
    }

    private static func text(_ value: StateValue) -> String {
        switch value {
        case .float(let number): return "\(number)"
        case .int(let number): return "\(number)"
        default: return value.pythonTypeName
        }
    }
}

extension LRScheduler {
    /// Reports the options a construction overwrote in a loaded optimizer state, as `check` says.
    ///
    /// - Parameter before: The groups' options when construction began.
    func checkLoadOrder(before: [OrderedMap<String, StateValue>], _ check: LoadOrderCheck) throws {
        if case .ignore = check { return }
        guard let loaded = optimizer.loadedOptions else { return }
        var overwrites: [LoadOrderError.Overwrite] = []
        for (index, group) in optimizer.paramGroups.enumerated() where index < loaded.count && index < before.count {
            for (key, value) in loaded[index] where before[index][key] != group.options[key] {
                overwrites.append(.init(group: index, key: key, loaded: value, current: group.options[key]))
            }
        }
        guard !overwrites.isEmpty else { return }
        let report = LoadOrderError(scheduler: "\(type(of: self))", overwrites: overwrites)
        switch check {
        case .error:
            for index in before.indices where index < optimizer.paramGroups.count {
                optimizer.paramGroups[index].options = before[index]
            }
            throw report
        case .warn: warnings.append(report.description)
        case .report(let handler): handler(report)
        case .ignore: break
        }
    }
}
