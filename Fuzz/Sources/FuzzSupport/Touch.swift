import Checkpoint
import Foundation

/// Loads a checkpoint through the public API and reads every tensor, so that lazily read bytes
/// (CRC checks, inflation, strided views) are exercised too. Typed errors are the expected outcome
/// for most inputs; only a crash or a sanitizer report is a finding.
public enum Touch {
    /// Opens `url` and reads everything it holds; errors are swallowed.
    public static func load(_ url: URL, verifyChecksums: Bool = true) {
        guard let value = try? StateValue(contentsOf: url, options: LoadOptions(verifyChecksums: verifyChecksums)) else { return }
        tensors(of: value)
    }

    /// Reads every tensor of `value` (and walks its key paths) ignoring typed errors.
    public static func tensors(of value: StateValue) {
        _ = value.pythonTypeName
        value.forEachTensor { path, tensor in
            _ = path.pathString
            _ = try? tensor.contiguousBytes()
        }
    }
}
