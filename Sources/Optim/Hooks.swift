import Foundation
import OrderedCollections

/// Unregisters a hook: what `register_*_hook` returns in PyTorch (`RemovableHandle`).
public final class HookHandle {
    /// The hook's id, unique across all registries of the process (torch's `handle.id`).
    public let id: Int
    private let onRemove: () -> Void

    init(id: Int, onRemove: @escaping () -> Void) {
        self.id = id
        self.onRemove = onRemove
    }

    /// Unregisters the hook; removing twice does nothing.
    public func remove() { onRemove() }
}

/// What a step receives and step hooks may replace: torch's `(args, kwargs)` of `step()`.
public struct StepArguments {
    /// Reevaluates the model and returns the loss; nil for a plain `step()`.
    public var closure: (() throws -> Double)?

    /// Creates step arguments.
    ///
    /// - Parameter closure: The loss closure, or nil.
    public init(closure: (() throws -> Double)? = nil) { self.closure = closure }
}

/// Hands out hook ids from one process-wide counter, as torch's `RemovableHandle.next_id`.
enum HookIDs {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var next = 0

    static func make() -> Int {
        lock.lock()
        defer { lock.unlock() }
        next += 1
        return next
    }
}

/// An ordered set of hooks of one kind, run in registration order unless prepended.
final class HookRegistry<Hook> {
    private(set) var hooks: OrderedDictionary<Int, Hook> = [:]

    func add(_ hook: Hook, prepend: Bool = false) -> HookHandle {
        let id = HookIDs.make()
        if prepend {
            hooks.updateValue(hook, forKey: id, insertingAt: 0)
        } else {
            hooks[id] = hook
        }
        return HookHandle(id: id) { [weak self] in self?.hooks[id] = nil }
    }
}

/// Hooks every optimizer runs around its step, registered once for the whole process.
final class GlobalStepHooks: @unchecked Sendable {
    static let shared = GlobalStepHooks()

    private let lock = NSLock()
    private var preHooks: OrderedDictionary<Int, Optimizer.GlobalStepPreHook> = [:]
    private var postHooks: OrderedDictionary<Int, Optimizer.GlobalStepPostHook> = [:]

    private func locked<R>(_ body: () -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    func addPre(_ hook: @escaping Optimizer.GlobalStepPreHook) -> HookHandle {
        let id = HookIDs.make()
        locked { preHooks[id] = hook }
        return HookHandle(id: id) { [self] in locked { preHooks[id] = nil } }
    }

    func addPost(_ hook: @escaping Optimizer.GlobalStepPostHook) -> HookHandle {
        let id = HookIDs.make()
        locked { postHooks[id] = hook }
        return HookHandle(id: id) { [self] in locked { postHooks[id] = nil } }
    }

    /// Snapshots, so a hook may register or remove hooks while the list runs.
    var pre: [Optimizer.GlobalStepPreHook] { locked { Array(preHooks.values) } }
    var post: [Optimizer.GlobalStepPostHook] { locked { Array(postHooks.values) } }
}
