import Checkpoint
import Foundation

/// Inputs that are one file of a checkpoint directory: the other files come from a valid fixture,
/// copied once into the scratch directory, so that a mutated index or `.metadata` reaches the
/// checks and reads that follow decoding.
public enum FixtureDirectory {
    /// `Tests/Fixtures` of the ckpt checkout this package is in.
    public static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Tests/Fixtures")

    /// A directory in the scratch directory holding a copy of every file of `fixture` except `input`.
    ///
    /// - Parameters:
    ///   - fixture: The fixture directory, relative to `Tests/Fixtures`.
    ///   - input: The file name each input will be written to.
    /// - Returns: The directory.
    public static func copy(_ fixture: String, except input: String) -> URL {
        let source = fixtures.appendingPathComponent(fixture)
        let target = ScratchFile.directory.appendingPathComponent(fixture.replacingOccurrences(of: "/", with: "-"))
        try? FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: source.path)) ?? []
        precondition(!names.isEmpty, "no fixture at \(source.path)")
        for name in names where name != input {
            try? FileManager.default.removeItem(at: target.appendingPathComponent(name))
            try! FileManager.default.copyItem(at: source.appendingPathComponent(name), to: target.appendingPathComponent(name))
        }
        return target
    }

    /// Runs `body`; an error other than ``CheckpointError`` is a finding (a crash with its text).
    public static func expectingTypedErrors(_ body: () throws -> Void) {
        do {
            try body()
        } catch is CheckpointError {
        } catch {
            fatalError("an error that is not a CheckpointError: \(type(of: error)): \(error)")
        }
    }

    /// Reads every tensor of `value`, each error required to be a ``CheckpointError``.
    public static func readTensors(of value: StateValue) {
        value.forEachTensor { path, tensor in
            _ = path.pathString
            expectingTypedErrors { _ = try tensor.contiguousBytes() }
        }
    }
}
