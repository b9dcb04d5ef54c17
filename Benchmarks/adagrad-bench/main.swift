// Adagrad (or SGD with momentum) step throughput, ours against torch's measured in the same run.
//
//   swift build -c release --scratch-path .build-kernels --product adagrad-bench
//   .build-kernels/release/adagrad-bench [--optimizer adagrad|sgd] [--layouts 1x67108864,4096x65536] [--steps 9] [--no-torch]
//
// SGD runs with momentum 0.9 and Nesterov, so its traffic per element is Adagrad's (read param,
// grad, buffer; write param, buffer) and the same memory baseline applies.
//
// For each instruction-set variant of our kernels the CPU runs (and the best one), the paths take
// turns, one step each, for --steps rounds after a warm-up step; each path's best step is printed as
// Melem/s and effective GB/s (20 bytes per element: read param, grad, sum; write param, sum), and
// as a ratio to fused and to a plain loop over the same arrays (read 3, write 2: the memory's limit)
// measured in the same rounds. Taking turns keeps a noisy machine's drift out of the ratios.
// torch's side comes from scripts/bench_adagrad_torch.py run with the venv's python
// (CKPT_TORCH_PYTHON, else ~/.cache/ckpt/venv-torch/bin/python); without it, ratios are not printed.
import Checkpoint
import Foundation
import Optim

struct Layout {
    let tensors: Int
    let elements: Int
    var description: String { "\(tensors)x\(elements)" }
    var total: Int { tensors * elements }
}

enum Path: String, CaseIterable {
    case fused, `default`, foreach
}

enum Kind: String {
    case adagrad, sgd
}

struct Arguments {
    var layouts = [Layout(tensors: 1, elements: 1 << 26), Layout(tensors: 4096, elements: 1 << 16)]
    var steps = 9
    var paths = Path.allCases
    var torch = true
    var kind = Kind.adagrad

