import Checkpoint
import Foundation
import Testing
@testable import Optim

/// Collects labels from hooks (global hooks are `@Sendable`, so the log is locked).
final class HookLog: @unchecked Sendable {
    private let lock = NSLock()
    private var labels: [String] = []

    func append(_ label: String) {
        lock.lock()
        labels.append(label)
        lock.unlock()
    }

    var entries: [String] {
        lock.lock()
        defer { lock.unlock() }
        return labels
    }
}

@Suite struct HookTests {
    /// The program of `hooks()` in make_optim_fixtures.py; torch's log must come out the same.
    @Test func hookOrderMatchesTorch() throws {
        let url = OptimFixtures.directory.appendingPathComponent("hooks.json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        let expected = try #require(root?["log"] as? [String])

        let log = HookLog()
        let parameter = try floatParameter([0, 0])
        let optimizer = try Adagrad([parameter])
        // Global hooks fire for every optimizer in the process (tests run concurrently), so they
        // log only for this one.
        let target = ObjectIdentifier(optimizer)
        let globalPre = Optimizer.registerGlobalStepPreHook { opt, _ in
            if ObjectIdentifier(opt) == target { log.append("global_pre") }
            return nil
        }
        let globalPost = Optimizer.registerGlobalStepPostHook { opt, _ in
            if ObjectIdentifier(opt) == target { log.append("global_post") }
        }
        optimizer.registerStepPreHook { _, _ in log.append("pre1"); return nil }
        optimizer.registerStepPreHook { _, _ in log.append("pre2"); return nil }
        optimizer.registerStepPostHook { _, _ in log.append("post1") }
        optimizer.registerStepPostHook { _, _ in log.append("post2") }
        parameter.grad = .dense(try Tensor([Float(1), 1]))
        let loss = try optimizer.step { log.append("closure"); return 1.5 }
        log.append("loss=\(loss.map { "\($0)" } ?? "None")")
        globalPre.remove()
        globalPost.remove()
        optimizer.registerStateDictPreHook { _ in log.append("sd_pre_a") }
        optimizer.registerStateDictPreHook({ _ in log.append("sd_pre_b") }, prepend: true)
        optimizer.registerStateDictPostHook { _, _ in log.append("sd_post_a"); return nil }
        optimizer.registerStateDictPostHook({ _, _ in log.append("sd_post_b"); return nil }, prepend: true)
        let stateDict = optimizer.stateDict()
        optimizer.registerLoadStateDictPreHook { _, _ in log.append("load_pre_a"); return nil }
        optimizer.registerLoadStateDictPreHook({ _, _ in log.append("load_pre_b"); return nil }, prepend: true)
        optimizer.registerLoadStateDictPostHook { _ in log.append("load_post_a") }
        let handle = optimizer.registerLoadStateDictPostHook({ _ in log.append("load_post_b") }, prepend: true)
        try optimizer.loadStateDict(stateDict)
        handle.remove()
        try optimizer.loadStateDict(stateDict)
        #expect(log.entries == expected)
    }

    @Test func stepPreHookMayReplaceTheClosure() throws {
        let parameter = try floatParameter([1])
        let optimizer = try Adagrad([parameter])
        optimizer.registerStepPreHook { _, _ in StepArguments(closure: { 42 }) }
        #expect(try optimizer.step(closure: { 1 }) == 42)
        let handle = optimizer.registerStepPreHook { _, _ in StepArguments(closure: nil) }
        #expect(try optimizer.step(closure: { 1 }) == nil)
        handle.remove()
        #expect(try optimizer.step(closure: { 1 }) == 42)
    }

    @Test func stateDictPostHookMayReplaceTheDict() throws {
        let optimizer = try Adagrad([floatParameter([1])])
        let handle = optimizer.registerStateDictPostHook { _, _ in .dict(["replaced": .bool(true)]) }
        #expect(keys(optimizer.stateDict()) == ["replaced"])
        handle.remove()
        #expect(keys(optimizer.stateDict()) == ["state", "param_groups"])
    }

    @Test func loadStateDictPreHookMayReplaceTheDict() throws {
        let parameter = try floatParameter([1, 2])
        let source = try Adagrad([parameter], lr: 0.5)
        let target = try Adagrad([floatParameter([3, 4])], lr: 0.1)
        // The hook substitutes the source's dict for an unusable one, as a remapping hook would.
        target.registerLoadStateDictPreHook { _, _ in source.stateDict() }
        try target.loadStateDict(.none)
        #expect(target.paramGroups[0]["lr"] == .float(0.5))
    }

    @Test func removingTwiceAndHookErrorsPropagate() throws {
        struct Stop: Error {}
        let optimizer = try Adagrad([floatParameter([1])])
        let handle = optimizer.registerStepPostHook { _, _ in throw Stop() }
        #expect(throws: Stop.self) { try optimizer.step() }
        handle.remove()
        handle.remove()
        try optimizer.step()
    }
}
