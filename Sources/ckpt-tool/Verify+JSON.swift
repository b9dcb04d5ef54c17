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
    @Nullable var torchLoad: String?
    let dataGlobals: [String]

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", file, format, passed, status, strict, checks
        case untrustedGlobals = "untrusted_globals", torchLoad = "torch_load", dataGlobals = "data_globals"
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
        dataGlobals = report.torchLoad?.dataGlobals ?? []
        checks = report.checks.map { check in
            Check(
                name: check.name, status: check.status.rawValue, detail: check.detail,
                failures: check.failures.map {
                    Failure(code: $0.code.rawValue, message: $0.message, path: $0.path, expected: $0.expected, found: $0.found)
                })
        }
    }
}
