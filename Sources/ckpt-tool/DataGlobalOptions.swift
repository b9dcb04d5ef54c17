import ArgumentParser
import Checkpoint

/// `--allow-data-globals` / `--allow-data-global NAME`: read numpy values, argparse.Namespace, paths,
/// datetimes and defaultdicts as plain values instead of placeholders (and, for commands that write,
/// write them back as read). Shared by every command that reads a checkpoint's tree.
struct DataGlobalOptions: ParsableArguments {
    @Flag(help: "Read every data global ckpt knows (numpy arrays and scalars, argparse.Namespace, pathlib paths, datetime, defaultdict) as a plain value; nothing is run.")
    var allowDataGlobals = false

    @Option(help: ArgumentHelp(
        "Read this one global as data (repeatable; the names `verify` lists, as torch's get_unsafe_globals_in_checkpoint does).",
        valueName: "module.name"))
    var allowDataGlobal: [String] = []

    /// What the flags allow.
    var dataGlobals: DataGlobals { allowDataGlobals ? .all : DataGlobals(allowDataGlobal) }

    func validate() throws {
        if let name = dataGlobals.unreadableNames.first {
            throw ValidationError(
                "--allow-data-global \(name): not a global ckpt can read as data (it never runs code); "
                    + "the globals it reads as data are: \(DataGlobals.readableNames.joined(separator: ", "))")
        }
    }
}
