import Checkpoint
import Foundation
import Testing
import TestSupport

// What scripts rely on: several files in one run, absolute paths in errors, and English a person reads.

private func fixture(_ name: String) -> String { Tool.fixtures.appendingPathComponent(name).path }

/// A copy of torch's tiny run with one storage record's bytes flipped: verify fails it.
private func damagedCopy() throws -> String {
    let path = Tool.temporaryDirectory().appendingPathComponent("damaged.pt").path
    try FileManager.default.copyItem(atPath: fixture("pt/model_tied.pt"), toPath: path)
    let entry = try #require(try ZipReader(path: path).entries.first { $0.name.hasSuffix("/data/0") })
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    bytes[entry.dataOffset] ^= 0x01
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// Runs the tool from `directory`, so relative arguments are relative to it.
private func run(in directory: URL, _ arguments: [String]) throws -> Tool.Result {
    let quoted = ([Tool.binary.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
    return try Tool.run(executable: URL(fileURLWithPath: "/bin/sh"), ["-c", "cd '\(directory.path)' && exec " + quoted.joined(separator: " ")])
}

@Suite("inspect and verify: several files")
struct SeveralFilesTests {
    static let files = [fixture("pt/model_tied.pt"), fixture("safetensors/edge_shapes.safetensors"), Tool.sample]

    @Test func inspectPrintsEachFileUnderItsHeader() throws {
        let result = try Tool.run(["inspect"] + Self.files)
        #expect(result.status == 0, "\(result.stderr)")
        let singles = try Self.files.map { try Tool.run(["inspect", $0]).stdout }
        #expect(result.stdout == singles.joined(separator: "\n"), "each file as on its own, a blank line between")
        var searchFrom = result.stdout.startIndex
        for file in Self.files {
            let heading = try #require(result.stdout.range(of: "\(file)  ", range: searchFrom..<result.stdout.endIndex), "\(file)")
            searchFrom = heading.upperBound
        }
    }

    /// One file: the document itself, as always. Several: an array of the same documents, in order.
    @Test func inspectJSONIsAnArrayOfTheDocumentsForSeveralFiles() throws {
        let result = try Tool.run(["inspect"] + Self.files + ["--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let documents = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        #expect(documents.map { $0["file"] as? String } == Self.files)
        for (document, file) in zip(documents, Self.files) {
            #expect(document["schema"] as? String == "ckpt-tool/inspect")
            let single = try Tool.inspectJSON(file)
            #expect(NSDictionary(dictionary: single) == NSDictionary(dictionary: document), "\(file)")
        }
        #expect(try JSONSerialization.jsonObject(with: Data(try Tool.run(["inspect", Self.files[0], "--json"]).stdout.utf8)) is [String: Any])
    }

    @Test func inspectReportsAnUnreadableFileAndGoesOn() throws {
        let missing = "/nonexistent/model.pt"
        let result = try Tool.run(["inspect", Self.files[0], missing, Self.files[1]])
        #expect(result.status == 1)
        #expect(result.stderr == "ckpt-tool: \(missing): cannot open: No such file or directory [io]\n")
        #expect(result.stdout.contains("\(Self.files[0])  pt"))
        #expect(result.stdout.contains("\(Self.files[1])  safetensors"))
        let json = try Tool.run(["inspect", Self.files[0], missing, Self.files[1], "--json"])
        #expect(json.status == 1)
        let documents = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(documents.map { $0["file"] as? String } == [Self.files[0], Self.files[1]])
    }

    /// verify's exit status is the worst over the files: 0 < 1 (a check failed) < 2 (not checked).
    @Test func verifyExitsWithTheWorstStatus() throws {
        let good = fixture("pt/model_tied.pt")
        let damaged = try damagedCopy()
        let missing = "/nonexistent/model.pt"
        #expect(try Tool.run(["verify", good, Self.files[1]]).status == 0)
        let one = try Tool.run(["verify", good, damaged])
        #expect(one.status == 1)
        #expect(one.stdout.contains("\(good)  pt\n"))
        #expect(one.stdout.contains("\(damaged)  pt\n"))
        #expect(one.stdout.contains("\nFAIL crc32"))
        #expect(one.stdout.hasSuffix("\n\n2 files: 1 verified, 1 failed\n"), "\(one.stdout)")
        let two = try Tool.run(["verify", damaged, missing, good])
        #expect(two.status == 2)
        #expect(two.stderr.contains("ckpt-tool: \(missing): cannot open"))
        #expect(two.stdout.hasSuffix("3 files: 1 verified, 1 failed, 1 not checked\n"), "\(two.stdout)")
        #expect(try Tool.run(["verify", missing, good]).status == 2)
    }

    @Test func verifyJSONIsAnArrayOfTheDocumentsForSeveralFiles() throws {
        let damaged = try damagedCopy()
        let result = try Tool.run(["verify", fixture("pt/model_tied.pt"), damaged, "--json"])
        #expect(result.status == 1)
        let documents = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        #expect(documents.map { $0["schema"] as? String } == ["ckpt-tool/verify", "ckpt-tool/verify"])
        #expect(documents.map { $0["passed"] as? Bool } == [true, false])
        #expect(documents.map { $0["file"] as? String } == [fixture("pt/model_tied.pt"), damaged])
    }
}

@Suite("errors name absolute paths")
struct AbsoluteErrorPathTests {
    /// (arguments run in a directory holding m.pt, exit status).
    static let cases: [([String], Int32)] = [
        (["stats", "m.pt", "nothing*"], 1),
        (["extract", "m.pt", "no/such/key", "out.npy"], 1),
        (["convert", "m.pt", "out.pt", "--only", "nothing"], 1),
        (["inspect", "missing.pt"], 1),
        (["verify", "missing.pt"], 2),
        (["stats", "missing.pt"], 1),
        (["extract", "missing.pt", "w", "out.npy"], 1),
        (["inspect", "./missing.pt"], 1),
    ]

    /// Each command given a relative FILE: its error names the file by its absolute path.
    @Test(arguments: cases)
    func relativeArgumentsAreReportedAbsolute(_ arguments: [String], _ status: Int32) throws {
        let directory = Tool.temporaryDirectory()
        try FileManager.default.copyItem(atPath: fixture("pt/model_tied.pt"), toPath: directory.appendingPathComponent("m.pt").path)
        let result = try run(in: directory, arguments)
        #expect(result.status == status, "\(result.stderr)")
        let file = arguments[1].hasPrefix("./") ? String(arguments[1].dropFirst(2)) : arguments[1]
        #expect(result.stderr.hasPrefix("ckpt-tool: \(directory.path)/\(file): "), "\(result.stderr)")
    }
}

@Suite("text output counts in English")
struct PluralTests {
    @Test func oneCheckPassed() throws {
        let result = try Tool.run(["verify", fixture("safetensors/edge_shapes.safetensors")])
        #expect(result.stdout.hasSuffix("verified: 1 check passed\n"), "\(result.stdout)")
    }

    @Test func oneItemInAList() throws {
        let directory = Tool.temporaryDirectory()
        let a = directory.appendingPathComponent("a.pt")
        let b = directory.appendingPathComponent("b.pt")
        try StateValue.dict(["x": .list([.int(1)])]).write(to: a, options: SaveOptions(durable: false))
        try StateValue.dict(["x": .int(1)]).write(to: b, options: SaveOptions(durable: false))
        let result = try Tool.run(["diff", a.path, b.path])
        #expect(result.status == 1)
        #expect(result.stdout.contains("list (1 item)"), "\(result.stdout)")
        #expect(!result.stdout.contains("1 items"))
    }

    @Test func oneTensorOfOneElement() throws {
        let path = Tool.temporaryDirectory().appendingPathComponent("scalar.safetensors")
        try StateValue.dict(["s": .tensor(try Tensor([2] as [Float]).reshaped([]))]).write(to: path, options: SaveOptions(durable: false))
        let result = try Tool.run(["stats", path.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("totals: 1 tensor, 1 element, 0 NaN, 0 Inf\n"), "\(result.stdout)")
    }

    @Test func oneTensorOneStorageRecord() throws {
        let path = Tool.temporaryDirectory().appendingPathComponent("one.pt")
        try StateValue.dict(["b": .tensor(try Tensor([1] as [UInt8]))]).write(to: path, options: SaveOptions(durable: false))
        let result = try Tool.run(["verify", path.path])
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.contains("; 1 tensor, storage records present and sized"), "\(result.stdout)")
        #expect(result.stdout.contains("1 stored storage record, each starting"), "\(result.stdout)")
        #expect(result.stdout.contains("PASS devices             1 storage record saved on cpu"), "\(result.stdout)")
    }
}
