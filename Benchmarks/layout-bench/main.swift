// Checkpoints at scale: conversions between one torch.save file, a DCP checkpoint of 4 ranks and
// Hugging Face safetensors shards, each a `ckpt-tool convert` process whose wall time and peak
// resident memory are measured (peak against the model's largest tensor), torch's own
// torch_save_to_dcp / dcp_to_torch_save in the same run for the ratios, and `ckpt-tool inspect`
// of 64-shard checkpoints as whole processes.
//
// CKPT_LAYOUT_BENCH_GIB sets the model size (default 1; the figures in docs/FORMATS-AT-SCALE.md
// are for 4). Needs ckpt-tool built in the same configuration (`make bench` builds it).
// CKPT_LAYOUT_BENCH_INSPECT_ONLY=1 runs only the inspect rows (no torch conversions, no ckpt ones).
import BenchSupport
import Checkpoint
import Foundation
#if canImport(Glibc)
import Glibc
#endif

let environment = ProcessInfo.processInfo.environment
let gib = Double(environment["CKPT_LAYOUT_BENCH_GIB"] ?? "1") ?? 1
let total = Int(gib * 1_073_741_824)

/// A model of `total` bytes: an embedding of an eighth of it (the largest tensor), 64 equal
/// float32 matrices of 1024 columns, and a small bias per matrix.
func model(total: Int) throws -> (StateValue, largest: Int) {
    let columns = 1024
    let embeddingRows = total / 8 / (columns * 4)
    let rows = (total - embeddingRows * columns * 4) / 64 / (columns * 4)
    var items: [(String, StateValue)] = []
    func matrix(_ rows: Int, _ seed: UInt32) throws -> Tensor {
        let storage = Storage(byteCount: rows * columns * 4)
        try storage.withUnsafeMutableBytes { bytes in
            let words = bytes.bindMemory(to: UInt32.self)
            for index in words.indices { words[index] = UInt32(truncatingIfNeeded: index) &* 2_654_435_761 &+ seed }
        }
        return try Tensor(storage: storage, dtype: .float32, shape: [rows, columns])
    }
    items.append(("embed.weight", .tensor(try matrix(embeddingRows, 1))))
    for layer in 0..<64 {
        items.append(("layers.\(layer).weight", .tensor(try matrix(rows, UInt32(layer + 2)))))
        items.append(("layers.\(layer).bias", .tensor(try Tensor([Float](repeating: Float(layer), count: columns)))))
    }
    return (.dict(StateDict(items.map { (StateKey.string($0.0), $0.1) })), embeddingRows * columns * 4)
}

// The model is made by a child (this program again): a process that held it would pass its peak
// memory on to every child it spawns (posix_spawn shares the address space until exec, and the
// kernel keeps the larger high-water mark).
if let target = environment["CKPT_LAYOUT_BENCH_MAKE_MODEL"] {
    let (tree, largest) = try model(total: total)
    try tree.write(to: URL(fileURLWithPath: target), options: SaveOptions(durable: false))
    print(largest)
    exit(0)
}
let directory = try benchDirectory("layout-bench")
defer { try? FileManager.default.removeItem(at: directory) }
let tool = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ckpt-tool").path
func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

/// Runs a child to completion: its wall time and peak resident memory (wait4's ru_maxrss).
func measure(_ executable: String, _ arguments: [String], quiet: Bool = true) -> (seconds: Double, peak: Int, status: Int32) {
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if quiet { posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0) }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let start = now()
    guard posix_spawn(&pid, executable, &actions, nil, argv, environ) == 0 else { return (0, 0, -1) }
    var status: Int32 = 0
    var usage = rusage()
    wait4(pid, &status, 0, &usage)
    return (now() - start, usage.ru_maxrss * 1024, status)
}

func mib(_ bytes: Int) -> String { String(format: "%.0f MiB", Double(bytes) / 1_048_576) }

print("layout-bench — DCP, Hugging Face shards and one file, converted by ckpt-tool (ratios against torch in this same run)")
line("directory", directory.path)
let maker = Process()
maker.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
maker.environment = environment.merging(["CKPT_LAYOUT_BENCH_MAKE_MODEL": path("model.pt")]) { $1 }
let made = Pipe()
maker.standardOutput = made
try maker.run()
let madeOutput = String(decoding: made.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
maker.waitUntilExit()
guard maker.terminationStatus == 0, let largest = Int(madeOutput.trimmingCharacters(in: .whitespacesAndNewlines)) else {
    print("could not make the model: \(madeOutput)")
    exit(1)
}
line("model", "\(mib(total)) float32 in 129 tensors, largest \(mib(largest)) (model.pt, written by ckpt)")
line("ckpt-tool", tool)

// torch first, so its DCP checkpoint is there for ckpt to convert too.
var torchFigures: [String: Any] = [:]
let venv = environment["CKPT_TORCH_VENV"]
    ?? FileManager.default.homeDirectoryForCurrentUser.path + "/.cache/ckpt/venv-torch"
let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scripts/bench_dcp_torch.py").path
// CKPT_LAYOUT_BENCH_INSPECT_ONLY=1 skips torch and the conversions: the inspect rows alone.
let inspectOnly = environment["CKPT_LAYOUT_BENCH_INSPECT_ONLY"] == "1"
if !inspectOnly, FileManager.default.isExecutableFile(atPath: venv + "/bin/python") {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: venv + "/bin/python")
    process.arguments = [script, path("model.pt"), directory.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    if process.terminationStatus == 0, let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] { torchFigures = json }
}
if torchFigures.isEmpty, !inspectOnly { line("torch", "no torch venv (CKPT_TORCH_VENV); torch ratios NOT measured") }

