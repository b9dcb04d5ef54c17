import Foundation
import Testing
import TestSupport

/// Runs the built `ckpt-tool` binary, which SwiftPM places next to the test bundle.
enum Tool {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("ckpt-tool")

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// torch's tiny training run (Samples/data): a model, an Adagrad optimizer and scalars.
    static let sample = fixtures.appendingPathComponent("../../Samples/data/tiny-run.pt").standardized.path

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the tool to completion; output goes through files, so large output cannot fill a pipe.
    ///
    /// - Parameters:
    ///   - arguments: Command-line arguments.
    ///   - environment: Variables to set on top of this process's environment.
    ///   - removing: Variables to remove.
    static func run(_ arguments: [String], environment: [String: String] = [:], removing: [String] = []) throws -> Result {
        try run(executable: binary, arguments, environment: environment, removing: removing)
    }

    static func run(executable: URL, _ arguments: [String], environment: [String: String] = [:], removing: [String] = []) throws -> Result {
        let directory = temporaryDirectory()
        let outURL = directory.appendingPathComponent("stdout")
        let errURL = directory.appendingPathComponent("stderr")
        try Data().write(to: outURL)
        try Data().write(to: errURL)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for name in removing { env.removeValue(forKey: name) }
        env.merge(environment) { $1 }
        process.environment = env
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        return Result(
            status: process.terminationStatus,
            stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    static func temporaryDirectory() -> URL { TemporaryDirectory.scoped(prefix: "ckpt-tool") }

    /// The JSON object `inspect --json` printed, with any other flags.
    static func inspectJSON(_ path: String, _ flags: [String] = []) throws -> [String: Any] {
        let result = try run(["inspect", path, "--json"] + flags)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return try #require(object as? [String: Any])
    }
}

extension Tool.Result {
    /// True when the process printed the way Swift reports a trap or crash.
    var looksLikeCrash: Bool {
        stderr.contains("Fatal error") || stderr.contains("Program crashed") || stderr.contains("Stack dump")
            || status > 128 || status < 0
    }
}
