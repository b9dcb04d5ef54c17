// catalog-bench: what CheckpointManager costs on top of writing the checkpoint (issue 10, part 7),
// and how long saveAsync blocks the training thread (issue 10, part 2). Every figure is a ratio
// against a baseline measured in this same run, in interleaved rounds, because this machine is
// shared and absolute times lie.
//
//   swift build -c release --product catalog-bench
//   .build/release/catalog-bench [DIR]      (or CKPT_BENCH_DIR=DIR; CKPT_BENCH_ROUNDS=N, default 7)
//
// The state is a model of four 4096x8192 float32 weights and their biases, and its Adagrad state
// (a `sum` like each parameter and a 0-dim `step`): 1 GiB of tensors plus 64 KiB of small ones.
// Each round times, one after another:
//   1. `state.write(to:format: .ckpt)`, durable, replacing one file: the baseline;
//   2. `manager.save` replacing one step (the manager's work without pruning);
//   3. `manager.save` of a new step with keepLast 1 (so the call also prunes the previous one);
//   4. a training step, then `manager.saveAsync` of a new step, then training steps (a stand-in
//      for backward, and an Adagrad step in place on the tensors just saved) until the save in
//      the background has committed, as a training loop goes on while it writes. Blocked time
//      is the call's, plus the time the training thread's writes waited for a storage's copy
//      (the snapshot is copy-on-write; `lastAsyncSaveWriterWaits`). The first training step after
//      the call is also compared with the one before it: that difference adds the background
//      copy's and write's competition for the cores and memory, which slows but does not block.
// Before each timed save the files replaced earlier are released and dirty pages are flushed
// (untimed), so that no save pays for the one before it.
import BenchSupport
import Catalog
import Checkpoint
import Foundation
import Optim
#if canImport(Glibc)
import Glibc
#endif

let rounds = ProcessInfo.processInfo.environment["CKPT_BENCH_ROUNDS"].flatMap(Int.init).map { max(3, $0) } ?? 7
let tinyRounds = 31
let directory = try benchDirectory("catalog-bench")
defer { try? FileManager.default.removeItem(at: directory) }

func line(_ name: String, _ value: String, _ verdict: String = "") { BenchSupport.line(name, value, verdict, width: 60) }
func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
func percent(_ ratio: Double) -> String { String(format: "%.1f%%", ratio * 100) }

/// Times `body` after an untimed `prepare` and sync(2).
func timed(prepare: () -> Void = {}, _ body: () throws -> Void) rethrows -> Double {
    prepare()
    sync()
    let start = now()
    try body()
    return now() - start
}

/// Waits for files replaced by earlier saves to be freed, and recycles as much memory as a save
/// writes (BenchSupport.recycleMemory), so that every save finds the same memory at hand.
let gib = 1 << 30
func settle() {
    DurableFile.waitForReleasedFiles()
    recycleMemory(gib)
}

// MARK: The state: a model and its Adagrad state, 1 GiB of float32.

let layers = 4
let rows = 4096, columns = 8192
var parameters: [Parameter] = []
for layer in 0..<layers {
    let weight = Parameter(try Tensor(zeros: .float32, shape: [rows, columns]), name: "layer\(layer).weight")
    let bias = Parameter(try Tensor(zeros: .float32, shape: [rows]), name: "layer\(layer).bias")
    for (offset, parameter) in [weight, bias].enumerated() {
        let gradient = try Tensor(zeros: .float32, shape: parameter.data.shape)
        try gradient.storage.withUnsafeMutableBytes { raw in
            let floats = raw.bindMemory(to: Float.self)
            for i in floats.indices { floats[i] = Float((i &* 2654435761 &+ layer &+ offset) & 1023) / 1024 - 0.5 }
        }
        try parameter.data.storage.withUnsafeMutableBytes { raw in
            let floats = raw.bindMemory(to: Float.self)
            for i in floats.indices { floats[i] = Float(i & 4095) / 4096 }
        }
        parameter.grad = .dense(gradient)
        parameters.append(parameter)
    }
}
let optimizer = try Adagrad(parameters, lr: 1e-3)
var trainingStep = 0

