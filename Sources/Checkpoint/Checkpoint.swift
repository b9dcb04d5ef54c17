import Foundation

/// A checkpoint file format.
public enum CheckpointFormat: String, Sendable, CaseIterable {
    /// ckpt's archive: a torch.save zip plus a JSON manifest (`.ckpt`).
    case ckpt
    /// A plain torch.save zip archive (`.pt`, `.pth`).
    case pt
    /// Hugging Face safetensors (`.safetensors`).
    case safetensors

    /// The format a path's extension names, or nil.
    public init?(pathExtension: String) {
        switch pathExtension.lowercased() {
        case "ckpt": self = .ckpt
        case "pt", "pth", "bin": self = .pt
        case "safetensors": self = .safetensors
        default: return nil
        }
    }
}

/// How ``Checkpoint/load(contentsOf:options:)`` reads.
public struct LoadOptions: Sendable {
    /// Verify each tensor blob's CRC-32 the first time its bytes are read (default true).
    public var verifyChecksums: Bool
    public init(verifyChecksums: Bool = true) { self.verifyChecksums = verifyChecksums }
}

/// How ``Checkpoint/save(_:to:format:options:)`` writes.
public struct SaveOptions: Sendable {
    /// fsync the file and its directory (default true). False keeps the save atomic but not durable.
    public var durable: Bool
    public init(durable: Bool = true) { self.durable = durable }
}

/// Loading and saving checkpoints in any supported format.
public enum Checkpoint {
    /// Loads a checkpoint, the format detected from the file's contents.
    ///
    /// - Parameters:
    ///   - url: The file.
    ///   - options: Checksum verification.
    /// - Returns: The tree; tensor bytes are mapped lazily and verified on first read.
    /// - Throws: ``CheckpointError`` naming the file, the entry and what was wrong.
    public static func load(contentsOf url: URL, options: LoadOptions = LoadOptions()) throws -> StateValue {
        throw CheckpointError(.unsupported, "not implemented yet", file: url.path)
    }

    /// Saves a tree atomically, the format chosen by `format` or else by the path's extension.
    ///
    /// - Parameters:
    ///   - value: The tree.
    ///   - url: The destination; replaced atomically.
    ///   - format: The format; nil infers it from the extension.
    ///   - options: Durability.
    /// - Throws: ``CheckpointError`` if the tree cannot be stored in the format or the write fails.
    public static func save(
        _ value: StateValue, to url: URL, format: CheckpointFormat? = nil, options: SaveOptions = SaveOptions()
    ) throws {
        throw CheckpointError(.unsupported, "not implemented yet", file: url.path)
    }
}
