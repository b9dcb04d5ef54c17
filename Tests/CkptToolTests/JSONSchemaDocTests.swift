import Checkpoint
import Foundation
import Testing

// docs/CLI.md's `--json` schema tables against real output, both ways: every field a run prints is
// in its subcommand's tables, and every field of those tables is printed by one of the runs.

/// The schema tables of docs/CLI.md: subcommand → table (`document`, `NODE`, ...) → field path → type.
///
/// A table starts at a header row `| NAME field | type | meaning |` and belongs to the `## command`
/// section it is in; the first cell of each row names one or more fields in backquotes.
private let documentedSchemas: [String: [String: [String: String]]] = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/CLI.md")
    guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [:] }
    var schemas: [String: [String: [String: String]]] = [:]
    var command: String?
    var table: String?
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("## ") {
            command = line.dropFirst(3).split(separator: " ").first.map(String.init)
            table = nil
            continue
        }
        guard line.hasPrefix("|") else {
            table = nil
            continue
        }
        let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard cells.count == 3, !cells[0].hasPrefix("---") else { continue }
        if cells[0].hasSuffix(" field"), cells[1] == "type", cells[2] == "meaning" {
            table = String(cells[0].dropLast(" field".count))
            continue
        }
        guard let command, let table else { continue }
        // Between backquotes: the odd pieces of the cell split at each backquote.
        for field in cells[0].split(separator: "`", omittingEmptySubsequences: false).enumerated().filter({ $0.offset % 2 == 1 }) {
            schemas[command, default: [:]][table, default: [:]][String(field.element)] = cells[1]
        }
    }
    return schemas
}()

/// Walks documents through one subcommand's tables, collecting what is printed but not documented
/// and which documented fields were seen.
private struct SchemaWalk {
    let tables: [String: [String: String]]
    var undocumented: Set<String> = []
    var seen: Set<String> = []

    /// Checks an object's members against `table`, whose rows for it start with `prefix`.
    mutating func check(_ object: [String: Any], table: String, prefix: String) {
        for (key, value) in object {
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            guard let type = tables[table]?[path] else {
                // An object that only groups fields needs no row of its own (`totals` for `totals.tensors`).
                let hasFieldsBelow = tables[table]?.keys.contains { $0.hasPrefix(path + ".") || $0.hasPrefix(path + "[]") } ?? false
                if hasFieldsBelow, let inner = value as? [String: Any] {
                    check(inner, table: table, prefix: path)
                } else {
                    undocumented.insert("\(table) \(path)")
                }
                continue
            }
            seen.insert("\(table) \(path)")
            descend(value, type: type, table: table, path: path)
        }
    }

    /// Follows a field's value: into array elements, into a table its type names, or into rows
    /// below its path; not into `{string: T}` maps, whose member names are data.
    private mutating func descend(_ value: Any, type: String, table: String, path: String) {
        guard !type.hasPrefix("{") else { return }
        switch value {
        case let array as [Any]:
            for element in array { descend(element, type: type, table: table, path: path + "[]") }
        case let object as [String: Any]:
            let named = type.split { !$0.isLetter && $0 != "_" }.map(String.init).filter {
                $0 == $0.uppercased() && tables[$0] != nil
            }
            if named.isEmpty {
                check(object, table: table, prefix: path)
            } else {
                // `[ITEM] or [NODE]`: the table that documents the most members of this object.
                let target = named.max { a, b in
                    object.keys.filter { tables[a]?[$0] != nil }.count < object.keys.filter { tables[b]?[$0] != nil }.count
                } ?? table
                check(object, table: target, prefix: "")
            }
        default:
            break
        }
    }
}

/// Runs the tool, which must succeed or exit with one of `statuses`, and parses its JSON.
private func document(_ arguments: [String], statuses: Set<Int32> = [0]) throws -> [String: Any] {
    let result = try Tool.run(arguments)
    #expect(statuses.contains(result.status), "\(arguments): \(result.stderr)")
    return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(arguments)")
}

