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
