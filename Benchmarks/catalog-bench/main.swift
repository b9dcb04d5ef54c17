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
//   4. a plain copy of the state's bytes into memory already faulted (what any copying snapshot costs);
//   5. twice, through two managers: a training step, then `manager.saveAsync` of a new step, then
//      training steps (a stand-in for backward, and an Adagrad step in place on the tensors just
//      saved) until the save in the background has committed, as a training loop goes on while
//      it writes. One manager's snapshot is copy-on-write (the default); the other copies the
//      whole snapshot before saveAsync returns (`copiesSnapshotOnCall`, as it did before). Blocked
//      time is the call's, plus the time the training thread's writes waited for a storage's copy
//      (`lastAsyncSaveWriterWaits`). The first training step after the call is also compared
//      with the one before it: that difference adds the background copy's and write's
//      competition for the cores and memory, which slows the step without blocking it.
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
var writeTimes: [Double] = [], replaceTimes: [Double] = [], rotateTimes: [Double] = [], copyTimes: [Double] = []
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

/// Async saves through one manager (keepLast 1) in a training loop, and what they cost it.
@MainActor final class AsyncSaves {
    let manager: CheckpointManager
    /// The call, plus the time writes waited for a storage's copy.
    var blocked: [Double] = []
    var calls: [Double] = []
    /// The training step before the call (no save in flight), and the one right after it.
    var stepBefore: [Double] = [], stepAfter: [Double] = []
    var stepsDuringSave: [Int] = []
    var tearChecks: [String] = []

    init(_ name: String, copiesOnCall: Bool) throws {
        manager = try CheckpointManager(
            directory: directory.appendingPathComponent(name), options: .init(retention: RetentionPolicy(keepLast: 1)))
        manager.copiesSnapshotOnCall = copiesOnCall
    }

    /// A training step, the save, and training steps until it has committed; the first and the
    /// last save are checked against the bytes at the time of the call.
    func measure(round: Int) throws {
        DurableFile.waitForReleasedFiles()
        stepBefore.append(try timed { try trainingStepInPlace() })
        let saved = trainingState()
        let expected = round == 0 || round == rounds - 1 ? try copyOfBytes(saved) : nil
        DurableFile.waitForReleasedFiles()
        sync()
        let start = now()
        try manager.saveAsync(step: trainingStep, state: saved, metrics: ["loss": Double(round)])
        let returned = now()
        try trainingStepInPlace()
        stepAfter.append(now() - returned)
        var steps = 1
        while manager.isSaving {
            try trainingStepInPlace()
            steps += 1
        }
        stepsDuringSave.append(steps)
        let entry = try manager.wait()
        calls.append(returned - start)
        blocked.append(returned - start + manager.lastAsyncSaveWriterWaits)
        let step = trainingStep - steps
        guard entry?.step == step, try manager.latest()?.step == step else {
            fatalError("the async save of step \(step) is not the latest committed checkpoint")
        }
        if let expected {
            let whole = try fileHolds(manager.checkpointURL(step: step), expected)
            tearChecks.append("save \(round + 1): \(whole ? "intact" : "TORN")")
            guard whole else { fatalError("async save \(round + 1) does not hold the state at the time of the call") }
        }
    }

    /// Saves 2 and later (the first allocates its snapshot's buffers).
    func steady(_ values: [Double]) -> [Double] { Array(values.dropFirst()) }
    var steadyRatio: Double { median(zip(blocked, writeTimes).dropFirst().map { $0 / $1 }) }
    var steadyExtraStep: Double { median(zip(stepAfter, stepBefore).dropFirst().map { $0 - $1 }) }
    /// What the save cost the training thread in all: the call and the next step's extra time.
    var steadyCost: Double { median((1..<calls.count).map { calls[$0] + stepAfter[$0] - stepBefore[$0] }) }

    func report(_ title: String, goal: Bool) {
        print(title)
        line("  blocked, first save (new snapshot buffers)", ms(blocked[0]) + "  = " + percent(blocked[0] / writeTimes[0]) + " of the synchronous save")
        line("  blocked, saves 2–\(rounds) (median)", ms(median(steady(blocked))) + "  (saveAsync itself \(ms(median(steady(calls)))))")
        line("    of the synchronous durable save (median of ratios)", percent(steadyRatio), goal ? verdict(steadyRatio <= 0.15, "≤ 15%") : "")
        line("  training step right after the call, over the one before", "+" + ms(steadyExtraStep) + "  = " + percent(steadyExtraStep / write) + " of the synchronous save")
        line("    (median, saves 2–\(rounds))", ms(median(steady(stepAfter))) + " vs " + ms(median(steady(stepBefore))))
        line("  the call + that extra time (median, saves 2–\(rounds))", ms(steadyCost) + "  = " + percent(steadyCost / write) + " of the synchronous save")
        line("  training steps run during each save", stepsDuringSave.map(String.init).joined(separator: " "))
        line("  written right after the call: saved bytes", tearChecks.joined(separator: ", "))
        if verbose {
            line("  blocked, each round (ms)", each(blocked))
            line("  training step before / right after the call (ms)", zip(stepBefore, stepAfter).map { String(format: "%.0f/%.0f", $0 * 1000, $1 * 1000) }.joined(separator: " "))
        }
    }
}

let verbose = ProcessInfo.processInfo.environment["CKPT_BENCH_VERBOSE"] != nil
func each(_ times: [Double]) -> String { times.map { String(format: "%.0f", $0 * 1000) }.joined(separator: " ") }
let copyOnWrite = try AsyncSaves("async", copiesOnCall: false)
let copyOnCall = try AsyncSaves("async-copy", copiesOnCall: true)

for round in 0..<rounds {
    let state = trainingState()
    writeTimes.append(try timed(prepare: settle) { try state.write(to: plainURL, format: .ckpt) })
    replaceTimes.append(try timed(prepare: settle) { try replaceManager.save(step: 0, state: state, metrics: ["loss": Double(round)]) })
    rotateTimes.append(try timed(prepare: settle) { try rotateManager.save(step: round, state: state, metrics: ["loss": Double(round)]) })
    // What any copying snapshot costs at least: the same bytes copied into memory already faulted.
    copyTimes.append(timed(prepare: DurableFile.waitForReleasedFiles) { copyInParallel(state.storagesInOrder, into: scratch) })
    // The two kinds of async save take turns going first.
    for saves in round % 2 == 0 ? [copyOnWrite, copyOnCall] : [copyOnCall, copyOnWrite] { try saves.measure(round: round) }
}
try replaceManager.close()
try rotateManager.close()
try copyOnWrite.manager.close()
try copyOnCall.manager.close()
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

print("")
print("Async save: time the training thread is blocked (saveAsync, and writes waiting for a storage's")
print("copy), over the durable state.write of the same round; the training step right after the call")
print("also pays for the background copy and write competing for the cores and memory")
copyOnWrite.report("saveAsync (copy-on-write snapshot)", goal: true)
copyOnCall.report("saveAsync copying the whole snapshot before it returns (as before; for comparison)", goal: false)
line("plain copy of the same bytes into faulted memory (median)", ms(median(copyTimes)))
if verbose {
    line("  write alone, each round (ms)", each(writeTimes))
    line("  manager.save replacing, each round (ms)", each(replaceTimes))
    line("  manager.save new step + prune, each round (ms)", each(rotateTimes))
    line("  plain copy, each round (ms)", each(copyTimes))
}