/// `--json` runs of one subcommand that between them print every field its schema has.
private func runs(_ command: String) throws -> [[String: Any]] {
    let directory = Tool.temporaryDirectory()
    switch command {
    case "inspect":
        let tree = directory.appendingPathComponent("tree.ckpt")
        try StateValue.dict([
                "scalars": .tuple([
                    .int(-7), .float(.nan), .string("s"), .bool(true), .none, .bytes([1, 2, 3]), .bytearray([4]), .size([2, 3]),
                    .device("cpu"), .dtype(.bfloat16), .complex(real: 1, imaginary: -2), .set([.int(1)]), .list([]),
                ]),
                "w": .tensor(try Tensor([1, 2] as [Float])),
            ]).write(to: tree, options: SaveOptions(durable: false))
        return try [
            document(["inspect", Tool.sample, "--json"]),
            document(["inspect", Tool.sample, "--json", "--depth", "1"]),
            document(["inspect", Tool.sample, "--json", "--filter", "model/*.weight"]),
            document(["inspect", Tool.fixtures.appendingPathComponent("pt/model_tied.pt").path, "--json"]),
            document(["inspect", Tool.fixtures.appendingPathComponent("pt/model_tied.pt").path, "--json", "--max-lines", "3"]),
            document(["inspect", tree.path, "--json"]),
            document(["inspect", Tool.fixtures.appendingPathComponent("objects/with_numpy.pt").path, "--json"]),
            document(["inspect", Tool.fixtures.appendingPathComponent("objects/namespace.pt").path, "--json", "--depth", "1"]),
            document(["inspect", Tool.fixtures.appendingPathComponent("dcp/two_ranks").path, "--json"]),
            document(["inspect", Tool.fixtures.appendingPathComponent("sharded/safetensors").path, "--json"]),
        ]
    case "diff":
        let bf16 = directory.appendingPathComponent("bf16.pt").path
        #expect(try Tool.run(["convert", Tool.sample, bf16, "--dtype", "bf16", "--no-sync"]).status == 0)
        return try [document(["diff", Tool.sample, bf16, "--json"], statuses: [1])]
    case "stats":
        return try [document(["stats", Tool.fixtures.appendingPathComponent("numeric/stats_input.pt").path, "--json"])]
    case "verify":
        let damaged = directory.appendingPathComponent("run.ckpt").path
        #expect(try Tool.run(["convert", Tool.sample, damaged, "--no-sync"]).status == 0)
        let blob = try ZipReader(path: damaged).requireEntry(named: "archive/data/3")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: damaged)))
        bytes[blob.dataOffset] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        return try [
            document(["verify", damaged, "--json"], statuses: [1]),
            document(["verify", Tool.fixtures.appendingPathComponent("objects/python_objects.pt").path, "--json", "--strict"], statuses: [1]),
        ]
    case "rename":
        let map = Tool.fixtures.appendingPathComponent("rename/map.json").path
        let out = directory.appendingPathComponent("out.pt").path
        return try [
            // Model and optimizer reports that rename and drop; the sample's optimizer has no param_names.
            document(["rename", Tool.fixtures.appendingPathComponent("rename/v1.pt").path, out, "--map", map, "--dry-run", "--json"]),
            document(["rename", Tool.sample, out, "--map", map, "--dry-run", "--json"]),
        ]
    case "runs":
        let run = try RunFixture.make(steps: [1, 2])
        return try [document(["runs", run.path, "--json"])]
    case "ls":
        let run = try RunFixture.make(steps: [1, 2])
        return try [document(["ls", run.path, "--json"]), document(["ls", run.path, "--json", "--run", "main"])]
    case "prune":
        let run = try RunFixture.make(steps: [1, 2, 3])
        return try [document(["prune", run.path, "--keep-last", "1", "--keep-best", "1", "--metric", "loss", "--keep-every", "2", "--dry-run", "--json"])]
    case "reconcile":
        // A repair with a detail, a save in flight (left alone), and a file that is not a checkpoint.
        let run = try RunFixture.make(steps: [1, 2])
        try RunFixture.corruptTensorBytes(RunFixture.file(run, step: 2))
        try Data().write(to: run.appendingPathComponent("checkpoints/main/notes.txt"))
        let finish = try RunFixture.holdSaveInFlight(run, step: 3)
        defer { finish() }
        return try [document(["reconcile", run.path, "--verify", "--json"])]
    default:
        Issue.record("no runs for \(command)")
        return []
    }
}

@Suite("--json schemas in docs/CLI.md")
struct JSONSchemaDocTests {
    static let commands = ["inspect", "diff", "stats", "verify", "rename", "runs", "ls", "prune", "reconcile"]

    @Test func everySubcommandWithJSONHasASchema() {
        #expect(Set(documentedSchemas.keys) == Set(Self.commands))
        for command in Self.commands {
            #expect(documentedSchemas[command]?["document"]?.isEmpty == false, "no document table for \(command)")
        }
    }

    @Test(arguments: commands)
    func printedAndDocumentedFieldsAgree(_ command: String) throws {
        let tables = try #require(documentedSchemas[command])
        var walk = SchemaWalk(tables: tables)
        for output in try runs(command) { walk.check(output, table: "document", prefix: "") }
        #expect(walk.undocumented.isEmpty, "\(command) prints fields docs/CLI.md does not give: \(walk.undocumented.sorted())")
        let documented = Set(tables.flatMap { table, rows in rows.keys.map { "\(table) \($0)" } })
        let neverPrinted = documented.subtracting(walk.seen)
        #expect(neverPrinted.isEmpty, "docs/CLI.md gives \(command) fields no run printed: \(neverPrinted.sorted())")
    }
}
