import Foundation

/// The FILE arguments of the commands that read checkpoints. Each goes through ``resolve(_:)``, the
/// one place that turns an argument into what the library opens, so every command reads inputs
/// the same way and the library's errors name absolute paths.
enum InputPath {
    /// The file an argument names.
    ///
    /// - Parameter argument: FILE as given on the command line.
    /// - Returns: Its absolute file URL.
    /// - Throws: Nothing yet; reading an input may need work that fails (a copy of standard input).
    static func resolve(_ argument: String) throws -> URL {
        URL(fileURLWithPath: absolute(argument))
    }

    /// A path made absolute against the working directory, for messages and for opening.
    ///
    /// Only leading `./` is dropped: `a/../b` stays as it is, since `a` may be a symlink (or
    /// missing), and then it is not `b`.
    ///
    /// - Parameter path: A path, absolute or relative.
    /// - Returns: The absolute path.
    static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        var relative = Substring(path)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2).drop { $0 == "/" } }
        let directory = FileManager.default.currentDirectoryPath
        guard !relative.isEmpty, relative != "." else { return directory }
        return (directory.hasSuffix("/") ? directory : directory + "/") + relative
    }
}
