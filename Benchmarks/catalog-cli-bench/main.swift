// catalog-cli-bench: `ckpt-tool ls --json` and `ckpt-tool latest` on a catalog of many checkpoints,
// timed as whole processes (spawn to exit, output to /dev/null): best and median of 10 runs each.
//
// Usage: catalog-cli-bench CKPT-TOOL DIR [CHECKPOINTS]   (default 10,000; scripts/bench_catalog_cli.sh)
//
// DIR is filled once through CheckpointManager (tiny checkpoints, durable: false, two metrics each)
// unless its catalog already records that many; the target is < 50 ms for each command. The
// start-up alone (`--version`) is timed too, for reference.

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
    print(String(format: "filled %@ with %d checkpoints in %.1f s", directory.path, count - have, Date().timeIntervalSince(start)))
}

/// Milliseconds from spawning the tool to its exit.
func time(_ toolArguments: [String]) throws -> Double {
    var actions: posix_spawn_file_actions_t = .init()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    let argv = ([tool] + toolArguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var start = timespec(), end = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, tool, &actions, nil, argv, environ)
    guard spawned == 0 else { throw CocoaError(.fileReadNoPermission, userInfo: [NSLocalizedDescriptionKey: "cannot run \(tool): \(String(cString: strerror(spawned)))"]) }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    clock_gettime(CLOCK_MONOTONIC, &end)
    guard status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "\(tool) \(toolArguments) exited with status \(status)"]) }
    return Double(end.tv_sec - start.tv_sec) * 1000 + Double(end.tv_nsec - start.tv_nsec) / 1e6
}

do {
    try fill()
    print("ckpt-tool on \(count) checkpoints, whole process, 10 runs each (target < 50 ms):")
    // `--version` is the process's start-up alone (loading, Swift runtime, argument parsing).
    for command in [["ls", directory.path, "--json"], ["latest", directory.path], ["--version"]] {
        _ = try time(command)  // warm the page cache
        let times = try (0..<10).map { _ in try time(command) }.sorted()
        let name = command.joined(separator: " ").replacingOccurrences(of: directory.path, with: "DIR")
        print("  " + name.padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: "best %6.1f ms  median %6.1f ms", times[0], (times[4] + times[5]) / 2))
    }
} catch {
    FileHandle.standardError.write(Data("catalog-cli-bench: \(error)\n".utf8))
    exit(1)
}
