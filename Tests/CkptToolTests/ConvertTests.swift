import Checkpoint
import Foundation
import Testing

private func fixture(_ name: String) -> String { Tool.fixtures.appendingPathComponent(name).path }

private func load(_ path: String) throws -> StateValue { try StateValue(contentsOf: URL(fileURLWithPath: path)) }

@Suite("ckpt-tool convert")
struct ConvertTests {
    /// Every format pair, starting from files written by torch and by safetensors; the tree read back
    /// equals the original (types, key order, attributes, tensor bits).
    @Test(arguments: ["safetensors/all_dtypes.safetensors", "safetensors/edge_shapes.safetensors", "pt/model_tied.pt", "pt/adagrad_groups.pt", "pt/nested.pt"])
    func roundTripsThroughEveryFormat(source: String) throws {
        let directory = Tool.temporaryDirectory()
        let original = try load(fixture(source))
        var previous = fixture(source)
        for (index, name) in ["a.ckpt", "b.pt", "c.safetensors", "d.ckpt", "e.safetensors", "f.pth"].enumerated() {
            let next = directory.appendingPathComponent(name).path
            let result = try Tool.run(["convert", previous, next])
            #expect(result.status == 0, "step \(index) \(previous) → \(name): \(result.stderr)")
            #expect(result.stdout.contains("→"))
            #expect(try load(next) == original, "\(name) differs from \(source)")
            previous = next
        }
    }

    @Test func tiedWeightsStaySharedBetweenArchiveFormats() throws {
        let directory = Tool.temporaryDirectory()
        let output = directory.appendingPathComponent("tied.ckpt").path
        #expect(try Tool.run(["convert", fixture("pt/model_tied.pt"), output]).status == 0)
        let json = try Tool.inspectJSON(output)
        let totals = try #require(json["totals"] as? [String: Any])
        #expect(totals["storages"] as? Int == 8)
        #expect(totals["tensors"] as? Int == 12)
    }

    @Test func formatOptionOverridesTheExtension() throws {
        let output = Tool.temporaryDirectory().appendingPathComponent("weights.bin").path
        let result = try Tool.run(["convert", fixture("safetensors/edge_shapes.safetensors"), output, "--format", "safetensors"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try Safetensors.read(contentsOf: URL(fileURLWithPath: output)) == Safetensors.read(contentsOf: URL(fileURLWithPath: fixture("safetensors/edge_shapes.safetensors"))))
    }

    @Test func safetensorsMetadataIsKeptBetweenSafetensorsFiles() throws {
        let directory = Tool.temporaryDirectory()
        let input = fixture("safetensors/all_dtypes.safetensors")
        let direct = directory.appendingPathComponent("direct.safetensors").path
        #expect(try Tool.run(["convert", input, direct]).status == 0)
        #expect(try Safetensors.metadata(contentsOf: URL(fileURLWithPath: direct)) == Safetensors.metadata(contentsOf: URL(fileURLWithPath: input)))
        #expect(try Safetensors.metadata(contentsOf: URL(fileURLWithPath: direct))["format"] == "pt")
        #expect(try Safetensors.read(contentsOf: URL(fileURLWithPath: direct)) == Safetensors.read(contentsOf: URL(fileURLWithPath: input)))

        let viaCkpt = directory.appendingPathComponent("via.ckpt").path
        let back = directory.appendingPathComponent("back.safetensors").path
        #expect(try Tool.run(["convert", input, viaCkpt]).status == 0)
        #expect(try Tool.run(["convert", viaCkpt, back]).status == 0)
        #expect(try Safetensors.metadata(contentsOf: URL(fileURLWithPath: back)).isEmpty)
    }

    @Test(arguments: ["out.foo", "out"])
    func unknownExtensionWithoutFormatIsAUsageError(name: String) throws {
        let output = Tool.temporaryDirectory().appendingPathComponent(name).path
        let result = try Tool.run(["convert", fixture("safetensors/edge_shapes.safetensors"), output])
        #expect(result.status == 64)
        #expect(result.stderr.contains("cannot tell the output format"), "\(result.stderr)")
        #expect(result.stderr.contains("Usage:"))
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test func unknownFormatValueIsAUsageError() throws {
        let output = Tool.temporaryDirectory().appendingPathComponent("x.ckpt").path
        let result = try Tool.run(["convert", fixture("safetensors/edge_shapes.safetensors"), output, "--format", "onnx"])
        #expect(result.status == 64)
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test func badInputFailsWithoutCreatingTheOutput() throws {
        let directory = Tool.temporaryDirectory()
        let input = directory.appendingPathComponent("bad.safetensors").path
        try Data("not a checkpoint at all".utf8).write(to: URL(fileURLWithPath: input))
        let output = directory.appendingPathComponent("out.ckpt").path
        let result = try Tool.run(["convert", input, output])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("ckpt-tool: \(input): "), "\(result.stderr)")
        #expect(!result.looksLikeCrash)
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test func unwritableDestinationIsACleanError() throws {
        let result = try Tool.run(["convert", fixture("safetensors/edge_shapes.safetensors"), "/nonexistent-dir/out.safetensors"])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("ckpt-tool: "), "\(result.stderr)")
        #expect(!result.looksLikeCrash)
    }
}
