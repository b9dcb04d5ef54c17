// `make demo`: a training run that is killed and resumes bit-identically.
//
//     train-resume [--dir runs/demo] [--steps 200] [--kill-at 137]
//
// Trains a two-layer perceptron with Adagrad on a synthetic regression task, its learning rate
// warmed up linearly for 10 steps and then annealed on a cosine (LinearLR then CosineAnnealingLR in
// a SequentialLR). The trainer runs as a child process (`train-resume --worker ...`) that saves the
// model, the optimizer and the scheduler (Optim's TrainingState) through a CheckpointManager every
// 10 steps (asynchronously; keeping the last 3 and the best 2 by loss), and is SIGKILLed partway. A
// second child builds the model, optimizer and schedulers again and restores them from the newest
// checkpoint that verifies. The loss and the learning rate of every step, from both children, must
// have the same bits as an uninterrupted run computed here.

import Catalog
import Checkpoint
import Foundation
import Optim

let learningRate = 0.05
let warmupSteps = 10
let saveEvery = 10
let batchSize = 32

/// The optimizer and its schedule, built on `model`: what a resumed run builds again, in the same
/// order, before restoring their states.
func makeTraining(_ model: MLP, steps: Int) throws -> (optimizer: Adagrad, scheduler: SequentialLR, state: TrainingState) {
    let optimizer = try Adagrad(model.parameters, lr: learningRate)
    let warmup = try LinearLR(optimizer, startFactor: 0.1, totalIters: warmupSteps)
    let cosine = try CosineAnnealingLR(optimizer, tMax: max(1, steps - warmupSteps), etaMin: learningRate / 10)
    let scheduler = try SequentialLR(optimizer, schedulers: [warmup, cosine], milestones: [warmupSteps])
    return (optimizer, scheduler, try TrainingState(model: model.parameters, optimizer: optimizer, scheduler: scheduler))
}

/// One step: a batch drawn from `rng`, the loss and gradients, the optimizer's update and the
/// scheduler's. The trainer and the reference run share it, so they differ only in checkpointing.
/// Returns the loss and the learning rate the step used.
func trainStep(_ model: MLP, _ optimizer: Adagrad, _ scheduler: LRScheduler, data: Dataset, rng: inout SplitMix64) throws -> (loss: Float, lr: Double) {
    let batch = (0..<batchSize).map { _ in Int(rng.next() % UInt64(data.inputs.count)) }
    let loss = try model.lossAndGradients(batch: batch, data: data)
    let lr = scheduler.getLastLR()[0]
    try optimizer.step()
    try scheduler.step()
    return (loss, lr)
}

/// Writes a line unbuffered, so the parent sees every step before it kills the trainer.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The bits of one step's loss and learning rate.
struct StepBits: Equatable {
    var loss: UInt32
    var lr: UInt64
}

/// The trainer: resumes from the run directory's newest whole checkpoint, or starts fresh.
/// Prints `step <n> loss <value> bits <hex> lr <value> bits <hex>` for every step.
func work(directory: URL, steps: Int) throws {
    let manager = try CheckpointManager(directory: directory, options: .init(
        retention: RetentionPolicy(keepLast: 3, keepBest: 2, metric: "loss", mode: .min), saveInterval: saveEvery))
    let data = Dataset(seed: 7)
    var rng = SplitMix64(state: 42)
    // A resumed run builds everything as a fresh one does (the weights drawn here are replaced),
    // then restores the model, the scheduler's state and the optimizer's, in torch's order.
    let model = try MLP(rng: &rng)
    let (optimizer, scheduler, training) = try makeTraining(model, steps: steps)
    var start = 0
    if let restored = try manager.restore() {
        for skipped in restored.skipped { emit("skipped \(skipped)") }
        do {
            try training.loadStateDict(restored.state)
        } catch {
            throw SampleError("\(restored.entry.url.path): \(error)")
        }
        guard case .int(let rngState)? = restored.state["rng"], case .int(let step)? = restored.state["step"] else {
            throw SampleError("\(restored.entry.url.path): the checkpoint lacks rng or step")
        }
        rng = SplitMix64(state: UInt64(bitPattern: rngState))
        start = Int(step)
        emit("resumed from step \(start) (\(restored.entry.relativePath)), lr \(scheduler.getLastLR()[0])")
    }
    for step in (start + 1)...steps {
        let (loss, lr) = try trainStep(model, optimizer, scheduler, data: data, rng: &rng)
        emit("step \(step) loss \(loss) bits \(String(loss.bitPattern, radix: 16)) lr \(lr) bits \(String(lr.bitPattern, radix: 16))")
        if manager.shouldSave(step: step) {
            // Returns at once (the snapshot is copy-on-write); the next optimizer step cannot tear the save.
            try manager.saveAsync(step: step, state: training.stateDict(adding: [
                "rng": .int(Int64(bitPattern: rng.state)),
                "step": .int(Int64(step)),
            ]), metrics: ["loss": Double(loss)])
        }
    }
    try manager.flush()
    try manager.close()
}