/// The state a training loop saves: what `model.state_dict()` and `optimizer.state_dict()` give,
/// views of the live tensors (no copy).
@MainActor func trainingState() -> StateValue {
    var model = StateDict(isOrderedDict: true)
    for parameter in parameters { model[.string(parameter.name!)] = .tensor(parameter.data) }
    return ["model": .dict(model), "optimizer": optimizer.stateDict(), "step": .int(Int64(trainingStep))]
}

/// One training step: a stand-in for backward (each gradient computed from its parameter: reads
/// the parameters, writes the gradients, which are not saved) and a real Adagrad step (writes the
/// parameters and their `sum` in place). A real model's forward and backward take far longer
/// than this one pass, so the time a save has between its call and the optimizer step is short.
@MainActor func trainingStepInPlace() throws {
    for parameter in parameters {
        guard case .dense(let gradient)? = parameter.grad else { continue }
        try parameter.data.storage.withUnsafeBytes { raw in
            let values = raw.bindMemory(to: Float.self)
            try gradient.storage.withUnsafeMutableBytes { out in
                let gradients = out.bindMemory(to: Float.self)
                for i in gradients.indices { gradients[i] = values[i] * 1e-3 - gradients[i] * 0.5 }
            }
        }
    }
    try optimizer.step()
    trainingStep += 1
}

try trainingStepInPlace()
var stateBytes = 0
trainingState().forEachTensor { _, tensor in stateBytes += tensor.storage.byteCount }
var tensorCount = 0
trainingState().forEachTensor { _, _ in tensorCount += 1 }

print("catalog-bench — CheckpointManager overhead and async save (median of \(rounds) interleaved rounds; ratios against baselines from this same run)")
line("directory", directory.path)
line("state", String(format: "%d tensors (model + Adagrad), %.1f MiB", tensorCount, Double(stateBytes) / 1048576))

// MARK: Catalog time per save: a tiny state through the manager, minus the same tiny write.

func tinyState(_ seed: Int) throws -> StateValue {
    var dict = StateDict(isOrderedDict: true)
    for index in 0..<4 {
        dict[.string("t\(index)")] = .tensor(try Tensor((0..<256).map { Float($0 + seed + index) }, shape: [256]))
    }
    return .dict(dict)
}

let tinyPlain = directory.appendingPathComponent("tiny.ckpt")
let tinyReplace = try CheckpointManager(directory: directory.appendingPathComponent("tiny-replace"))
let tinyRotate = try CheckpointManager(
    directory: directory.appendingPathComponent("tiny-rotate"), options: .init(retention: RetentionPolicy(keepLast: 1)))
var tinyWriteTimes: [Double] = [], tinyReplaceTimes: [Double] = [], tinyRotateTimes: [Double] = []
for round in 0..<tinyRounds {
    let state = try tinyState(round)
    tinyWriteTimes.append(try timed { try state.write(to: tinyPlain, format: .ckpt) })
    tinyReplaceTimes.append(try timed { try tinyReplace.save(step: 0, state: state, metrics: ["loss": 1]) })
    tinyRotateTimes.append(try timed { try tinyRotate.save(step: round, state: state, metrics: ["loss": 1]) })
}
try tinyReplace.close()
try tinyRotate.close()
let tinyWrite = median(tinyWriteTimes)
let catalogReplace = median(tinyReplaceTimes) - tinyWrite
let catalogRotate = median(tinyRotateTimes) - tinyWrite

// MARK: 1 GiB rounds.

let plainURL = directory.appendingPathComponent("plain.ckpt")
let replaceManager = try CheckpointManager(directory: directory.appendingPathComponent("replace"))
let rotateManager = try CheckpointManager(
    directory: directory.appendingPathComponent("rotate"), options: .init(retention: RetentionPolicy(keepLast: 1)))
let asyncManager = try CheckpointManager(
    directory: directory.appendingPathComponent("async"), options: .init(retention: RetentionPolicy(keepLast: 1)))
