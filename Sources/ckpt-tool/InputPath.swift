import Checkpoint
import Foundation

/// A checkpoint argument: a path, or `-` for standard input.
enum InputPath {
    /// The file to open for `argument`: `-` is standard input (a pipe is copied to a temp file
    /// first, since checkpoints are mapped), anything else a path made absolute from the working
    /// directory, as errors name it.
    ///
    /// - Parameter argument: The command-line argument.
    /// - Returns: The file's URL.
    /// - Throws: `CheckpointError` `.io` when standard input cannot be read.
    static func url(_ argument: String) throws -> URL {
        URL(fileURLWithPath: argument == "-" ? try StandardInputSpool.path() : argument).standardizedFileURL
    }

    /// How errors and reports name `argument`: `-` stays `-`, a path is absolute.
    static func display(_ argument: String) -> String {
        argument == "-" ? "-" : URL(fileURLWithPath: argument).standardizedFileURL.path
    }
}