    init(_ argv: [String]) throws {
        var iterator = argv.dropFirst().makeIterator()
        while let flag = iterator.next() {
            switch flag {
            case "--layouts":
                layouts = try (iterator.next() ?? "").split(separator: ",").map { spec in
                    let parts = spec.split(separator: "x").compactMap { Int($0) }
                    guard parts.count == 2, parts[0] > 0, parts[1] > 0 else { throw BenchError("bad layout \(spec)") }
                    return Layout(tensors: parts[0], elements: parts[1])
                }
            case "--steps":
                guard let value = iterator.next().flatMap(Int.init), value > 0 else { throw BenchError("--steps needs a positive count") }
                steps = value
            case "--paths":
                paths = try (iterator.next() ?? "").split(separator: ",").map {
                    guard let path = Path(rawValue: String($0)) else { throw BenchError("unknown path \($0)") }
                    return path
                }
            case "--no-torch":
                torch = false
            case "--optimizer":
                guard let value = iterator.next().flatMap(Kind.init(rawValue:)) else { throw BenchError("--optimizer needs adagrad or sgd") }
                kind = value
            default:
                throw BenchError("unknown argument \(flag)")
            }
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A float32 tensor of pseudo-random values in [-1, 1), filled in place (no temporary array).
func randomTensor(_ count: Int, seed: UInt64) throws -> Tensor {
    let tensor = try Tensor(zeros: .float32, shape: [count])
    try tensor.storage.withUnsafeMutableBytes { raw in
        let values = raw.bindMemory(to: Float.self)
        var state = seed | 1
        for index in values.indices {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            values[index] = Float(Int32(truncatingIfNeeded: state >> 32)) * 0x1p-31
        }
    }
    return tensor
}

/// Our optimizer over `layout` on each path, ready to step.
func optimizers(_ kind: Kind, _ layout: Layout, _ paths: [Path]) throws -> [Path: Optimizer] {
    var result: [Path: Optimizer] = [:]
    for path in paths {
        var parameters: [Parameter] = []
        for index in 0..<layout.tensors {
            let parameter = Parameter(try randomTensor(layout.elements, seed: UInt64(2 * index + 1)))
            parameter.grad = .dense(try randomTensor(layout.elements, seed: UInt64(2 * index + 2)))
            parameters.append(parameter)
        }
        let foreach = path == .foreach ? true : (path == .default ? false : nil), fused = path == .fused ? true : nil
        result[path] = switch kind {
        case .adagrad: try Adagrad(parameters, lr: 0.01, foreach: foreach, fused: fused)
        case .sgd: try SGD(parameters, lr: 0.01, momentum: 0.9, nesterov: true, foreach: foreach, fused: fused)
        }
    }
    return result
}

/// Arrays for the memory baseline: the same traffic per element as an Adagrad (or momentum SGD) step. Each thread
/// writes its own range only.
struct StreamBaseline: @unchecked Sendable {
    let param: UnsafeMutableBufferPointer<Float>
    let grad: UnsafeMutableBufferPointer<Float>
    let sum: UnsafeMutableBufferPointer<Float>

    init(_ count: Int) {
        param = .allocate(capacity: count)
        grad = .allocate(capacity: count)
        sum = .allocate(capacity: count)
        for buffer in [param, grad, sum] { buffer.initialize(repeating: 0.5) }
    }

    /// One pass reading param, grad and sum and writing param and sum, on every core.
    func run() {
        let count = param.count, cores = ProcessInfo.processInfo.activeProcessorCount
        DispatchQueue.concurrentPerform(iterations: cores) { [self] part in
            let range = (count * part / cores)..<(count * (part + 1) / cores)
            for index in range {
                let g = grad[index]
                sum[index] += g * g
                param[index] -= 0.001 * g
            }
        }
    }

    func deallocate() {
        for buffer in [param, grad, sum] { buffer.deallocate() }
    }
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Best seconds per step on each path with `variant` (nil: the best this CPU has), and of the
/// memory baseline, taking turns for `rounds` rounds.
func measureOurs(
    _ kind: Kind, _ layout: Layout, _ paths: [Path], variant: KernelVariant?, torchOn cpu: TorchCPU?, rounds: Int
) throws -> (paths: [Path: Double], stream: Double) {
    let stepping = try optimizers(kind, layout, paths)
    let baseline = StreamBaseline(layout.total)
    defer { baseline.deallocate() }
    func step(_ path: Path) throws {
        if let variant { try variant.run(torchOn: cpu) { try stepping[path]!.step() } } else { try stepping[path]!.step() }
    }
    for path in paths { try step(path) }
    baseline.run()
    var best: [Path: Double] = [:]
    var stream = Double.infinity
    for _ in 0..<rounds {
        for path in paths { best[path] = min(best[path] ?? .infinity, try seconds { try step(path) }) }
        stream = min(stream, seconds { baseline.run() })
    }
    return (best, stream)
}

/// torch's best seconds per step per path, or nil when torch is not available.
func measureTorch(_ kind: Kind, _ layout: Layout, _ paths: [Path], steps: Int) -> [Path: Double]? {
    let environment = ProcessInfo.processInfo.environment
    let python = environment["CKPT_TORCH_PYTHON"]
        ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/ckpt/venv-torch/bin/python").path
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../scripts/bench_adagrad_torch.py").standardizedFileURL.path
    guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.fileExists(atPath: script) else {
        print("  torch: not measured (no python at \(python) or no \(script))")
        return nil
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [
        script, "--tensors", "\(layout.tensors)", "--elements", "\(layout.elements)", "--steps", "\(steps)",
        "--paths", paths.map(\.rawValue).joined(separator: ","), "--optimizer", kind.rawValue,
    ]
    let output = Pipe()
    process.standardOutput = output
    do {
        try process.run()
    } catch {
        print("  torch: could not run \(python): \(error)")
        return nil
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0,
          let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let results = json["results"] as? [String: Double]
    else {
        print("  torch: benchmark script failed (status \(process.terminationStatus))")
        return nil
    }
    print("  torch \(json["torch"] ?? "?") with \(json["threads"] ?? "?") threads")
    var measured: [Path: Double] = [:]
    for (name, seconds) in results { if let path = Path(rawValue: name) { measured[path] = seconds } }
    return measured
}

func rate(_ elements: Int, _ seconds: Double) -> String {
    let melem = Double(elements) / seconds / 1e6
    return String(format: "%8.1f Melem/s %6.1f GB/s", melem, melem * 20 / 1000)
}

do {
    let arguments = try Arguments(CommandLine.arguments)
    let title = arguments.kind == .adagrad ? "Adagrad" : "SGD (momentum 0.9, Nesterov)"
    print("\(title) fp32 step, \(ProcessInfo.processInfo.activeProcessorCount) cores, best of \(arguments.steps) rounds")
    let variants: [KernelVariant?] = [nil] + KernelVariant.allCases.reversed().filter(\.isAvailable)
    for layout in arguments.layouts {
        print("layout \(layout.description) (\(layout.total) elements)")
        let torch = arguments.torch ? measureTorch(arguments.kind, layout, arguments.paths, steps: arguments.steps) : nil
        // Each Adagrad variant also as it runs on the kinds of CPU that have it: the square root
        // torch computes there decides which code the non-fused paths run (SGD takes none).
        let runs: [(KernelVariant?, TorchCPU?)] = variants.flatMap { variant -> [(KernelVariant?, TorchCPU?)] in
            guard arguments.kind == .adagrad else { return [(variant, nil)] }
            return switch variant {
            case .avx512?: [(variant, .intelAVX512), (variant, .amd)]
            case .avx2?: [(variant, .intelAVX2), (variant, .amd)]
            default: [(variant, nil)]
            }
        }
        for (variant, cpu) in runs {
            let (ours, stream) = try measureOurs(arguments.kind, layout, arguments.paths, variant: variant, torchOn: cpu, rounds: arguments.steps)
            let name = variant.map { "variant \($0.rawValue)" + (cpu.map { ", torch's sqrt as on \($0.rawValue)" } ?? "") }
                ?? "variant best (what runs by default here)"
            print("  \(name); memory baseline (read 3, write 2) \(rate(layout.total, stream))")
            for path in arguments.paths {
                guard let seconds = ours[path] else { continue }
                var line = "    \(path.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) ours \(rate(layout.total, seconds))"
                line += String(format: " | %.2fx memory baseline", stream / seconds)
                if path != .fused, let fused = ours[.fused] { line += String(format: ", %.2fx fused", fused / seconds) }
                if variant == nil, let theirs = torch?[path] {
                    line += " | torch \(rate(layout.total, theirs)) | \(String(format: "%.2f", theirs / seconds))x torch \(path.rawValue)"
                }
                print(line)
            }
        }
    }
} catch {
    FileHandle.standardError.write(Data("adagrad-bench: \(error)\n".utf8))
    exit(1)
}