var writeTimes: [Double] = [], replaceTimes: [Double] = [], rotateTimes: [Double] = [], blockedTimes: [Double] = []
var stepsDuringSave: [Int] = []
var copyTimes: [Double] = [], callTimes: [Double] = [], plainStepTimes: [Double] = [], firstStepTimes: [Double] = []
let scratch = trainingState().storagesInOrder.map { Storage(byteCount: $0.byteCount) }

/// A plain copy of `sources` into `targets` in chunks of 32 MiB on all cores, as the snapshot copies.
func copyInParallel(_ sources: [Storage], into targets: [Storage]) {
    let chunk = 32 << 20
    let jobs = zip(sources, targets).flatMap { source, target in
        stride(from: 0, to: source.byteCount, by: chunk).map { (source, target, $0, min(chunk, source.byteCount - $0)) }
    }
    DispatchQueue.concurrentPerform(iterations: jobs.count) { index in
        let (source, target, offset, count) = jobs[index]
        _ = try? source.withUnsafeBytes { from in
            try target.withUnsafeMutableBytes { to in (to.baseAddress! + offset).copyMemory(from: from.baseAddress! + offset, byteCount: count) }
        }
    }
}
var tearChecks: [String] = []

/// The state's bytes now, storage by storage (tree order): what a save started now must hold.
func copyOfBytes(_ state: StateValue) throws -> [Storage] { try state.storagesInOrder.map { try $0.copy() } }

/// Whether the file at `url` holds exactly `expected`, storage by storage, every CRC verified.
func fileHolds(_ url: URL, _ expected: [Storage]) throws -> Bool {
    let loaded = try StateValue(contentsOf: url)
    try loaded.verifyChecksums()
    let storages = loaded.storagesInOrder
    guard storages.count == expected.count else { return false }
    for (saved, wanted) in zip(storages, expected) {
        let same = try saved.withUnsafeBytes { a in
            try wanted.withUnsafeBytes { b in a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0) }
        }
        if !same { return false }
    }
    return true
}

for round in 0..<rounds {
    let state = trainingState()
    writeTimes.append(try timed(prepare: settle) { try state.write(to: plainURL, format: .ckpt) })
    replaceTimes.append(try timed(prepare: settle) { try replaceManager.save(step: 0, state: state, metrics: ["loss": Double(round)]) })
    rotateTimes.append(try timed(prepare: settle) { try rotateManager.save(step: round, state: state, metrics: ["loss": Double(round)]) })

    // A training step, then the save, as a training loop does.
    DurableFile.waitForReleasedFiles()
    plainStepTimes.append(try timed { try trainingStepInPlace() })
    let saved = trainingState()
    // What any copying snapshot costs at least: the same bytes copied into memory already faulted.
    copyTimes.append(timed(prepare: DurableFile.waitForReleasedFiles) { copyInParallel(saved.storagesInOrder, into: scratch) })
    // The first and the last async save are checked against the bytes at the time of the call.
    let check = round == 0 || round == rounds - 1
    let expected = check ? try copyOfBytes(saved) : []
    DurableFile.waitForReleasedFiles()
    sync()
    let start = now()
    try asyncManager.saveAsync(step: trainingStep, state: saved, metrics: ["loss": Double(round)])
    let returned = now()
    // Training goes on, in place on the tensors just snapshotted, until the save has committed.
    try trainingStepInPlace()
    firstStepTimes.append(now() - returned)
    var steps = 1
    while asyncManager.isSaving {
        try trainingStepInPlace()
        steps += 1
    }
    stepsDuringSave.append(steps)
    let entry = try asyncManager.wait()
    // Blocked: the call, and the time writers (the Adagrad steps) waited for a storage's copy.
    callTimes.append(returned - start)
    blockedTimes.append(returned - start + asyncManager.lastAsyncSaveWriterWaits)
    guard entry?.step == trainingStep - steps, try asyncManager.latest()?.step == trainingStep - steps else {
        fatalError("the async save of step \(trainingStep - steps) is not the latest committed checkpoint")
    }
    if check {
        let whole = try fileHolds(asyncManager.checkpointURL(step: trainingStep - steps), expected)
        tearChecks.append("save \(round + 1): \(whole ? "intact" : "TORN")")
        guard whole else { fatalError("async save \(round + 1) does not hold the state at the time of the call") }
    }
}
try replaceManager.close()
try rotateManager.close()
try asyncManager.close()
DurableFile.waitForReleasedFiles()

