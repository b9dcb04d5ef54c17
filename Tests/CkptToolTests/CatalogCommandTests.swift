import Catalog
import Checkpoint
import Foundation
import Testing

/// Run directories made with CheckpointManager, for the catalog commands' tests.
enum RunFixture {
    /// A run directory with one checkpoint per step, each with `loss` = 1 / step unless `metrics` says otherwise.
    static func make(
        steps: [Int], run: String = "main", in directory: URL? = nil, metrics: (Int) -> [String: Double] = { ["loss": 1 / Double($0)] }
    ) throws -> URL {
        let directory = directory ?? Tool.temporaryDirectory().appendingPathComponent("run")
        let manager = try CheckpointManager(directory: directory, run: run, options: .init(durable: false))
        for step in steps { try manager.save(step: step, state: state(step: step), metrics: metrics(step)) }
        try manager.close()
        return directory
    }

    static func state(step: Int) throws -> StateValue {
        ["model": ["w": .tensor(try Tensor((0..<16).map { Float(step) + Float($0) }, shape: [4, 4]))], "step": .int(Int64(step))]
    }

    /// The file of a step of run main.
    static func file(_ directory: URL, step: Int, run: String = "main") -> URL {
        directory.appendingPathComponent("checkpoints/\(run)/\(CheckpointManager.fileName(step: step))")
    }

    /// Flips a byte of a checkpoint's first tensor blob, which its CRC-32 then no longer matches.
    static func corruptTensorBytes(_ url: URL) throws {
        let offset = try ZipReader(path: url.path).requireEntry(named: "archive/data/0").dataOffset
        var bytes = [UInt8](try Data(contentsOf: url))
        bytes[offset] ^= 0xFF
        try Data(bytes).write(to: url)
    }

    /// The steps `ls --json` lists, with their statuses.
    static func listed(_ directory: URL, run: String? = nil) throws -> [(step: Int, status: String)] {
        let result = try Tool.run(["ls", directory.path, "--json"] + (run.map { ["--run", $0] } ?? []))
        #expect(result.status == 0, "\(result.stderr)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let entries = try #require(document["checkpoints"] as? [[String: Any]])
        return try entries.map { (try #require($0["step"] as? Int), try #require($0["status"] as? String)) }
    }

    /// The paths of the checkpoint files in run main's folder.
    static func files(_ directory: URL, run: String = "main") throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("checkpoints/\(run)").path).sorted()
    }

    /// The parsed `--json` output of a successful run.
    static func json(_ arguments: [String]) throws -> [String: Any] {
        let result = try Tool.run(arguments)
        #expect(result.status == 0, "\(arguments): \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(arguments)")
    }

