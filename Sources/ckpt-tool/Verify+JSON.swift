import Checkpoint
import CheckpointTools

/// The `--json` document of `ckpt-tool verify` (schema `ckpt-tool/verify`, version 1; see docs/CLI.md).
struct VerifyDocument: Encodable {
    /// One check and the problems it found.
    struct Check: Encodable {
        let name: String
        let status: String
        let detail: String
        let failures: [Failure]
    }

    /// One problem, as its ``CheckpointError`` tells it.
    struct Failure: Encodable {
        let code: String
        let message: String
        @Nullable var path: String?
        @Nullable var expected: String?
        @Nullable var found: String?
        /// The tensors viewing the storage record `path` names; empty for other problems.
        let tensors: [String]
        let tensorKeyPaths: [[StateKeyJSON]]

        enum CodingKeys: String, CodingKey {
            case code, message, path, expected, found, tensors, tensorKeyPaths = "tensor_key_paths"
        }
    }

    /// A global outside torch.load(weights_only=True)'s allow-list.
    struct Global: Encodable {
        let name: String
        let paths: [String]
        let keyPaths: [[StateKeyJSON]]
        @Nullable var blocker: String?
        let data: Bool

        enum CodingKeys: String, CodingKey {
            case name, paths, keyPaths = "key_paths", blocker, data
        }
    }

    let schema = "ckpt-tool/verify"
    let schemaVersion = 1
    let file: String
    let format: String
    let passed: Bool
    let status: String
    let strict: Bool
    let checks: [Check]
    let untrustedGlobals: [Global]
    let devices: [String]
    @Nullable var metadata: [String: String]?
    @Nullable var torchLoad: String?
    let dataGlobals: [String]

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", file, format, passed, status, strict, checks
        case untrustedGlobals = "untrusted_globals", devices, metadata, torchLoad = "torch_load", dataGlobals = "data_globals"
    }

    init(_ report: VerificationReport, strict: Bool) {
        file = report.file
        format = report.format.rawValue
        passed = report.passed(strict: strict)
        self.strict = strict
        status = !report.passed ? "failed" : report.hasWarnings ? "warning" : "passed"
        untrustedGlobals = (report.torchLoad?.globals ?? []).map { global in
            Global(
                name: global.name, paths: global.paths.map(\.pathString), keyPaths: global.paths.map(StateKeyJSON.path),
                blocker: global.blocker, data: global.isReadableAsData)
        }
        torchLoad = report.torchLoad?.call
        devices = report.devices
        metadata = report.metadata?.jsonObject
        dataGlobals = report.torchLoad?.dataGlobals ?? []
        checks = report.checks.map { check in
            Check(
                name: check.name, status: check.status.rawValue, detail: check.detail,
                failures: check.failures.map { failure in
                    let tensors = failure.path.flatMap { report.storageTensors[$0] } ?? []
                    return Failure(
                        code: failure.code.rawValue, message: failure.message, path: failure.path, expected: failure.expected,
                        found: failure.found, tensors: tensors.map(\.pathString), tensorKeyPaths: tensors.map(StateKeyJSON.path))
                })
        }
    }
}