/// One conversion: time, peak memory against the largest tensor, and the torch ratio if any.
@MainActor func convert(_ label: String, _ arguments: [String], torch: String? = nil) {
    let run = measure(tool, ["convert"] + arguments)
    guard run.status == 0 else {
        line(label, "FAILED (exit status \(run.status))")
        return
    }
    let above = run.peak - largest
    let speed = String(format: "%.2f s, %.0f MB/s", run.seconds, Double(total) / run.seconds / 1e6)
    let relation = above >= 0 ? "\(mib(above)) above" : "\(mib(-above)) below"
    line(label, "\(speed), peak \(mib(run.peak)) (\(relation) the largest tensor)", verdict(above <= 256 << 20, "≤ 256 MiB above"))
    if let torch, let seconds = torchFigures[torch + "_s"] as? Double, let rss = torchFigures[torch + "_rss"] as? Int {
        let ratios = String(format: "ckpt %.2fx as fast, %.2fx its peak memory", seconds / run.seconds, Double(run.peak) / Double(rss))
        line("  torch \(torch)", String(format: "%.2f s", seconds) + ", peak \(mib(rss)); " + ratios)
    }
}

if !inspectOnly {
    convert("model.pt → DCP, 1 rank", [path("model.pt"), path("dcp1"), "--format", "dcp"], torch: "torch_save_to_dcp")
    if FileManager.default.fileExists(atPath: path("torch-dcp")) {
        convert("torch's DCP → one .pt", [path("torch-dcp"), path("from-torch-dcp.pt"), "--no-sync"], torch: "dcp_to_torch_save")
    }
    convert("model.pt → DCP, 4 ranks", [path("model.pt"), path("dcp4"), "--format", "dcp", "--ranks", "4"])
    convert("DCP 4 ranks → one .pt", [path("dcp4"), path("whole.pt"), "--no-sync"])
    let shardSize = String(total / 4)
    convert("DCP 4 ranks → safetensors shards", [path("dcp4"), path("hf"), "--max-shard-size", shardSize])
    convert("safetensors shards → DCP, 4 ranks", [path("hf"), path("dcp4b"), "--format", "dcp", "--ranks", "4"])
    convert("safetensors shards → one .safetensors", [path("hf"), path("whole.safetensors"), "--no-sync"])
    for name in ["dcp1", "dcp4b", "whole.pt", "whole.safetensors", "from-torch-dcp.pt", "torch-dcp"] {
        try? FileManager.default.removeItem(atPath: path(name))
    }
}

// inspect of 64-shard checkpoints, whole process, median of 21, against baselines in the same run:
// `ckpt-tool --version` (process start alone) and `cat` of every file of the DCP directory.
_ = measure(tool, ["convert", path("model.pt"), path("dcp64"), "--format", "dcp", "--ranks", "64", "--no-sync"])
_ = measure(tool, ["convert", path("model.pt"), path("hf64"), "--max-shard-size", String(total / 64), "--no-sync"])
// The same model saved as 64 ranks by torch's own planner and FileSystemWriter (simulated ranks).
var inspected = [("inspect, DCP of 64 ranks (ckpt convert)", "dcp64"), ("inspect, 64+ safetensors shards", "hf64")]
if FileManager.default.isExecutableFile(atPath: venv + "/bin/python") {
    let maker = URL(fileURLWithPath: script).deletingLastPathComponent().appendingPathComponent("make_dcp_ranks.py").path
    if measure(venv + "/bin/python", [maker, path("model.pt"), path("torch-dcp64"), "64"]).status == 0 {
        inspected.insert(("inspect, DCP of 64 ranks (torch's writer)", "torch-dcp64"), at: 1)
    }
}
// The fixtures just written (gigabytes) are flushed first: the kernel writing them back during the
// measurements took cores from them (inspect rows 30-50% slower in a run right after the writes).
sync()
let runs = 21
let startup = median((0..<runs).map { _ in measure(tool, ["--version"]).seconds })
line("baseline: ckpt-tool --version", String(format: "%.1f ms (process start)", startup * 1000))
let dcpFiles = ((try? FileManager.default.contentsOfDirectory(atPath: path("dcp64"))) ?? []).sorted().map { path("dcp64/" + $0) }
let cat = median((0..<runs).map { _ in measure("/bin/cat", dcpFiles).seconds })
line("baseline: cat of the DCP's \(dcpFiles.count) files", String(format: "%.1f ms", cat * 1000))
for (label, name) in inspected {
    let times = (0..<runs).map { _ in measure(tool, ["inspect", path(name)]).seconds }
    let files = (try? FileManager.default.contentsOfDirectory(atPath: path(name)).count) ?? 0
    let metadata = (try? FileManager.default.attributesOfItem(atPath: path(name + "/.metadata"))[.size] as? Int)
        .map { ", .metadata \($0 / 1024) KiB" } ?? ""
    let ratio = String(format: "%.1fx --version, %.2fx cat", median(times) / startup, median(times) / cat)
    let milliseconds = String(format: "%.1f ms", median(times) * 1000)
    line(label, "\(milliseconds) (\(files) files\(metadata), whole process; \(ratio))", verdict(median(times) < 0.050, "< 50 ms"))
}
