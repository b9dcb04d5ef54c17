// catalog-cli-bench: `ckpt-tool ls --json` and `ckpt-tool latest` on a catalog of many checkpoints,
// timed as whole processes (spawn to exit, output to /dev/null): best and median of 10 runs each.
//
// Usage: catalog-cli-bench CKPT-TOOL DIR [CHECKPOINTS]   (default 10,000; scripts/bench_catalog_cli.sh)
//
// DIR is filled once through CheckpointManager (tiny checkpoints, durable: false, two metrics each)
// unless its catalog already records that many; the target is < 50 ms for each command. The
// start-up alone (`--version`) is timed too, for reference.

import BenchSupport
import Catalog
import Checkpoint
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write(Data("usage: catalog-cli-bench CKPT-TOOL DIR [CHECKPOINTS]\n".utf8))
    exit(64)
}
let tool = arguments[1]
let directory = URL(fileURLWithPath: arguments[2])
let count = arguments.count > 3 ? Int(arguments[3]) ?? 10_000 : 10_000

/// Saves `count` tiny checkpoints (steps 10, 20, ...) unless the catalog already has them.
func fill() throws {
    let manager = try CheckpointManager(directory: directory, options: .init(durable: false))
    defer { try? manager.close() }
    let have = try manager.all().count
    guard have < count else { return }
    let start = Date()
    let weight = try Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])
    for index in have..<count {
        let step = (index + 1) * 10
        let state: StateValue = ["model": ["w": .tensor(weight)], "step": .int(Int64(step))]
        try manager.save(step: step, state: state, metrics: ["loss": 1 / Double(index + 1), "accuracy": Double(index % 100) / 100])
    }
    line("filled the catalog", String(format: "%d checkpoints in %.1f s", count - have, Date().timeIntervalSince(start)))
}

/// Milliseconds from spawning the tool to its exit.
func time(_ toolArguments: [String]) throws -> Double {
    var actions: posix_spawn_file_actions_t = .init()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    let argv = ([tool] + toolArguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    let start = now()
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, tool, &actions, nil, argv, environ)
    guard spawned == 0 else { throw CocoaError(.fileReadNoPermission, userInfo: [NSLocalizedDescriptionKey: "cannot run \(tool): \(String(cString: strerror(spawned)))"]) }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    let end = now()
    guard status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "\(tool) \(toolArguments) exited with status \(status)"]) }
    return (end - start) * 1000
}

do {
    try fill()
    line("catalog", "\(count) checkpoints in \(directory.path)")
    // `--version` is the process's start-up alone (loading, Swift runtime, argument parsing).
    for (command, goal) in [(["ls", directory.path, "--json"], true), (["latest", directory.path], true), (["--version"], false)] {
        _ = try time(command)  // warm the page cache
        let times = try (0..<10).map { _ in try time(command) }
        let name = "ckpt-tool " + command.joined(separator: " ").replacingOccurrences(of: directory.path, with: "DIR") + ", best / median of 10"
        let value = String(format: "%.1f ms / %.1f ms", times.min()!, median(times))
        line(name, value, goal ? verdict(median(times) < 50, "median < 50 ms") : "")
    }
} catch {
    FileHandle.standardError.write(Data("catalog-cli-bench: \(error)\n".utf8))
    exit(1)
}
