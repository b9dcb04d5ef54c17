import Foundation

/// The FILE arguments of the commands that read checkpoints. Each goes through ``resolve(_:)``, the
/// one place that turns an argument into what the library opens, so every command reads inputs
/// the same way and the library's errors name absolute paths.
enum InputPath {
    /// The file an argument names.
    ///
    /// - Parameter argument: FILE as given on the command line.
    /// - Returns: An absolute, standardized file URL (`./a/../b.pt` is `$PWD/b.pt`).
    /// - Throws: Nothing yet; reading an input may need work that fails (a copy of standard input).
    static func resolve(_ argument: String) throws -> URL {
        URL(fileURLWithPath: absolute(argument))
    }

    /// A path made absolute against the working directory and standardized, for messages.
    ///
    /// - Parameter path: A path, absolute or relative.
    /// - Returns: The absolute path.
    static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}
