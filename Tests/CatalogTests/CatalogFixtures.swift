import Catalog
import Checkpoint
import Foundation
import TestSupport
import Testing

/// States, managers and the helper process shared by the catalog tests.
enum CatalogFixtures {
    /// A small state whose values are derived from `step` (the same as the catalog-crash helper's),
    /// with two tensors sharing one storage.
    static func state(step: Int) throws -> StateValue {
        let values = (0..<256).map { Float(step) + Float($0) / 256 }
        let weight = try Tensor(values, shape: [16, 16])
        let tied = try weight.viewed(shape: [256], strides: [1])
        return ["model": ["w": .tensor(weight), "tied": .tensor(tied)], "step": .int(Int64(step))]
    }

    /// Options for fast tests: atomic but not fsynced.
    static func options(_ retention: RetentionPolicy = .keepAll, saveInterval: Int? = nil) -> CheckpointManager.Options {
        .init(retention: retention, saveInterval: saveInterval, durable: false)
    }

    /// The built catalog-crash helper, next to the test bundle.
    static let helper = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("catalog-crash")

    /// Starts the helper.
    static func start(_ arguments: [String], environment: [String: String] = [:], output: URL? = nil) throws -> Process {
        let process = Process()
        process.executableURL = helper
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if let output {
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: output)
        }
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Flips one byte of a file in place.
    static func corrupt(_ url: URL, at offset: Int) throws {
        let handle = try FileHandle(forUpdating: url)
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let byte = try handle.read(upToCount: 1) ?? Data([0])
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: Data([byte[0] ^ 0xFF]))
    }

    /// The file offset of a checkpoint's first tensor blob.
    static func firstBlobOffset(_ url: URL) throws -> Int {
        let reader = try ZipReader(path: url.path)
        return try #require(reader.entry(named: "archive/data/0")).dataOffset
    }
}
