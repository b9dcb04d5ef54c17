import Optim

/// The `--json` report of `ckpt-tool rename` (schema `ckpt-tool/rename`, version 1; see docs/CLI.md).
/// It is printed on one line with keys in declaration order, the layout it had before the other
/// documents existed.
struct RenameDocument: Encodable {
    /// What the map did to the model's keys or to the optimizer's `param_names`.
    struct Report: Encodable {
        /// A name a rule changed.
        struct Renamed: Encodable {
            let from: String
            let to: String
            let rules: [String]
        }

        /// A name a drop rule removed.
        struct Dropped: Encodable {
            let name: String
            let rules: [String]
        }

        let matching: String
        /// Why names were matched by position; absent when they were matched by name.
        let reason: String?
        let renamed: [Renamed]
        let dropped: [Dropped]
        let matched: [String]
        let missing: [String]
        let unexpected: [String]
        let reinitialized: [String]
        let notes: [String]

        init(_ report: RenameReport) {
            switch report.matching {
            case .byName: (matching, reason) = ("name", nil)
            case .positional(let why): (matching, reason) = ("position", why)
            }
            renamed = report.renamed.map { Renamed(from: $0.from, to: $0.to, rules: $0.rules) }
            dropped = report.dropped.map { Dropped(name: $0.name, rules: $0.rules) }
            matched = report.matched
            missing = report.missing
            unexpected = report.unexpected
            reinitialized = report.reinitialized
            notes = report.notes
        }
    }

    let schema = "ckpt-tool/rename"
    let schemaVersion = 1
    let input: String
    let output: String
    let written: Bool
    @Nullable var model: Report?
    @Nullable var optimizer: Report?

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", input, output, written, model, optimizer
    }

    init(_ renamed: RenamedStateDict, input: String, output: String, written: Bool) {
        self.input = input
        self.output = output
        self.written = written
        model = renamed.model.map(Report.init)
        optimizer = renamed.optimizer.map(Report.init)
    }
}
