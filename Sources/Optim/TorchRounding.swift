import CKernels
import Foundation

/// What torch's CPU results depend on, so that the kernels round as torch does on one kind of machine.
///
/// torch is not bit-reproducible across CPUs: torch.sqrt on float32/float64 is MKL's, which picks a
/// kernel (not correctly rounded) by CPU vendor and instruction set; the scalar tails of ATen's
/// float16/bfloat16 loops sit where its thread count puts them. ``native`` describes
/// torch on this machine with its defaults, and is what every update uses unless a task overrides
/// ``current`` — tests do, to compare against goldens torch recorded on other kinds of machine.
struct TorchRounding: Sendable, Equatable, CustomStringConvertible {
    /// torch.sqrt's kernel for float32 and float64 on the non-fused paths.
    var sqrtF32: ckpt_torch_sqrt_kind
    var sqrtF64: ckpt_torch_sqrt_kind
    /// The vendor whose rsqrtps estimates the MKL_SSE/MKL_AVX2 square roots start from.
    var estimateVendor: ckpt_cpu_vendor
    /// torch's intra-op thread count.
    var threads: Int

    /// torch on a CPU of `vendor` whose MKL may use AVX-512, with `threads` threads.
    init(vendor: ckpt_cpu_vendor, mklAVX512: Bool, threads: Int) {
        self.init(ckpt_torch_rounding_for(vendor, mklAVX512 ? 1 : 0), threads: threads)
    }

    private init(_ rounding: ckpt_torch_rounding, threads: Int) {
        sqrtF32 = rounding.sqrt_f32
        sqrtF64 = rounding.sqrt_f64
        estimateVendor = rounding.estimate_vendor
        self.threads = threads
    }

    /// torch on this machine, with its default thread count.
    static let native = TorchRounding(ckpt_torch_rounding_native(), threads: defaultThreadCount)

    /// The rounding updates in this task reproduce.
    @TaskLocal static var current: TorchRounding = native

    /// The kernels' instruction-set variant in this task (`CKPT_ISA_BEST`: the widest the CPU has,
    /// capped by the `CKPT_ISA` environment variable). All variants round alike.
    @TaskLocal static var instructionSet: ckpt_isa = CKPT_ISA_BEST

    /// Whether this CPU can reproduce torch's float32 (`float64` false) or float64 square roots.
    func sqrtIsReproducible(float64: Bool) -> Bool {
        ckpt_torch_sqrt_reproducible(float64 ? sqrtF64 : sqrtF32, estimateVendor) != 0
    }

    var description: String {
        func name(_ kind: ckpt_torch_sqrt_kind) -> String {
            switch kind {
            case CKPT_SQRT_MKL_SSE_F32: "MKL SSE (\(vendorName) rsqrtps)"
            case CKPT_SQRT_MKL_AVX2_F64, CKPT_SQRT_MKL_AVX2_F32: "MKL AVX2 (\(vendorName) rsqrtps)"
            case CKPT_SQRT_MKL_AVX512: "MKL AVX-512"
            default: "exact"
            }
        }
        return "sqrt f32 \(name(sqrtF32)), f64 \(name(sqrtF64)); \(threads) threads"
    }

    private var vendorName: String {
        switch estimateVendor {
        case CKPT_VENDOR_INTEL: "Intel"
        case CKPT_VENDOR_AMD: "AMD"
        default: "other"
        }
    }

    /// The range at::parallel_for hands each of torch's threads for an elementwise op over `count`
    /// elements (grain 32768). Places the scalar tails of float16/bfloat16 `add(alpha:)`.
    func parallelChunk(_ count: Int) -> Int {
        let grain = 32768
        guard count >= grain, threads > 1 else { return max(count, 1) }
        let workers = min(threads, (count + grain - 1) / grain)
        return (count + workers - 1) / workers
    }

    /// torch's default intra-op thread count (at::intraop_default_num_threads): OMP_NUM_THREADS,
    /// else MKL_NUM_THREADS, else the number of physical cores.
    static let defaultThreadCount: Int = {
        let environment = ProcessInfo.processInfo.environment
        for name in ["OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
            if let value = environment[name].flatMap({ Int($0) }), value > 0 { return value }
        }
        return physicalCoreCount() ?? ProcessInfo.processInfo.activeProcessorCount
    }()

    /// Physical cores: distinct (physical id, core id) pairs in /proc/cpuinfo on Linux,
    /// hw.physicalcpu on macOS; nil where neither is available.
    private static func physicalCoreCount() -> Int? {
        #if os(macOS)
        var count: Int32 = 0
        var size = MemoryLayout<Int32>.size
        return sysctlbyname("hw.physicalcpu", &count, &size, nil, 0) == 0 && count > 0 ? Int(count) : nil
        #else
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        var cores = Set<String>()
        var physical = ""
        for line in info.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "physical id" { physical = parts[1] }
            if parts[0] == "core id" { cores.insert(physical + "/" + parts[1]) }
        }
        return cores.isEmpty ? nil : cores.count
        #endif
    }
}

/// The instruction-set variants of the Adagrad kernels, for benchmarks that compare them.
package enum KernelVariant: String, CaseIterable, Sendable {
    case baseline, avx2, avx512

    var isa: ckpt_isa {
        switch self {
        case .baseline: CKPT_ISA_BASELINE
        case .avx2: CKPT_ISA_AVX2
        case .avx512: CKPT_ISA_AVX512
        }
    }

    /// Whether this CPU runs the variant.
    package var isAvailable: Bool { ckpt_isa_available(isa) != 0 }

    /// Runs `body` with the kernels it calls on this task using this variant. With `torchOn`, they
    /// also take the code path that reproduces torch's rounding on that kind of CPU (its results
    /// are torch's only on such a CPU; its speed is what such a CPU's users get).
    package func run<R>(torchOn cpu: TorchCPU? = nil, _ body: () throws -> R) rethrows -> R {
        guard let cpu else { return try TorchRounding.$instructionSet.withValue(isa, operation: body) }
        let rounding = TorchRounding(vendor: cpu == .amd ? CKPT_VENDOR_AMD : CKPT_VENDOR_INTEL,
                                     mklAVX512: cpu == .intelAVX512, threads: TorchRounding.native.threads)
        return try TorchRounding.$current.withValue(rounding) {
            try TorchRounding.$instructionSet.withValue(isa, operation: body)
        }
    }
}

/// Kinds of x86 CPU whose torch rounds float32/float64 square roots differently.
package enum TorchCPU: String, CaseIterable, Sendable {
    case intelAVX512 = "Intel with AVX-512"
    case intelAVX2 = "Intel without AVX-512"
    case amd = "AMD"
}
