// `make demo`: a training run that is killed and resumes bit-identically.
//
//     train-resume [--dir runs/demo] [--steps 200] [--kill-at 137]
//
// Trains a two-layer perceptron with Adagrad on a synthetic regression task. The trainer runs as
// a child process (`train-resume --worker ...`) that saves through a CheckpointManager every 10
// steps (asynchronously; keeping the last 3 and the best 2 by loss), and is SIGKILLed partway. A
// second child resumes from the newest checkpoint that verifies. The loss of every step, from
// both children, must have the same bits as an uninterrupted run computed here.

import Catalog
import Checkpoint
import Foundation
import Optim

let learningRate = 0.05
let saveEvery = 10
let batchSize = 32

/// One step: a batch drawn from `rng`, the loss and gradients, and the optimizer's update. The
/// trainer and the reference run share it, so they differ only in checkpointing.
func trainStep(_ model: MLP, _ optimizer: Adagrad, data: Dataset, rng: inout SplitMix64) throws -> Float {
    let batch = (0..<batchSize).map { _ in Int(rng.next() % UInt64(data.inputs.count)) }
    let loss = try model.lossAndGradients(batch: batch, data: data)
    try optimizer.step()
    return loss
}

/// Writes a line unbuffered, so the parent sees every step before it kills the trainer.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The trainer: resumes from the run directory's newest whole checkpoint, or starts fresh.
/// Prints `step <n> loss <value> bits <hex>` for every step.
func work(directory: URL, steps: Int) throws {
    let manager = try CheckpointManager(directory: directory, options: .init(
        retention: RetentionPolicy(keepLast: 3, keepBest: 2, metric: "loss", mode: .min), saveInterval: saveEvery))
    let data = Dataset(seed: 7)
    var rng = SplitMix64(state: 42)
    let model: MLP
    let optimizer: Adagrad
    var start = 0
    if let restored = try manager.restore() {
        for skipped in restored.skipped { emit("skipped \(skipped)") }
        let state = restored.state
        guard let weights = state["model"], let saved = state["optimizer"], case .int(let rngState)? = state["rng"] else {
            throw SampleError("checkpoint at step \(restored.entry.step) lacks model, optimizer or rng")
        }
        model = try MLP(stateDict: weights)
        optimizer = try Adagrad(model.parameters, lr: learningRate)
        try optimizer.loadStateDict(saved)
        rng = SplitMix64(state: UInt64(bitPattern: rngState))
        start = restored.entry.step
        emit("resumed from step \(start) (\(restored.entry.relativePath))")
    } else {
        model = try MLP(rng: &rng)
        optimizer = try Adagrad(model.parameters, lr: learningRate)
    }
    for step in (start + 1)...steps {
        let loss = try trainStep(model, optimizer, data: data, rng: &rng)
        emit("step \(step) loss \(loss) bits \(String(loss.bitPattern, radix: 16))")
        if manager.shouldSave(step: step) {
            // Returns at once (the snapshot is copy-on-write); the next optimizer step cannot tear the save.
            try manager.saveAsync(step: step, state: [
                "model": model.stateDict(),
                "optimizer": optimizer.stateDict(),
                "rng": .int(Int64(bitPattern: rng.state)),
                "step": .int(Int64(step)),
            ], metrics: ["loss": Double(loss)])
        }
    }
    try manager.flush()
    try manager.close()
}

/// The same training, in this process, with no checkpoints: the losses to match.
func referenceLosses(steps: Int) throws -> [UInt32] {
    let data = Dataset(seed: 7)
    var rng = SplitMix64(state: 42)
    let model = try MLP(rng: &rng)
    let optimizer = try Adagrad(model.parameters, lr: learningRate)
    return try (1...steps).map { _ in
        let loss = try trainStep(model, optimizer, data: data, rng: &rng)
        return loss.bitPattern
    }
}

/// Runs this program as a trainer child, echoing its lines; SIGKILLs it once it prints `killAt`.
/// Returns the loss bits it printed, by step.
func runWorker(directory: URL, steps: Int, killAt: Int?, label: String) throws -> [Int: UInt32] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    process.arguments = ["--worker", "--dir", directory.path, "--steps", String(steps)]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    var losses: [Int: UInt32] = [:]
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
            if fields.count == 6, fields[0] == "step", let step = Int(fields[1]), let bits = UInt32(fields[5], radix: 16) {
                losses[step] = bits
                if step % 20 == 0 || step == killAt { emit("  [\(label)] step \(step)  loss \(fields[3])") }
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
    return losses
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
    emit("Training a 8-16-1 MLP with Adagrad for \(steps) steps; checkpoints every \(saveEvery) steps in \(directory.path)")
    let reference = try referenceLosses(steps: steps)

    emit("1. trainer, to be killed at step \(killAt):")
    let first = try runWorker(directory: directory, steps: steps, killAt: killAt, label: "run 1")
    emit("2. trainer again, resuming from the newest checkpoint that verifies:")
    let second = try runWorker(directory: directory, steps: steps, killAt: nil, label: "run 2")

    var mismatches: [Int] = []
    for (step, bits) in first.merging(second, uniquingKeysWith: { old, new in old == new ? new : ~old }) where bits != reference[step - 1] {
        mismatches.append(step)
    }
    let resumedFrom = (second.keys.min() ?? 1) - 1
    guard mismatches.isEmpty, first.count + second.count > steps else {
        emit("FAILED: losses differ from the uninterrupted run at steps \(mismatches.sorted().prefix(10))")
        exit(1)
    }
    emit("""
        3. The resumed loss curve is bit-identical to an uninterrupted run: run 1 printed steps 1-\(first.keys.max() ?? 0), \
        run 2 resumed after step \(resumedFrom) and printed \(resumedFrom + 1)-\(steps); all \(Set(first.keys).union(second.keys).count) \
        losses (and the \(first.keys.filter { second[$0] != nil }.count) steps trained twice) have the reference's bits.
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
