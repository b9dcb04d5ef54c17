import Checkpoint
import Foundation
import Testing

// Problem 7: the stats bar started at "50% 4.0 GiB" and ended at "88% 7.1 GiB", with no total or
// ETA, and diff and convert showed nothing. Each long command now draws one bar over the real
// total, only on a terminal. `script` gives the tool a pseudo-terminal; CKPT_PROGRESS_AFTER=0
// draws from the first byte instead of after half a second.

#if os(Linux)
private let scriptAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/script")
#else
private let scriptAvailable = false  // BSD script takes other arguments
#endif

/// Runs the tool on a pseudo-terminal; returns everything it wrote there (stdout and stderr).
private func runOnTerminal(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let command = ([Tool.binary.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    let result = try Tool.run(
        executable: URL(fileURLWithPath: "/usr/bin/script"), ["-qec", "stty cols 120; " + command, "/dev/null"],
        environment: ["CKPT_PROGRESS_AFTER": "0", "TERM": "xterm"])
    return (result.status, result.stdout)
}

/// The bar lines drawn for `label`, as `(percent, text)`.
private func bars(_ output: String, label: String) -> [(percent: Int, text: String)] {
    output.split(separator: "\r").compactMap { line in
        guard line.hasPrefix(label + "  ") else { return nil }
        let percent = line.split(separator: " ").first { $0.hasSuffix("%") }.flatMap { Int($0.dropLast()) }
        return percent.map { ($0, String(line)) }
    }
}

/// A checkpoint of 3 MiB + 1 MiB in two storages.
private func checkpoint(_ name: String) throws -> String {
    let path = Tool.temporaryDirectory().appendingPathComponent(name).path
    let tree = StateValue.dict([
        "a": .tensor(try Tensor([Float](repeating: 1, count: 3 << 18), shape: [3 << 18])),
        "b": .tensor(try Tensor([Float](repeating: 2, count: 1 << 18), shape: [1 << 18])),
    ])
    try tree.write(to: URL(fileURLWithPath: path))
    return path
}

@Suite("ckpt-tool progress bar", .enabled(if: scriptAvailable, "needs util-linux script for a pseudo-terminal: the bar is NOT checked"))
struct ProgressTests {
    @Test(arguments: [
        // stats reads the bytes twice: CRC check, then statistics.
        (["stats", "IN"], "stats", "8.0 MiB"),
        (["convert", "IN", "OUT.safetensors"], "convert", "4.0 MiB"),
        // verify checks every entry's CRC-32: the tensor data plus the small entries (pickle,
        // manifest, version records).
        (["verify", "IN"], "verify", "4.0 MiB"),
        // diff reads both files' tensor bytes.
        (["diff", "IN", "IN"], "diff", "8.0 MiB"),
        (["convert", "IN", "OUT.pt"], "convert", "4.0 MiB"),
        (["rename", "IN", "OUT.ckpt", "--map", "MAP"], "rename", "4.0 MiB"),
    ])
    func oneBarOverTheRealTotal(arguments: [String], label: String, total: String) throws {
        let input = try checkpoint("in.ckpt")
        let directory = Tool.temporaryDirectory()
        let map = directory.appendingPathComponent("map.json")
        try Data(#"{"rules": [{"exact": "a", "to": "c"}]}"#.utf8).write(to: map)
        let resolved = arguments.map { argument -> String in
            if argument == "IN" { return input }
            if argument == "MAP" { return map.path }
            if argument.hasPrefix("OUT") { return directory.appendingPathComponent(argument).path }
            return argument
        }
        let (status, output) = try runOnTerminal(resolved)
        #expect(status == 0, "\(output)")
        let drawn = bars(output, label: label)
        #expect(!drawn.isEmpty, "no bar in \(output.debugDescription)")
        #expect(drawn.allSatisfy { $0.text.contains(" of \(total)") }, "\(drawn.map(\.text))")
        #expect(drawn.last?.percent == 100, "\(drawn.map(\.text))")
        #expect(zip(drawn, drawn.dropFirst()).allSatisfy { $0.percent <= $1.percent && $1.percent <= 100 })
        #expect(drawn.contains { $0.text.contains("/s") }, "no rate in \(drawn.map(\.text))")
        // Erased before the command's own output.
        #expect(output.contains("\r\u{1B}[K"))
    }

    @Test func noBarWithoutATerminal() throws {
        let input = try checkpoint("in.ckpt")
        let result = try Tool.run(["stats", input], environment: ["CKPT_PROGRESS_AFTER": "0"])
        #expect(result.status == 0)
        #expect(!result.stderr.contains("%") && !result.stderr.contains("\r"), "\(result.stderr.debugDescription)")
        let dumb = try Tool.run(
            executable: URL(fileURLWithPath: "/usr/bin/script"), ["-qec", "'\(Tool.binary.path)' stats '\(input)'", "/dev/null"],
            environment: ["CKPT_PROGRESS_AFTER": "0", "TERM": "dumb"])
        #expect(bars(dumb.stdout, label: "stats").isEmpty)
    }
}