/// The same training, in this process, with no checkpoints: the losses and learning rates to match.
func referenceRun(steps: Int) throws -> [StepBits] {
    let data = Dataset(seed: 7)
    var rng = SplitMix64(state: 42)
    let model = try MLP(rng: &rng)
    let (optimizer, scheduler, _) = try makeTraining(model, steps: steps)
    return try (1...steps).map { _ in
        let (loss, lr) = try trainStep(model, optimizer, scheduler, data: data, rng: &rng)
        return StepBits(loss: loss.bitPattern, lr: lr.bitPattern)
    }
}

/// Runs this program as a trainer child, echoing its lines; SIGKILLs it once it prints `killAt`.
/// Returns the loss and learning-rate bits it printed, by step.
func runWorker(directory: URL, steps: Int, killAt: Int?, label: String) throws -> [Int: StepBits] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    process.arguments = ["--worker", "--dir", directory.path, "--steps", String(steps)]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    var printed: [Int: StepBits] = [:]
    var pending = Data()
    var killed = false
    let reader = pipe.fileHandleForReading
    while true {
        let chunk = reader.availableData
        if chunk.isEmpty { break }
        pending.append(chunk)
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
            pending.removeSubrange(pending.startIndex...newline)
            let fields = line.split(separator: " ")
            if fields.count == 10, fields[0] == "step", let step = Int(fields[1]), let loss = UInt32(fields[5], radix: 16),
               let lr = UInt64(fields[9], radix: 16) {
                printed[step] = StepBits(loss: loss, lr: lr)
                if step % 20 == 0 || step == killAt { emit("  [\(label)] step \(step)  loss \(fields[3])  lr \(fields[7])") }
                if let killAt, step >= killAt, !killed {
                    kill(process.processIdentifier, SIGKILL)
                    killed = true
                    emit("  [\(label)] SIGKILL at step \(step) (a save may be in flight)")
                }
            } else {
                emit("  [\(label)] \(line)")
            }
        }
    }
    process.waitUntilExit()
    if killAt == nil, process.terminationStatus != 0 {
        throw SampleError("trainer exited with status \(process.terminationStatus)")
    }
    return printed
}

/// Runs the built ckpt-tool (beside this program) and prints its output.
func tool(_ arguments: [String]) throws {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("ckpt-tool")
    emit("$ ckpt-tool \(arguments.joined(separator: " "))")
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
}

func option(_ name: String, _ arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

do {
    let arguments = CommandLine.arguments
    let directory = URL(fileURLWithPath: option("--dir", arguments) ?? "runs/demo")
    let steps = Int(option("--steps", arguments) ?? "") ?? 200
    if arguments.contains("--worker") {
        try work(directory: directory, steps: steps)
        exit(0)
    }
    let killAt = Int(option("--kill-at", arguments) ?? "") ?? 137
    try? FileManager.default.removeItem(at: directory)
    emit("""
        Training a 8-16-1 MLP with Adagrad for \(steps) steps (lr \(learningRate): linear warmup for \(warmupSteps) steps, \
        then cosine annealing); checkpoints every \(saveEvery) steps in \(directory.path)
        """)
    let reference = try referenceRun(steps: steps)

    emit("1. trainer, to be killed at step \(killAt):")
    let first = try runWorker(directory: directory, steps: steps, killAt: killAt, label: "run 1")
    emit("2. trainer again, resuming from the newest checkpoint that verifies:")
    let second = try runWorker(directory: directory, steps: steps, killAt: nil, label: "run 2")

    var mismatches: [Int] = []
    for (step, bits) in first.merging(second, uniquingKeysWith: { old, new in old == new ? new : StepBits(loss: ~old.loss, lr: ~old.lr) })
    where bits != reference[step - 1] {
        mismatches.append(step)
    }
    let resumedFrom = (second.keys.min() ?? 1) - 1
    guard mismatches.isEmpty, first.count + second.count > steps else {
        emit("FAILED: losses or learning rates differ from the uninterrupted run at steps \(mismatches.sorted().prefix(10))")
        exit(1)
    }
    emit("""
        3. The resumed loss curve and learning-rate schedule are bit-identical to an uninterrupted run: run 1 printed \
        steps 1-\(first.keys.max() ?? 0), run 2 resumed after step \(resumedFrom) and printed \(resumedFrom + 1)-\(steps); \
        all \(Set(first.keys).union(second.keys).count) losses and learning rates (and the \
        \(first.keys.filter { second[$0] != nil }.count) steps trained twice) have the reference's bits.
        """)
    try tool(["ls", directory.path])
    let manager = try CheckpointManager(directory: directory, options: .init(createIfMissing: false))
    if let latest = try manager.latest() {
        try tool(["inspect", latest.url.path, "--depth", "2"])
    }
} catch {
    emit("error: \(error)")
    exit(1)
}
