import Checkpoint
import Optim
import Testing

/// An optimizer written outside Optim whose checkpoints changed over time: older ones lack the
/// `nesterov` option and keep `step` as a Python int, as torch's SGD and Adam once did.
final class MomentumSGD: Optimizer {
    /// Refuse checkpoints with an int `step` instead of upgrading them.
    var rejectsIntSteps = false
    /// What the upgrade saw, in order.
    var upgradeLog: [String] = []

    init(_ params: [Parameter], lr: Double) throws {
        try super.init(
            groups: [ParamGroup(params: params)],
            defaults: ["lr": .value(.float(lr)), "momentum": .value(0.9), "nesterov": .value(false)])
    }

    override func initialState(for parameter: Parameter, in group: ParamGroup) throws -> StateValue? {
        [
            "step": .tensor(try Tensor(zeros: .float32, shape: [])),
            "momentum_buffer": .tensor(try Tensor(zeros: parameter.data.dtype, shape: parameter.data.shape)),
        ]
    }

    /// torch's `__setstate__`: `group.setdefault("nesterov", False)`, then a tensor `step`.
    override func upgradeLoadedState() throws {
        try super.upgradeLoadedState()
        for (index, group) in paramGroups.enumerated() where group["nesterov"] == nil {
            try setOption("nesterov", to: false, inGroup: index)
        }
        for parameter in paramGroups.flatMap(\.params) {
            guard case .dict(var entry)? = state(for: parameter) else {
                upgradeLog.append("no state")
                continue
            }
            guard case .int(let step)? = entry["step"] else { continue }
            if rejectsIntSteps { throw OptimizerError(.unsupported, "int steps are not accepted") }
            entry["step"] = .tensor(try Tensor([Float(step)], shape: []))
            try setState(.dict(entry), for: parameter)
            upgradeLog.append("step \(step)")
        }
    }
}

@Suite struct OptimizerSubclassTests {
    /// The optimizer's state dict as an older version wrote it: no `nesterov`, an int `step` for the
    /// first parameter and no state for the second.
    func oldStateDict(of optimizer: Optimizer) throws -> StateValue {
        guard case .dict(var root) = optimizer.stateDict(), case .dict(var state)? = root["state"],
            case .list(var groups)? = root["param_groups"], case .dict(var group)? = groups.first,
            case .dict(var entry)? = state[0]
        else { throw OptimizerError(.malformedStateDict, "not an optimizer state dict") }
        group.removeValue(forKey: "nesterov")
        groups[0] = .dict(group)
        entry["step"] = 3
        state[0] = .dict(entry)
        state.removeValue(forKey: 1)
        root["state"] = .dict(state)
        root["param_groups"] = .list(groups)
        return .dict(root)
    }

    @Test func upgradeRunsAfterInstallingAndBeforeFreshStateAndPostHooks() throws {
        let first = Parameter(try Tensor([Float(1), 2])), second = Parameter(try Tensor([Float(3)]))
        let optimizer = try MomentumSGD([first, second], lr: 0.1)
        let old = try oldStateDict(of: optimizer)
        var seenByPostHook: StateValue?
        optimizer.registerLoadStateDictPostHook { optimizer in seenByPostHook = optimizer.paramGroups[0]["nesterov"] }

        try optimizer.loadStateDict(old)

        #expect(optimizer.upgradeLog == ["step 3", "no state"], "the second parameter gets fresh state after the upgrade")
        #expect(seenByPostHook == false)
        #expect(optimizer.paramGroups[0].options.keys == ["lr", "momentum", "nesterov"], "the option is appended, as setdefault does")
        guard case .tensor(let step)? = optimizer.state(for: first)?["step"] else {
            Issue.record("step is not a tensor")
            return
        }
        #expect(step.dtype == .float32 && step.shape == [])
        #expect(try step.scalars(as: Float.self) == [3])
        #expect(optimizer.state(for: second)?["momentum_buffer"] != nil)
    }

    @Test func aFailedUpgradeLeavesTheOptimizerAsItWas() throws {
        let optimizer = try MomentumSGD([Parameter(try Tensor([Float(1), 2])), Parameter(try Tensor([Float(3)]))], lr: 0.1)
        let old = try oldStateDict(of: optimizer)
        try optimizer.setOption("lr", to: 0.5, inGroup: 0)
        let before = optimizer.stateDict()
        optimizer.rejectsIntSteps = true

        #expect(throws: OptimizerError(.unsupported, "int steps are not accepted")) { try optimizer.loadStateDict(old) }
        #expect(optimizer.stateDict() == before)
        #expect(optimizer.paramGroups[0]["lr"] == 0.5)
    }
}
