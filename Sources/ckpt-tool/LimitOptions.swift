import ArgumentParser
import Checkpoint

/// `--limit NAME=VALUE`: raise (or lower) one of the resource caps a file is read with
/// (``ResourceLimits``), for a file you trust. Shared by every command that reads a checkpoint.
struct LimitOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Set a resource cap for reading (repeatable), e.g. maximumMemoEntries=50000000 or maximumPickleBytes=1G; "
            + "VALUE takes K, M, G, T (powers of 1024) or 'unlimited'. A count cap's VALUE is its base, which grows "
            + "with the checkpoint's size. Names: "
            + ResourceLimits.Name.allCases.map(\.rawValue).joined(separator: ", ") + ".",
        valueName: "NAME=VALUE"))
    var limit: [String] = []

    /// The caps, the defaults with each `--limit` applied.
    var limits: ResourceLimits {
        var limits = ResourceLimits.default
        for setting in limit {
            if let (name, value) = try? Self.parse(setting) { limits[name] = value }
        }
        return limits
    }

    func validate() throws {
        for setting in limit { _ = try Self.parse(setting) }
        do {
            try limits.validate(file: nil)
        } catch let error as CheckpointError {
            throw ValidationError("--limit: \(error.message) (\(error.expected ?? ""), found \(error.found ?? ""))")
        }
    }

    private static let suffixes: [Character: Int] = ["K": 10, "M": 20, "G": 30, "T": 40]

    /// `NAME=VALUE` as a cap and its value; `unlimited` is `Int.max` (the ceiling for nesting).
    private static func parse(_ setting: String) throws -> (ResourceLimits.Name, Int) {
        let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let name = ResourceLimits.Name(rawValue: parts[0]) else {
            throw ValidationError(
                "--limit \(setting): expected NAME=VALUE with NAME one of "
                    + ResourceLimits.Name.allCases.map(\.rawValue).joined(separator: ", "))
        }
        var text = parts[1]
        if text == "unlimited" {
            return (name, name == .maximumNestingDepth ? ResourceLimits.nestingDepthCeiling : .max)
        }
        var shift = 0
        if let last = text.last, let bits = suffixes[Character(last.uppercased())] {
            shift = bits
            text.removeLast()
        }
        guard let number = Int(text), number >= 0, number <= Int.max >> shift else {
            throw ValidationError("--limit \(setting): VALUE must be a non-negative integer, optionally with K, M, G or T, or 'unlimited'")
        }
        return (name, number << shift)
    }
}
