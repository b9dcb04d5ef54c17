import Foundation

/// What a finished child process left: its exit status and its stdout and stderr, interleaved.
public struct ProcessOutput: Sendable {
    /// The exit status, or the signal that ended the process (see ``signaled``).
    public var status: Int32
    /// True when a signal ended the process (a crash: SIGBUS, SIGSEGV, SIGXFSZ, ...).
    public var signaled: Bool
    public var output: String

    /// An executable of this package, built next to the test bundle (`fault-child`, `catalog-crash`).
    public static func builtExecutable(_ name: String) -> URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
    }

    /// Runs `executable` with `arguments` to completion.
    ///
    /// - Parameters:
    ///   - executable: The program.
    ///   - arguments: Its arguments.
    ///   - environment: Variables to set in the child on top of this process's.
    /// - Throws: When the process cannot start.
    public init(running executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        status = process.terminationStatus
        signaled = process.terminationReason == .uncaughtSignal
    }
}
