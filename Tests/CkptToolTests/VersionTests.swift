import Foundation
import Testing

@Test func toolPrintsItsVersion() throws {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("ckpt-tool")
    let process = Process()
    process.executableURL = binary
    process.arguments = ["--version"]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    process.waitUntilExit()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(process.terminationStatus == 0)
    #expect(output.contains("0.1.0"))
}

/// A script that lost its arguments must not look as if it succeeded.
@Test func noArgumentsPrintsHelpAndIsAUsageError() throws {
    let result = try Tool.run([])
    #expect(result.status == 64)
    #expect(result.stdout.isEmpty)
    #expect(result.stderr.contains("USAGE: ckpt-tool <subcommand>"))
    #expect(result.stderr.contains("SUBCOMMANDS:"))
}
