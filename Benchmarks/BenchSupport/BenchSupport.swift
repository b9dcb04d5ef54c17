// What the I/O benchmarks share: where their files go, a monotonic clock, medians, memory that
// every timed save finds in the same state, and the one-line-per-figure output.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A new folder for a benchmark's files, `<name>-<pid>`, under the first argument or
/// CKPT_BENCH_DIR (to point the durable-save figures at a particular disk, a slow one included),
/// else the temporary directory. The caller removes it.
public func benchDirectory(_ name: String) throws -> URL {
    let base = CommandLine.arguments.dropFirst().first ?? ProcessInfo.processInfo.environment["CKPT_BENCH_DIR"]
    let directory = (base.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? FileManager.default.temporaryDirectory)
        .appendingPathComponent("\(name)-\(getpid())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

/// Seconds on the monotonic clock.
public func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

public func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// One figure: its name padded to `width`, the value, and a verdict if any.
public func line(_ name: String, _ value: String, _ verdict: String = "", width: Int = 52) {
    print(name.padding(toLength: width, withPad: " ", startingAt: 0) + value + (verdict.isEmpty ? "" : "  " + verdict))
}

public func verdict(_ ok: Bool, _ goal: String) -> String { (ok ? "PASS" : "FAIL") + " (goal \(goal))" }

/// Uses and frees as much memory as a save writes, in 2 MiB pages, so that the baseline and the save
/// start with the same memory at hand. Copying into the page cache costs several times more in
/// memory the guest has not used in the last seconds: on a VM that hands free memory back to the
/// host (virtio-balloon free page reporting, of free blocks of 2 MiB and up), each such page faults
/// in the host first — 1.5 s per GiB against 0.3 s measured here. The page cache takes such blocks
/// for its large folios. Deleting plain.bin just before the baseline gave it 1 GiB of freshly freed
/// blocks, while the save got blocks freed seconds before: a difference in the machine, not in how
/// either writes (on this VM the durable save measured 57–86% of the baseline that way, 125–137%
/// once both had the same; the save without fsync 0.24x of a plain write, and 1.2x).
public func recycleMemory(_ bytes: Int) {
    #if os(Linux)
    guard let scratch = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), scratch != MAP_FAILED
    else { return }
    _ = madvise(scratch, bytes, MADV_HUGEPAGE)
    memset(scratch, 1, bytes)
    munmap(scratch, bytes)
    #endif
}
