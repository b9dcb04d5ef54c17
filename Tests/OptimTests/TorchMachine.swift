import CKernels
import Foundation
import Testing

@testable import Optim

/// The machine a torch-recorded fixture came from (its `machine` facts, written by
/// scripts/torch_machine.py), and whether this CPU reproduces torch's results there.
///
/// Fixtures whose bits depend on MKL's square root keep one variant per machine: the committed
/// file and `machines/<machine>/` beside it. A test compares against every variant this CPU
/// reproduces, under that machine's ``TorchRounding``.
struct TorchMachine: Sendable, CustomStringConvertible {
    let vendor: String
    let mklISA: String
    let threads: Int
    let madeWith: String
    /// ATen's CPU capability (`torch.backends.cpu.get_cpu_capability()`); empty when not recorded.
    let atenCapability: String

    init(vendor: String, mklISA: String, threads: Int, madeWith: String = "", atenCapability: String = "") {
        self.vendor = vendor
        self.mklISA = mklISA
        self.threads = threads
        self.madeWith = madeWith
        self.atenCapability = atenCapability
    }

    /// From a fixture's `machine` object (or an index's machine entry).
    init(facts: Any?) throws {
        guard let facts = facts as? [String: Any], let vendor = facts["cpu_vendor"] as? String,
              let mkl = facts["mkl_isa"] as? String, let threads = facts["torch_threads"] as? Int
        else { throw OptimFixtures.FixtureError(description: "machine facts incomplete: \(String(describing: facts))") }
        self.init(vendor: vendor, mklISA: mkl, threads: threads, madeWith: facts["made_with"] as? String ?? "",
                  atenCapability: facts["aten_capability"] as? String ?? "")
    }

    var rounding: TorchRounding {
        let id: ckpt_cpu_vendor = switch vendor {
        case "GenuineIntel": CKPT_VENDOR_INTEL
        case "AuthenticAMD": CKPT_VENDOR_AMD
        case "aarch64", "arm64", "armv7l", "ppc64le", "s390x", "riscv64": CKPT_VENDOR_NOT_X86
        default: CKPT_VENDOR_OTHER_X86
        }
        return TorchRounding(vendor: id, mklAVX512: mklISA == "AVX512", threads: threads)
    }

    /// Whether ATen's kernels there fuse multiply-adds as the kernels in CKernels do (x86 with AVX2
    /// or AVX-512; ATen's DEFAULT build has no FMA).
    var atenFusesMultiplyAdds: Bool { atenCapability == "AVX2" || atenCapability == "AVX512" }

    /// Whether this CPU reproduces torch.sqrt as that machine computed it, for float32 and float64.
    var sqrtIsReproducible: Bool {
        rounding.sqrtIsReproducible(float64: false) && rounding.sqrtIsReproducible(float64: true)
    }

    var description: String { "\(vendor) MKL \(mklISA)\(madeWith.isEmpty ? "" : " (\(madeWith))")" }

    /// The committed variant in `directory` and those under `directory/machines/`, each with the
    /// directory holding its files.
    static func variants(in directory: URL, factsFile: String, key: String = "machine") -> [(machine: TorchMachine, directory: URL)] {
        var directories = [directory]
        let machines = directory.appendingPathComponent("machines", isDirectory: true)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: machines.path)) ?? []
        directories += names.sorted().map { machines.appendingPathComponent($0, isDirectory: true) }
        return directories.compactMap { folder in
            guard let data = try? Data(contentsOf: folder.appendingPathComponent(factsFile)),
                  let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let machine = try? TorchMachine(facts: root[key])
            else { return nil }
            return (machine, folder)
        }
    }
}

extension TorchRounding {
    /// Whether torch.sqrt rounds alike under both (the same kernels, from the same estimates).
    func sqrtMatches(_ other: TorchRounding) -> Bool {
        let estimated: Set<UInt32> = [CKPT_SQRT_MKL_SSE_F32.rawValue, CKPT_SQRT_MKL_AVX2_F64.rawValue, CKPT_SQRT_MKL_AVX2_F32.rawValue]
        let usesEstimates = estimated.contains(sqrtF32.rawValue) || estimated.contains(sqrtF64.rawValue)
        return sqrtF32 == other.sqrtF32 && sqrtF64 == other.sqrtF64 && (!usesEstimates || estimateVendor == other.estimateVendor)
    }
}
