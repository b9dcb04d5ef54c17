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
        case "pt", "pth": self = .pt
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
    /// A tree without tensors stored in a `.ckpt` manifest's `metadata` member (default nil: none),
    /// read back by ``StateValue/metadata(contentsOf:)`` without loading any tensor. Only the ckpt
    /// format has a manifest to hold it.
    public var metadata: StateValue?
    public init(durable: Bool = true, metadata: StateValue? = nil) {
        self.durable = durable
        self.metadata = metadata
    }
}

/// Loading and saving checkpoints in any supported format.
public enum Checkpoint {
    /// Loads a checkpoint, the format detected from the file's contents (not its name).
    ///
    /// Opening reads only the zip central directory and the manifest (or `data.pkl`, or the
    /// safetensors header); tensor bytes are mapped, read only when used, and checked against
    /// their CRC-32 the first time they are read.
    ///
    /// - Parameters:
    ///   - url: The file.
    ///   - options: Checksum verification.
    /// - Returns: The tree.
    /// - Throws: ``CheckpointError`` naming the file, the entry and what was wrong.
    public static func load(contentsOf url: URL, options: LoadOptions = LoadOptions()) throws -> StateValue {
        let path = url.path
        let file = try MappedFile(path: path)
        switch try detectFormat(file) {
        case .safetensors:
            return try Safetensors.read(file)
        case .ckpt, .pt:
            return try TorchArchive.read(ZipReader(mapping: file), verifyChecksums: options.verifyChecksums)
        }
    }

    /// Saves a tree atomically, the format chosen by `format` or else by the path's extension.
    ///
    /// The file is written to a temporary name in the same directory and renamed over `url`, so an
    /// interrupted save leaves the previous file intact.
    ///
    /// - Parameters:
    ///   - value: The tree.
    ///   - url: The destination.
    ///   - format: The format; nil infers it from the extension.
    ///   - options: Durability, and metadata for the ckpt format.
    /// - Throws: ``CheckpointError`` if the format cannot be inferred, the tree cannot be stored in
    ///   it, metadata is given for a format other than ckpt or holds a tensor, or the write fails.
    public static func save(
        _ value: StateValue, to url: URL, format: CheckpointFormat? = nil, options: SaveOptions = SaveOptions()
    ) throws {
        let path = url.path
        guard let format = format ?? CheckpointFormat(pathExtension: url.pathExtension) else {
            throw CheckpointError(
                .invalidArgument, "cannot tell the format from the file name", file: path,
                expected: "extension .ckpt, .pt, .pth or .safetensors", found: url.pathExtension.isEmpty ? "no extension" : "." + url.pathExtension)
        }
        if options.metadata != nil, format != .ckpt {
            throw CheckpointError(
                .invalidArgument, "metadata can only be stored in the ckpt format", file: path,
                expected: "format ckpt", found: format.rawValue)
        }
        switch format {
        case .ckpt: try TorchArchive.write(value, to: path, includeManifest: true, durable: options.durable, metadata: options.metadata)
        case .pt: try TorchArchive.write(value, to: path, includeManifest: false, durable: options.durable)
        case .safetensors: try Safetensors.write(value, to: path, sync: options.durable)
        }
    }

    /// The container kind of a file (every zip archive reports `.pt`; the reader tells ckpt from pt by the manifest).
    ///
    /// - Throws: ``CheckpointError`` `.notRecognized` (or `.unsupported` for torch's pre-1.6 format).
    static func detectFormat(_ file: MappedFile) throws -> CheckpointFormat {
        let bytes = file.bytes
        guard bytes.count > 0 else {
            throw CheckpointError(.truncated, "file is empty", file: file.path, expected: "a checkpoint")
        }
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            return .pt
        }
        if bytes.starts(with: [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]) {
            throw CheckpointError(
                .unsupported, "torch.save's legacy (pre-1.6, non-zip) format is not supported", file: file.path,
                expected: "a zip archive (torch ≥ 1.6 default); re-save with torch.save", found: "legacy magic number")
        }
        if bytes.count >= 9, bytes[8] == UInt8(ascii: "{") {
            return .safetensors
        }
        throw CheckpointError(
            .notRecognized, "not a checkpoint", file: file.path,
            expected: "a zip archive (.ckpt/.pt) or safetensors", found: "first bytes \(bytes.prefix(8).map { String($0, radix: 16) })")
    }
}