    /// Starts a process (CatalogTests' catalog-crash helper) whose save of `step` stays
    /// `writing` (its row inserted, no file yet) until the returned function kills it.
    static func holdSaveInFlight(_ directory: URL, step: Int) throws -> () -> Void {
        let process = Process()
        process.executableURL = Tool.binary.deletingLastPathComponent().appendingPathComponent("catalog-crash")
        process.arguments = ["writing", directory.path, String(step)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        var said = Data()
        while !String(decoding: said, as: UTF8.self).contains("writing") {
            let data = pipe.fileHandleForReading.availableData
            guard !data.isEmpty else { break }
            said += data
        }
        return {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

@Suite("ckpt-tool runs, ls, latest, prune, reconcile")
struct CatalogCommandTests {
    @Test func lsPrintsAnAlignedTable() throws {
        let directory = try RunFixture.make(steps: [100, 200, 1000])
        let result = try Tool.run(["ls", directory.path])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0].hasPrefix("step  status"), "\(result.stdout)")
        #expect(lines[0].contains("created") && lines[0].contains("metrics"), "\(result.stdout)")
        // Steps right-aligned; every column starts where its header does.
        #expect(lines[1].hasPrefix(" 100  committed"), "\(result.stdout)")
        #expect(lines[3].hasPrefix("1000  committed"), "\(result.stdout)")
        let pathColumn = try #require(lines[0].range(of: "path")).lowerBound.utf16Offset(in: lines[0])
        for (line, step) in zip(lines[1...3], [100, 200, 1000]) {
            #expect(line.dropFirst(pathColumn) == "checkpoints/main/\(CheckpointManager.fileName(step: step))", "\(result.stdout)")
            #expect(line.contains(" KiB  "), "sizes humanized: \(line)")
            #expect(line.contains("loss=\(String(format: "%.6g", 1 / Double(step)))"), "\(line)")
            #expect(line.range(of: #"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"#, options: .regularExpression) != nil, "\(line)")
        }
        #expect(lines.contains { $0.hasPrefix("totals: 3 checkpoints (3 committed)") }, "\(result.stdout)")
        #expect(result.stderr.isEmpty)
    }

    @Test func lsJSONListsEveryCheckpoint() throws {
        let directory = try RunFixture.make(steps: [10, 20, 30])
        let document = try RunFixture.json(["ls", directory.path, "--json"])
        #expect(document["schema"] as? String == "ckpt-tool/ls")
        #expect(document["schema_version"] as? Int == 1)
        let entries = try #require(document["checkpoints"] as? [[String: Any]])
        #expect(entries.map { $0["step"] as? Int } == [10, 20, 30])
        for entry in entries {
            let step = try #require(entry["step"] as? Int)
            #expect(entry["run"] as? String == "main")
            #expect(entry["status"] as? String == "committed")
            #expect(entry["path"] as? String == "checkpoints/main/\(CheckpointManager.fileName(step: step))")
            let bytes = try #require(entry["bytes"] as? Int)
            let size = try FileManager.default.attributesOfItem(atPath: RunFixture.file(directory, step: step).path)[.size] as? Int
            #expect(bytes == size)
            #expect((entry["metrics"] as? [String: Double])?["loss"] == 1 / Double(step))
            let created = try #require(entry["created"] as? String)
            #expect(created.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil, "\(created)")
        }
    }

    @Test func lsJSONListsMetricsInKeyOrder() throws {
        // Few metrics are ordered one way, many another: both must come out sorted, NaN and
        // infinities as the other documents print them.
        let many = Dictionary(uniqueKeysWithValues: (0..<12).map { ("m\(11 - $0)", Double($0)) })
        let directory = try RunFixture.make(steps: [1, 2]) { step in
            step == 1 ? ["zeta": 1, "alpha": .nan, "mid": -.infinity, "b": 0.25] : many
        }
        let result = try Tool.run(["ls", directory.path, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        func order(_ names: [String]) -> [String.Index?] { names.map { result.stdout.range(of: "\"\($0)\" : ")?.lowerBound } }
        let few = order(["alpha", "b", "mid", "zeta"])
        #expect(few.allSatisfy { $0 != nil } && few == few.sorted { $0! < $1! }, "\(result.stdout)")
        let sortedMany = order(many.keys.sorted())
        #expect(sortedMany.allSatisfy { $0 != nil } && sortedMany == sortedMany.sorted { $0! < $1! }, "\(result.stdout)")
        #expect(result.stdout.contains("\"alpha\" : \"nan\",\n") && result.stdout.contains("\"mid\" : \"-inf\",\n"), "\(result.stdout)")
        #expect(result.stdout.contains("\"b\" : 0.25,\n"), "\(result.stdout)")
    }

    @Test func runsCountsCheckpointsByStatus() throws {
        let directory = try RunFixture.make(steps: [1, 2, 3])
        _ = try RunFixture.make(steps: [5], run: "eval", in: directory)
        try RunFixture.corruptTensorBytes(RunFixture.file(directory, step: 3))
        #expect(try Tool.run(["reconcile", directory.path, "--verify"]).status == 0)
        let document = try RunFixture.json(["runs", directory.path, "--json"])
        let runs = try #require(document["runs"] as? [[String: Any]])
        #expect(runs.map { $0["name"] as? String } == ["eval", "main"])
        #expect(runs[1]["counts"] as? [String: Int] == ["committed": 2, "writing": 0, "deleting": 0, "corrupt": 1])
        #expect(runs[1]["latest_step"] as? Int == 2)
        let text = try Tool.run(["runs", directory.path])
        #expect(text.status == 0)
        #expect(text.stdout.split(separator: "\n").contains { $0.hasPrefix("main  ") && $0.contains("  2  ") }, "\(text.stdout)")
        // ls without --run shows a run column; with --run, that run only.
        let all = try Tool.run(["ls", directory.path])
        #expect(all.stdout.hasPrefix("run   step"), "\(all.stdout)")
        #expect(try RunFixture.listed(directory, run: "eval").map(\.step) == [5])
    }

    @Test func latestPrintsTheNewestCheckpoint() throws {
        let directory = try RunFixture.make(steps: [100, 200, 300])
        let result = try Tool.run(["latest", directory.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == RunFixture.file(directory, step: 300).standardizedFileURL.path + "\n")
        #expect(result.stderr.isEmpty)
        // --best: the smallest loss is the newest step; --mode max the oldest.
        #expect(try Tool.run(["latest", directory.path, "--best", "loss"]).stdout.hasSuffix("step-000000300.ckpt\n"))
        #expect(try Tool.run(["latest", directory.path, "--best", "loss", "--mode", "max"]).stdout.hasSuffix("step-000000100.ckpt\n"))
        let none = try Tool.run(["latest", directory.path, "--best", "accuracy"])
        #expect(none.status == 1)
        #expect(none.stderr.contains("no committed checkpoint of run main has the metric accuracy"), "\(none.stderr)")
    }

    @Test func latestSkipsACorruptNewestCheckpoint() throws {
        let directory = try RunFixture.make(steps: [100, 200, 300])
        try RunFixture.corruptTensorBytes(RunFixture.file(directory, step: 300))
        let result = try Tool.run(["latest", directory.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasSuffix("/checkpoints/main/step-000000200.ckpt\n"), "\(result.stdout)")
        let skipped = result.stderr.split(separator: "\n")
        #expect(skipped.count == 1, "\(result.stderr)")
        #expect(skipped.first?.hasPrefix("ckpt-tool: skipped step 300 (checkpoints/main/step-000000300.ckpt): corrupt: ") == true, "\(result.stderr)")
        #expect(result.stderr.contains("[checksumMismatch]"), "\(result.stderr)")
        // A deleted file is skipped as missing; with nothing left that verifies, exit 1.
        try FileManager.default.removeItem(at: RunFixture.file(directory, step: 200))
        try RunFixture.corruptTensorBytes(RunFixture.file(directory, step: 100))
        let none = try Tool.run(["latest", directory.path])
        #expect(none.status == 1)
        #expect(none.stdout.isEmpty)
        #expect(none.stderr.contains("skipped step 200 (checkpoints/main/step-000000200.ckpt): missing"), "\(none.stderr)")
        #expect(none.stderr.hasSuffix("none of the 3 checkpoints of run main verifies\n"), "\(none.stderr)")
    }

    @Test func latestSkipsASaveInFlight() throws {
        let directory = try RunFixture.make(steps: [100])
        let finish = try RunFixture.holdSaveInFlight(directory, step: 200)
        defer { finish() }
        let result = try Tool.run(["latest", directory.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasSuffix("step-000000100.ckpt\n"))
        #expect(result.stderr == "ckpt-tool: skipped step 200 (checkpoints/main/step-000000200.ckpt): writing\n")
        let reconcile = try RunFixture.json(["reconcile", directory.path, "--json"])
        let inProgress = try #require(reconcile["in_progress"] as? [[String: Any]])
        #expect(inProgress.map { $0["step"] as? Int } == [200])
        #expect(reconcile["repairs"] as? [Any] != nil && (reconcile["repairs"] as? [Any])!.isEmpty)
    }

    @Test func reconcileRemovesADeletedFileFromTheList() throws {
        let directory = try RunFixture.make(steps: [100, 200, 300])
        try FileManager.default.removeItem(at: RunFixture.file(directory, step: 200))
        // The catalog still records it until reconcile.
        #expect(try RunFixture.listed(directory).map(\.step) == [100, 200, 300])
        let result = try Tool.run(["reconcile", directory.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("removedMissingFile main step 200 checkpoints/main/step-000000200.ckpt\n"), "\(result.stdout)")
        #expect(result.stdout.hasSuffix("totals: 1 repair, 2 checkpoint files checked\n"), "\(result.stdout)")
        #expect(try RunFixture.listed(directory).map(\.step) == [100, 300])
        let again = try Tool.run(["reconcile", directory.path])
        #expect(again.stdout.hasPrefix("catalog matches the directory (2 files)"), "\(again.stdout)")
    }

    @Test func reconcileJSONReportsEachRepair() throws {
        let directory = try RunFixture.make(steps: [100, 200])
        try FileManager.default.removeItem(at: RunFixture.file(directory, step: 100))
        try RunFixture.corruptTensorBytes(RunFixture.file(directory, step: 200))
        try Data("notes".utf8).write(to: directory.appendingPathComponent("checkpoints/main/notes.txt"))
        let document = try RunFixture.json(["reconcile", directory.path, "--verify", "--json"])
        let repairs = try #require(document["repairs"] as? [[String: Any]])
        #expect(repairs.map { $0["kind"] as? String } == ["removedMissingFile", "markedCorrupt"])
        #expect(repairs.map { $0["step"] as? Int } == [100, 200])
        #expect((repairs[1]["detail"] as? String)?.contains("checksumMismatch") == true, "\(repairs)")
        #expect(document["unrecognized"] as? [String] == ["checkpoints/main/notes.txt"])
        #expect(try RunFixture.listed(directory).map(\.status) == ["corrupt"])
        // The text names what it left alone; a corrupt file's row stays until the file goes.
        let text = try Tool.run(["reconcile", directory.path, "--verify"])
        #expect(text.stdout == "not a checkpoint of this layout (left alone): checkpoints/main/notes.txt\n\ntotals: 0 repairs, 1 checkpoint file checked\n")
    }

    @Test func reconcileTextPrintsARepairALine() throws {
        let directory = try RunFixture.make(steps: [100, 200])
        try RunFixture.corruptTensorBytes(RunFixture.file(directory, step: 200))
        let result = try Tool.run(["reconcile", directory.path, "--verify"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4, "\(result.stdout)")
        #expect(lines[0].hasPrefix("markedCorrupt main step 200 checkpoints/main/step-000000200.ckpt: "), "\(result.stdout)")
        #expect(lines[0].contains("; caused by: ") && lines[0].hasSuffix("[checksumMismatch]"), "\(result.stdout)")
        #expect(lines[2] == "totals: 1 repair, 2 checkpoint files checked")
    }

    @Test func aDamagedCatalogIsAClearError() throws {
        let directory = try RunFixture.make(steps: [100, 200])
        // Overwrite the pages after the first (the tables' b-trees) with garbage.
        let catalog = CheckpointManager.catalogURL(in: directory)
        var bytes = [UInt8](try Data(contentsOf: catalog))
        for index in 4196..<min(bytes.count, 16384) { bytes[index] = 0x5A }
        try Data(bytes).write(to: catalog)
        for command in ["runs", "ls", "latest"] {
            let result = try Tool.run([command, directory.path])
            #expect(result.status == (command == "latest" ? 2 : 1), "\(command): \(result.stderr)")
            #expect(result.stderr.hasPrefix("ckpt-tool: \(catalog.standardizedFileURL.path): "), "\(result.stderr)")
            #expect(result.stderr.contains("[corrupt]; to fix: "), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        let repaired = try Tool.run(["reconcile", directory.path])
        #expect(repaired.status == 0, "\(repaired.stderr)")
        #expect(repaired.stdout.hasPrefix("movedCatalogAside catalog.sqlite: "), "\(repaired.stdout)")
        #expect(try RunFixture.listed(directory).map(\.step) == [100, 200])
    }

    @Test func reconcileRebuildsACatalogThatIsNotSQLite() throws {
        let directory = try RunFixture.make(steps: [100, 200])
        try Data(repeating: 0x41, count: 4096).write(to: CheckpointManager.catalogURL(in: directory))
        let broken = try Tool.run(["ls", directory.path])
        #expect(broken.status == 1)
        #expect(broken.stderr.hasPrefix("ckpt-tool: \(CheckpointManager.catalogURL(in: directory).standardizedFileURL.path): "), "\(broken.stderr)")
        #expect(broken.stderr.contains("[notADatabase]") && broken.stderr.contains("to fix: "), "\(broken.stderr)")
        #expect(broken.stderr.split(separator: "\n").count == 1, "one line: \(broken.stderr)")
        let result = try Tool.run(["reconcile", directory.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("movedCatalogAside catalog.sqlite: "), "\(result.stdout)")
        #expect(result.stdout.contains("addedUnrecordedFile main step 200"), "\(result.stdout)")
        #expect(try RunFixture.listed(directory).map(\.step) == [100, 200])
    }

    @Test func pruneDryRunChangesNothingAndPruneDeletesThePlan() throws {
        let steps = [100, 200, 300, 400, 500, 600]
        // loss is best at step 200.
        let directory = try RunFixture.make(steps: steps) { ["loss": $0 == 200 ? 0.01 : Double($0)] }
        let arguments = ["prune", directory.path, "--keep-last", "2", "--keep-best", "1", "--metric", "loss", "--keep-every", "300"]
        let files = try RunFixture.files(directory)
        let plan = try RunFixture.json(arguments + ["--dry-run", "--json"])
        #expect(plan["dry_run"] as? Bool == true)
        let run = try #require((plan["runs"] as? [[String: Any]])?.first)
        let kept = try #require(run["kept"] as? [[String: Any]])
        #expect(kept.map { $0["step"] as? Int } == [600, 500, 300, 200])
        #expect(kept.map { $0["reasons"] as? [String] } == [["last", "every"], ["last"], ["every"], ["best"]])
        let deleted = try #require(run["deleted"] as? [[String: Any]]).compactMap { $0["step"] as? Int }
        #expect(deleted == [400, 100])
        #expect(try RunFixture.files(directory) == files)
        #expect(try RunFixture.listed(directory).map(\.step) == steps)

        let text = try Tool.run(arguments + ["--dry-run"])
        let lines = text.stdout.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("delete ") }.map { $0.split(separator: " ")[1] } == ["400", "100"], "\(text.stdout)")
        #expect(lines.contains { $0.hasPrefix("keep ") && $0.hasSuffix("step-000000600.ckpt  last,every") }, "\(text.stdout)")
        #expect(text.stdout.contains("totals: 4 kept, 2 to delete ("), "\(text.stdout)")
        #expect(text.stdout.hasSuffix("); dry run: nothing was deleted\n"), "\(text.stdout)")
        #expect((run["deleted_bytes"] as? Int ?? 0) > 0)

        let result = try Tool.run(arguments)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("totals: 4 kept, 2 deleted"), "\(result.stdout)")
        #expect(try RunFixture.listed(directory).map(\.step) == [200, 300, 500, 600])
        #expect(try RunFixture.files(directory) == [200, 300, 500, 600].map { CheckpointManager.fileName(step: $0) })
    }

    @Test(arguments: [
        ["prune", "DIR"], ["prune", "DIR", "--keep-last", "0"], ["prune", "DIR", "--keep-best", "2"],
        ["prune", "DIR", "--keep-last", "2", "--metric", "loss"], ["prune", "DIR", "--keep-last", "2", "--mode", "fast"],
        ["latest", "DIR", "--mode", "max"], ["ls"],
    ])
    func usageErrors(_ arguments: [String]) throws {
        let directory = try RunFixture.make(steps: [1])
        let result = try Tool.run(arguments.map { $0 == "DIR" ? directory.path : $0 })
        #expect(result.status == 64, "\(arguments): \(result.stderr)")
        #expect(try RunFixture.files(directory).count == 1)
    }

    @Test(arguments: ["runs", "ls", "latest", "prune", "reconcile"])
    func aMissingDirectoryIsAnErrorAndIsNotCreated(_ command: String) throws {
        let missing = Tool.temporaryDirectory().appendingPathComponent("no/such/run")
        let result = try Tool.run([command, missing.path] + (command == "prune" ? ["--keep-last", "1"] : []))
        #expect(result.status == (command == "latest" ? 2 : 1), "\(result.stderr)")
        #expect(result.stderr == "ckpt-tool: \(missing.path): no such directory [notFound]\n")
        #expect(!FileManager.default.fileExists(atPath: missing.deletingLastPathComponent().path))
        #expect(!result.looksLikeCrash)
    }

    @Test(arguments: ["runs", "ls", "latest", "prune"])
    func aDirectoryWithoutACatalogIsAnErrorAndGetsNone(_ command: String) throws {
        let directory = Tool.temporaryDirectory()
        let result = try Tool.run([command, directory.path] + (command == "prune" ? ["--keep-last", "1"] : []))
        #expect(result.status == (command == "latest" ? 2 : 1), "\(result.stderr)")
        #expect(result.stderr.hasPrefix("ckpt-tool: \(directory.path)/catalog.sqlite: no catalog here [notFound]; to fix: "), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        // An empty file is not a catalog either, and stays empty.
        #expect(FileManager.default.createFile(atPath: directory.appendingPathComponent("catalog.sqlite").path, contents: nil))
        let empty = try Tool.run([command, directory.path] + (command == "prune" ? ["--keep-last", "1"] : []))
        #expect(empty.stderr.contains("an empty file, not a catalog [notFound]"), "\(empty.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["catalog.sqlite"])
        #expect(try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("catalog.sqlite").path)[.size] as? Int == 0)
    }

    @Test func aFileIsNotARunDirectory() throws {
        let result = try Tool.run(["ls", Tool.sample])
        #expect(result.status == 1)
        #expect(result.stderr.contains("not a directory") && result.stderr.hasSuffix("[invalidArgument]\n"), "\(result.stderr)")
    }

    @Test func severalRunsNeedRunForLatest() throws {
        let directory = try RunFixture.make(steps: [1])
        _ = try RunFixture.make(steps: [7], run: "eval", in: directory)
        let result = try Tool.run(["latest", directory.path])
        #expect(result.status == 2)
        #expect(result.stderr.contains("the catalog has 2 runs (eval, main): choose one with --run [invalidArgument]"), "\(result.stderr)")
        #expect(try Tool.run(["latest", directory.path, "--run", "eval"]).stdout.hasSuffix("checkpoints/eval/step-000000007.ckpt\n"))
        let unknown = try Tool.run(["ls", directory.path, "--run", "train"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no run \"train\" in the catalog (runs: eval, main) [notFound]"), "\(unknown.stderr)")
    }
}
