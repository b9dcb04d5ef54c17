/// Values a command leaves for the process's exit to reclaim, all at once with its pages.
///
/// Freeing a large tree object by object is work nobody waits for: for the last file of an
/// inspect of a 64-rank DCP checkpoint (8,256 chunks, each with its arrays and storage entry) it
/// was about a thirtieth of the whole process's CPU. Only values a command holds until it ends
/// belong here; the memory is reclaimed when the process exits, so in-process callers (tests)
/// keep at most what they put here.
enum ReclaimedAtExit {
    nonisolated(unsafe) private static var kept: [Any] = []

    /// Keeps `value` alive until the process exits.
    ///
    /// - Parameter value: What the command no longer needs but would otherwise free on return.
    static func keep(_ value: Any) {
        kept.append(value)
    }
}
