// stats-bench: `ckpt-tool stats` and `ckpt-tool diff` against plain reading, on large checkpoints.
//
// Usage: stats-bench [PATH] [GiB]   (default /tmp/ckpt-stats-bench.ckpt, 1 GiB; written once if missing,
//                                    with PATH.diff-b.ckpt: every element changed by about 1e-6 relative)
//
// reading = Checkpoint.load + StateValue.verifyChecksums() (every CRC-32, all cores)
// stats   = Checkpoint.load + TensorStatistics.compute over every tensor (CRC-checked as read)
// diff    = loading both files + StateDiff.compare (CRC-checked as compared), against reading both
// All run warm (the files are in the page cache), alternating, five times; the medians are compared.
// The statistics pass alone (on a tree whose CRCs were already checked) is printed too.

import Checkpoint
import CheckpointTools
import Dispatch
import Foundation

let arguments = CommandLine.arguments
let path = arguments.count > 1 ? arguments[1] : "/tmp/ckpt-stats-bench.ckpt"
let gibibytes = arguments.count > 2 ? Double(arguments[2]) ?? 1 : 1
let url = URL(fileURLWithPath: path)

/// 1 GiB as 60 float32 tensors of 4 Mi elements and 8 bfloat16 tensors of 2 Mi: a model's mix of sizes.
func writeCheckpoint() throws {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    let scale = gibibytes
    var items: [(String, StateValue)] = []
    for index in 0..<60 {
        let count = Int(Double(4 << 20) * scale)
        let values = (0..<count).map { _ in Float(Int64(next() % 2_000_001) - 1_000_000) * 1e-6 }
        items.append(("layer.\(index).weight", .tensor(try Tensor(values))))
    }
    for index in 0..<8 {
        let count = Int(Double(2 << 20) * scale)
        let values = (0..<count).map { _ in BFloat16(Float(Int64(next() % 2001) - 1000) * 1e-3) }
        items.append(("embed.\(index).weight", .tensor(try Tensor(values))))
    }
    var dict = StateDict()
    for (key, value) in items { dict[.string(key)] = value }
    try StateValue.dict(dict).write(to: url, options: SaveOptions(durable: false))
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// The same tensors with every element scaled by 1 + about 1e-6 (closer than diff's default rtol,
/// but no byte equal): what an optimizer step leaves, and the diff kernels' full work.
func writeChangedCopy(to copy: URL) throws {
    var state: UInt64 = 0x2545_F491_4F6C_DD1D
    let tree = try StateValue(contentsOf: url)
    var dict = StateDict()
    try tree.forEachTensor { path, tensor in
        let values = try tensor.doubleValues().map { value -> Double in
            state = state &* 6_364_136_223_846_793_005 &+ 1
            return value * (1 + Double(Int64(state >> 44) - (1 << 19)) * 2e-12)
        }
        dict[path[0]] = .tensor(try Tensor(values).cast(to: tensor.dtype))
    }
    try StateValue.dict(dict).write(to: copy, options: SaveOptions(durable: false))
}

if !FileManager.default.fileExists(atPath: path) {
    print("writing \(path) ...")
    try writeCheckpoint()
}
let copy = URL(fileURLWithPath: path + ".diff-b.ckpt")
if !FileManager.default.fileExists(atPath: copy.path) {
    print("writing \(copy.path) ...")
    try writeChangedCopy(to: copy)
}
let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
print("file: \(path), \(size) bytes (\(String(format: "%.2f", Double(size) / Double(1 << 30))) GiB), \(ProcessInfo.processInfo.activeProcessorCount) cores")

// Warm the page cache so both measurements start from the same state.
_ = try seconds { try StateValue(contentsOf: url).verifyChecksums() }

var reads: [Double] = []
var stats: [Double] = []
var passes: [Double] = []
var checksum = 0.0
for _ in 0..<5 {
    reads.append(try seconds { try StateValue(contentsOf: url).verifyChecksums() })
    stats.append(try seconds {
        let tree = try StateValue(contentsOf: url)
        let results = try TensorStatistics.compute(tree.tensors(matching: nil).map(\.tensor))
        checksum += results.reduce(0) { $0 + ($1.mean ?? 0) }
    })
    let verified = try StateValue(contentsOf: url)
    try verified.verifyChecksums()
    let tensors = verified.tensors(matching: nil).map(\.tensor)
    passes.append(try seconds { checksum += try TensorStatistics.compute(tensors).reduce(0) { $0 + ($1.mean ?? 0) } })
}
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
let read = median(reads), stat = median(stats)
print(String(format: "reading (load + verifyChecksums): median %.3f s  (%.2f GB/s)  runs %@", read, Double(size) / read / 1e9,
             reads.map { String(format: "%.3f", $0) }.joined(separator: " ")))
print(String(format: "stats   (load + TensorStatistics): median %.3f s  (%.2f GB/s)  runs %@", stat, Double(size) / stat / 1e9,
             stats.map { String(format: "%.3f", $0) }.joined(separator: " ")))
print(String(format: "statistics pass alone (CRCs already checked): median %.3f s  (%.2f GB/s)", median(passes), Double(size) / median(passes) / 1e9))
for variant in TensorStatistics.InstructionSet.allCases {
    TensorStatistics.limitInstructionSet(to: variant)
    let verified = try StateValue(contentsOf: url)
    try verified.verifyChecksums()
    let tensors = verified.tensors(matching: nil).map(\.tensor)
    let times = try (0..<3).map { _ in try seconds { checksum += try TensorStatistics.compute(tensors).reduce(0) { $0 + ($1.mean ?? 0) } } }
    print(String(format: "  pass with at most %@: median %.3f s", "\(variant)", median(times)))
}
TensorStatistics.limitInstructionSet(to: nil)
print(String(format: "ratio stats / reading: %.2f  (goal ≤ 2)   [mean checksum %.6g]", stat / read, checksum))

// diff of the file against its changed copy, against reading both.
_ = try seconds { try StateValue(contentsOf: copy).verifyChecksums() }
var readingBoth: [Double] = []
var diffs: [Double] = []
var verdict = ""
for _ in 0..<5 {
    readingBoth.append(try seconds {
        try StateValue(contentsOf: url).verifyChecksums()
        try StateValue(contentsOf: copy).verifyChecksums()
    })
    diffs.append(try seconds {
        let diff = try StateDiff.compare(StateValue(contentsOf: url), StateValue(contentsOf: copy))
        verdict = "\(diff.tensorComparisons.filter(\.isClose).count) of \(diff.tensorComparisons.count) tensors close"
    })
}
let readBoth = median(readingBoth), diffTime = median(diffs)
print(String(format: "reading both (load + verifyChecksums): median %.3f s  runs %@", readBoth,
             readingBoth.map { String(format: "%.3f", $0) }.joined(separator: " ")))
print(String(format: "diff (load both + StateDiff.compare): median %.3f s  runs %@  [%@]", diffTime,
             diffs.map { String(format: "%.3f", $0) }.joined(separator: " "), verdict))
print(String(format: "ratio diff / reading both: %.2f  (goal ≤ 1.5)", diffTime / readBoth))
