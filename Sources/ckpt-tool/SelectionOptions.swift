import ArgumentParser
import Checkpoint
import CheckpointTools

/// `--select GLOB`, the one way every command that reads a subset of a checkpoint is told which.
///
/// The older spellings `--filter` (inspect) and `--only` (convert) are hidden aliases, accepted by
/// every command. A selection that matches nothing is an error on stderr with exit 1 (2 for diff,
/// whose 1 means "different").
struct SelectionOptions: ParsableArguments {
    @Option(
        name: .customLong("select"),
        help: ArgumentHelp(
            "Only values whose key path matches GLOB; repeat for several (* and ? within a key, ** across keys, \\ before / * ? \\ for the character itself).",
            valueName: "glob"))
    var select: [String] = []

    @Option(name: .customLong("filter"), help: .hidden)
    var filter: [String] = []

    @Option(name: .customLong("only"), help: .hidden)
    var only: [String] = []

    /// Every pattern given, under any of its names.
    var patterns: [String] { select + filter + only }

    /// The selection, or nil when none was given (everything is selected).
    var glob: KeyGlob? {
        let patterns = patterns
        switch patterns.count {
        case 0: return nil
        case 1: return KeyGlob(patterns[0])
        default: return KeyGlob(anyOf: patterns)
        }
    }

    /// The error for a selection that matches nothing in `tree`, naming a few keys that are there.
    ///
    /// - Parameters:
    ///   - file: The checkpoint, as its absolute path.
    ///   - tree: What the file holds.
    ///   - what: What was looked for (`key path`, `tensor's key path`).
    func noMatch(in file: String, tree: StateValue, what: String = "key path") -> CheckpointError {
        let keys = tree.children.prefix(4).map { "'\($0.key.pathComponent)'" }
        let found = keys.isEmpty ? "a \(tree.pythonTypeName) with no keys" : "top-level keys " + keys.joined(separator: ", ") + (tree.children.count > 4 ? ", …" : "")
        return CheckpointError(
            .invalidArgument, "no \(what) matches --select '\(glob?.pattern ?? "")'", file: file, expected: "at least one match", found: found)
    }
}
