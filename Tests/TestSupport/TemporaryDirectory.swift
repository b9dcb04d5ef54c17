import Foundation

/// A new directory under the system's temporary directory, removed with everything in it when
/// the last reference goes away.
public final class TemporaryDirectory: @unchecked Sendable {
    /// The directory.
    public let url: URL

    /// Creates the directory.
    ///
    /// - Parameter prefix: The start of its name, to tell test runs' leftovers apart.
    /// - Throws: What creating the directory throws.
    public init(prefix: String = "ckpt-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// A path inside the directory.
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

extension TemporaryDirectory {
    /// A per-process directory removed when the test process exits, for directories whose URL is
    /// passed around by value (a fixture shared by a suite, a path handed to the tool under test).
    public static let processRoot: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: TemporaryDirectory.processRoot) }
        return url
    }()

    /// A new directory inside ``processRoot``.
    ///
    /// - Parameter prefix: The start of its name.
    /// - Returns: The directory, already created.
    public static func scoped(prefix: String) -> URL {
        let url = processRoot.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A copy of `source` (a file or a directory) inside a new ``scoped(prefix:)`` directory, under
    /// the same name: a fixture to damage without touching the original.
    ///
    /// - Parameters:
    ///   - source: What to copy.
    ///   - prefix: The start of the new directory's name.
    /// - Returns: The copy.
    /// - Throws: What `FileManager.copyItem` throws.
    public static func scopedCopy(of source: URL, prefix: String) throws -> URL {
        let copy = scoped(prefix: prefix).appendingPathComponent(source.lastPathComponent)
        try FileManager.default.copyItem(at: source, to: copy)
        return copy
    }
}
