import Foundation

/// What a finished child process left: its exit status and its stdout and stderr, interleaved.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var output: String

    /// Runs `executable` with `arguments` to completion.
    ///
    /// - Parameters:
    ///   - executable: The program.
    ///   - arguments: Its arguments.
    /// - Throws: When the process cannot start.
    public init(running executable: URL, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        status = process.terminationStatus
    }
}