// MARK: Results.

let write = median(writeTimes)
/// The median over rounds of each round's time over that round's write alone, minus 1.
@MainActor func overhead(_ times: [Double]) -> Double { median(zip(times, writeTimes).map { $0 / $1 }) - 1 }
print("")
print("Manager save overhead (durable; median of \(rounds) rounds' ratios, each against the write alone in the same round)")
line("state.write(.ckpt) alone (durable)", ms(write))
line("manager.save, replacing one step", ms(median(replaceTimes)))
line("  overhead over the write alone", percent(overhead(replaceTimes)), verdict(overhead(replaceTimes) <= 0.05, "≤ 5%"))
line("manager.save, new step + prune previous (keepLast 1)", ms(median(rotateTimes)))
line("  overhead over the write alone", percent(overhead(rotateTimes)), verdict(overhead(rotateTimes) <= 0.05, "≤ 5%"))
print("Catalog time per save: a 4 KiB state through the manager minus its write alone (median of \(tinyRounds))")
line("  tiny state.write(.ckpt) alone (durable)", ms(tinyWrite))
line("  catalog time, replacing one step", ms(catalogReplace) + "  = " + percent(catalogReplace / write) + " of the 1 GiB write")
line("  catalog time, new step + prune (keepLast 1)", ms(catalogRotate) + "  = " + percent(catalogRotate / write) + " of the 1 GiB write")

let firstBlocked = blockedTimes[0]
let steadyBlocked = median(Array(blockedTimes.dropFirst()))
let steadyRatio = median(zip(blockedTimes, writeTimes).dropFirst().map { $0 / $1 })
let steadyExtra = median(zip(firstStepTimes, plainStepTimes).dropFirst().map { $0 - $1 })
print("")
print("Async save: time the training thread is blocked (saveAsync, and writes waiting for a storage's copy),")
print("over the durable state.write of the same round")
line("blocked, first save (new snapshot buffers)", ms(firstBlocked))
line("  of the synchronous durable save", percent(firstBlocked / writeTimes[0]))
line("blocked, saves 2–\(rounds) (median; buffers reused)", ms(steadyBlocked))
line("  of the synchronous durable save (median of ratios)", percent(steadyRatio), verdict(steadyRatio <= 0.15, "≤ 15%"))
line("  of which saveAsync itself (median)", ms(median(Array(callTimes.dropFirst()))))
line("  plain copy of the same bytes into faulted memory (median)", ms(median(copyTimes)))
line("training step right after saveAsync, over a step before it", "+" + ms(steadyExtra) + String(format: "  (%@ vs %@; median, saves 2–%d)", ms(median(Array(firstStepTimes.dropFirst()))), ms(median(Array(plainStepTimes.dropFirst()))), rounds))
line("  as a fraction of the synchronous durable save", percent(steadyExtra / write), "(waits, and the copy and write competing for the cores)")
line("  training steps run during each save", stepsDuringSave.map(String.init).joined(separator: " "))
line("  mutated right after the call: saved bytes", tearChecks.joined(separator: ", "))
if ProcessInfo.processInfo.environment["CKPT_BENCH_VERBOSE"] != nil {
    func each(_ times: [Double]) -> String { times.map { String(format: "%.0f", $0 * 1000) }.joined(separator: " ") }
    line("  write alone, each round (ms)", each(writeTimes))
    line("  manager.save replacing, each round (ms)", each(replaceTimes))
    line("  manager.save new step + prune, each round (ms)", each(rotateTimes))
    line("  blocked, each round (ms)", each(blockedTimes))
    line("  saveAsync call, each round (ms)", each(callTimes))
    line("  training step before / right after the call (ms)", zip(plainStepTimes, firstStepTimes).map { String(format: "%.0f/%.0f", $0 * 1000, $1 * 1000) }.joined(separator: " "))
    line("  plain copy, each round (ms)", each(copyTimes))
}
