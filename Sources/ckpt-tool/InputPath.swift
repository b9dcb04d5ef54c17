import Checkpoint
import Foundation

/// A checkpoint argument: a path, or `-` for standard input. Every command that reads checkpoints
/// opens its inputs through ``url(_:)`` and names them through ``display(_:)``.
enum InputPath {
    /// The file to open for `argument`: `-` is standard input (a pipe is copied to a temp file
    /// first, since checkpoints are mapped), anything else a path made absolute from the working
    /// directory, as errors name it.
    ///
    /// - Parameter argument: The command-line argument.
    /// - Returns: The file's URL.
    /// - Throws: `CheckpointError` `.io` when standard input cannot be read.
    static func url(_ argument: String) throws -> URL {
        URL(fileURLWithPath: argument == "-" ? try StandardInputSpool.path() : absolute(argument))
    }

    /// How errors and reports name `argument`: `-` stays `-`, a path is absolute.
    static func display(_ argument: String) -> String {
        argument == "-" ? "-" : absolute(argument)
    }

    /// A path made absolute against the working directory (`-`, standard input, stays `-`).
    ///
    /// Only leading `./` is dropped: `a/../b` is kept as it is, since `a` may be a symlink (or
    /// missing), and then it is not `b`.
    ///
    /// - Parameter path: A path, absolute or relative.
    /// - Returns: The absolute path.
    static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/"), path != "-" else { return path }
        var relative = Substring(path)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2).drop { $0 == "/" } }
        let directory = FileManager.default.currentDirectoryPath
        guard !relative.isEmpty, relative != "." else { return directory }
        return (directory.hasSuffix("/") ? directory : directory + "/") + relative
    }
}
