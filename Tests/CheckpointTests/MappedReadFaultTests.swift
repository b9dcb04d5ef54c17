import Checkpoint
import Foundation
import TestSupport
import Testing

/// A checkpoint's file cut or rewritten while a process has it mapped, as `torch.save` over the same
/// name does (it opens with O_TRUNC). Before, the next read of a tensor died of SIGBUS inside
/// libdeflate's CRC; now it is an error. Each case runs in fault-child, so that a regression kills
/// that process, not the test runner.
@Suite struct MappedReadFaultTests {
    static let child = ProcessOutput.builtExecutable("fault-child")

    /// A state with one 4 MiB tensor (so a cut to 4 KiB lands in tensor data) whose values follow
    /// from `seed`; every seed gives a file of the same size.
    static func state(seed: Float) throws -> StateValue {
        let values = (0..<(1 << 20)).map { seed + Float($0 % 1021) }
        return ["w": .tensor(try Tensor(values, shape: [1 << 20])), "b": .tensor(try Tensor([seed, 1, 2, 3], shape: [4]))]
    }

    /// The state fault-child saves for `seed` (its `state(seed:)`).
    static func childState(seed: Int) throws -> StateValue {
        let count = 1 << 18
        let values = (0..<count).map { Float(seed) + Float($0 % 1021) / 1021 }
        let small = try Tensor((0..<64).map { Float(seed * 64 + $0) }, shape: [8, 8])
        return ["model": ["w": .tensor(try Tensor(values, shape: [count])), "b": .tensor(small)], "step": .int(Int64(seed))]
    }

    /// Runs fault-child; it must end by exiting, not by a signal.
    static func run(_ arguments: [String]) throws -> String {
        let result = try ProcessOutput(running: child, arguments)
        #expect(!result.signaled, "fault-child died of signal \(result.status): \(result.output)")
        #expect(result.status == 0, "\(result.output)")
        return result.output
    }

    @Test(arguments: ["model.ckpt", "model.pt", "model.safetensors"])
    func aFileCutAfterLoadingIsATruncatedErrorOnTheNextRead(name: String) throws {
        let directory = try TemporaryDirectory()
        try Self.state(seed: 1).write(to: directory.url.appendingPathComponent(name))
        let output = try Self.run(["read", directory.path(name), "truncate"])
        #expect(output.hasPrefix("error truncated errno=0: \(directory.path(name)): the file shrank while it was being read"), "\(output)")
        #expect(output.contains("found 4096 bytes"), "\(output)")
    }

    /// Saving a loaded checkpoint whose file was cut meanwhile: the writer reads the mapped bytes
    /// (its CRC-32 faults, or `write` from the mapping fails with EFAULT): `.truncated`, and no
    /// output file.
    @Test(arguments: ["out.ckpt", "out.safetensors"])
    func savingATreeWhoseFileWasCutIsATruncatedError(output: String) throws {
        let directory = try TemporaryDirectory()
        try Self.state(seed: 1).write(to: directory.url.appendingPathComponent("model.ckpt"))
        let result = try Self.run(["read", directory.path("model.ckpt"), "truncate-save:" + directory.path(output)])
        #expect(result.hasPrefix("error truncated errno="), "\(result)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["model.ckpt"])
    }

    /// The cut lands while another thread reads the tensors over and over: some read faults.
    @Test(arguments: ["model.ckpt", "model.safetensors"])
    func aFileCutWhileItsTensorsAreReadIsATruncatedError(name: String) throws {
        let directory = try TemporaryDirectory()
        try Self.state(seed: 1).write(to: directory.url.appendingPathComponent(name))
        let output = try Self.run(["read", directory.path(name), "shrink-while-reading"])
        #expect(output.hasPrefix("error truncated errno=0:"), "\(output)")
    }

    /// Rewritten in place with other values of the same size before the first read: the pending
    /// CRC-32 check reports it instead of handing out the new bytes as the loaded tensor.
    @Test(arguments: ["model.ckpt", "model.pt"])
    func aFileRewrittenInPlaceIsAChecksumMismatchNotOtherValues(name: String) throws {
        let directory = try TemporaryDirectory()
        let original = directory.url.appendingPathComponent(name)
        let replacement = directory.url.appendingPathComponent("other-" + name)
        try Self.state(seed: 1).write(to: original)
        try Self.state(seed: 2).write(to: replacement)
        let sizes = try [original, replacement].map { try FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? Int }
        try #require(sizes[0] == sizes[1])
        let output = try Self.run(["read", original.path, "rewrite:" + replacement.path])
        #expect(output.hasPrefix("error checksumMismatch errno=0: \(original.path): archive/data/"), "\(output)")
    }

    /// The handler passes on what is not a fault in a file ckpt mapped: a process that maps a file
    /// itself and reads past its cut still dies of SIGBUS, as it would without ckpt.
    @Test func aFaultOutsideCkptsMappingsStillEndsTheProcess() throws {
        let directory = try TemporaryDirectory()
        try Self.state(seed: 1).write(to: directory.url.appendingPathComponent("model.ckpt"))
        try Data(repeating: 1, count: 1 << 16).write(to: directory.url.appendingPathComponent("own"))
        // Without Swift's crash reporter, which would hold the output pipe open for up to 30 s, and
        // without a sanitizer's report in place of the default action (`make sanitize`).
        let environment = ProcessInfo.processInfo.environment
        let result = try ProcessOutput(
            running: Self.child, ["foreign-fault", directory.path("model.ckpt"), directory.path("own")],
            environment: [
                "SWIFT_BACKTRACE": "enable=no",
                "ASAN_OPTIONS": (environment["ASAN_OPTIONS"].map { $0 + ":" } ?? "") + "handle_sigbus=0",
                "TSAN_OPTIONS": (environment["TSAN_OPTIONS"].map { $0 + ":" } ?? "") + "handle_sigbus=0",
            ])
        #expect(result.signaled && result.status == SIGBUS, "status \(result.status), signaled \(result.signaled): \(result.output)")
        #expect(result.output.contains("loaded"), "\(result.output)")
    }
}
