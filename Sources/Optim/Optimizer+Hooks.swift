import Checkpoint

extension Optimizer {
    /// Registers a hook that runs before ``stateDict()`` builds the dict.
    ///
    /// - Parameters:
    ///   - hook: Receives the optimizer.
    ///   - prepend: Run before the hooks already registered instead of after them.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public func registerStateDictPreHook(_ hook: @escaping StateDictPreHook, prepend: Bool = false) -> HookHandle {
        stateDictPreHooks.add(hook, prepend: prepend)
    }

    /// Registers a hook that runs after ``stateDict()`` builds the dict and may replace it.
    ///
    /// - Parameters:
    ///   - hook: Receives the optimizer and the dict; returns a replacement or nil.
    ///   - prepend: Run before the hooks already registered instead of after them.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public func registerStateDictPostHook(_ hook: @escaping StateDictPostHook, prepend: Bool = false) -> HookHandle {
        stateDictPostHooks.add(hook, prepend: prepend)
    }

    /// Registers a hook that runs before ``loadStateDict(_:)`` reads the dict and may replace it
    /// (to remap parameters by `param_names`, for instance).
    ///
    /// - Parameters:
    ///   - hook: Receives the optimizer and the dict; returns a replacement or nil.
    ///   - prepend: Run before the hooks already registered instead of after them.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public func registerLoadStateDictPreHook(_ hook: @escaping LoadStateDictPreHook, prepend: Bool = false) -> HookHandle {
        loadStateDictPreHooks.add(hook, prepend: prepend)
    }

    /// Registers a hook that runs after ``loadStateDict(_:)`` has installed the state.
    ///
    /// - Parameters:
    ///   - hook: Receives the optimizer.
    ///   - prepend: Run before the hooks already registered instead of after them.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public func registerLoadStateDictPostHook(_ hook: @escaping LoadStateDictPostHook, prepend: Bool = false) -> HookHandle {
        loadStateDictPostHooks.add(hook, prepend: prepend)
    }

    /// Registers a hook that runs before each step of this optimizer, after the global pre-hooks.
    ///
    /// - Parameter hook: Receives the optimizer and the step's arguments; returns replacements or nil.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public func registerStepPreHook(_ hook: @escaping StepPreHook) -> HookHandle {
        stepPreHooks.add(hook)
    }

    /// Registers a hook that runs after each step of this optimizer, before the global post-hooks.
    ///
    /// - Parameter hook: Receives the optimizer and the step's arguments.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public func registerStepPostHook(_ hook: @escaping StepPostHook) -> HookHandle {
        stepPostHooks.add(hook)
    }

    /// Registers a pre-hook for every optimizer's step (torch's `register_optimizer_step_pre_hook`).
    /// It runs before the optimizer's own pre-hooks.
    ///
    /// - Parameter hook: Receives the optimizer and the step's arguments; returns replacements or nil.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public static func registerGlobalStepPreHook(_ hook: @escaping GlobalStepPreHook) -> HookHandle {
        GlobalStepHooks.shared.addPre(hook)
    }

    /// Registers a post-hook for every optimizer's step (torch's `register_optimizer_step_post_hook`).
    /// It runs after the optimizer's own post-hooks.
    ///
    /// - Parameter hook: Receives the optimizer and the step's arguments.
    /// - Returns: A handle whose ``HookHandle/remove()`` unregisters the hook.
    @discardableResult
    public static func registerGlobalStepPostHook(_ hook: @escaping GlobalStepPostHook) -> HookHandle {
        GlobalStepHooks.shared.addPost(hook)
    }
}
