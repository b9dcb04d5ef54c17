import ArgumentParser
import Checkpoint

/// Lets `--format ckpt|pt|safetensors` parse straight into the library's enum; the read-only
/// `legacy` format is not a value `--format` takes.
extension CheckpointFormat: ExpressibleByArgument {
    public init?(argument: String) {
        guard let format = CheckpointFormat(rawValue: argument), CheckpointFormat.writable.contains(format) else { return nil }
        self = format
    }

    public static var allValueStrings: [String] { writable.map(\.rawValue) }
}
