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

    let schema = "ckpt-tool/verify"
    let schemaVersion = 1
    let file: String
    let format: String
    let passed: Bool
    let checks: [Check]

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", file, format, passed, checks
    }

    init(_ report: VerificationReport) {
        file = report.file
        format = report.format.rawValue
        passed = report.passed
        checks = report.checks.map { check in
            Check(
                name: check.name, status: check.status.rawValue, detail: check.detail,
                failures: check.failures.map {
                    Failure(code: $0.code.rawValue, message: $0.message, path: $0.path, expected: $0.expected, found: $0.found)
                })
        }
    }
}
