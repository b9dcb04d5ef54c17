import Foundation

/// A checkpoint file format.
public enum CheckpointFormat: String, Sendable, CaseIterable {
    /// ckpt's archive: a torch.save zip plus a JSON manifest (`.ckpt`).
    case ckpt
    /// A plain torch.save zip archive (`.pt`, `.pth`).
    case pt
    /// Hugging Face safetensors (`.safetensors`).
    case safetensors
    /// torch.save's format before 1.6 (`_use_new_zipfile_serialization=False`): read, never
    /// written (write `.pt` instead, which every torch since 1.6 reads).
    case legacy
    /// A PyTorch Distributed Checkpoint directory: `.metadata` and `__<rank>_<n>.distcp` data
    /// files (see ``DistributedCheckpoint``). No file extension names it.
    case dcp

    /// The formats ckpt writes: every one but ``legacy``.
    public static let writable: [CheckpointFormat] = [.ckpt, .pt, .safetensors, .dcp]

    /// The format a path's extension names, or nil.
    public init?(pathExtension: String) {
        switch pathExtension.lowercased() {
        case "ckpt": self = .ckpt
        case "pt", "pth": self = .pt
        case "safetensors": self = .safetensors
        default: return nil
        }
    }

    /// The container kind of a file, told from its first bytes (not its name), or of a directory.
    ///
    /// Every zip archive reports ``pt``: only the manifest inside tells a ckpt archive from a torch.save
    /// one, and either reads the same way. A directory holding `.metadata` is ``dcp``; a Hugging Face
    /// `*.index.json` (or a directory holding one) reports the format of its shards.
    ///
    /// - Parameter url: The file or directory.
    /// - Throws: ``CheckpointError`` `.notRecognized`, `.unsupported` for torch's tar format (before
    ///   0.4), or `.io` if the file cannot be read.
    public init(contentsOf url: URL) throws {
        if let layout = try CheckpointLayout.detect(url) {
            switch layout {
            case .distributed: self = .dcp
            case .sharded(let index): self = ShardedCheckpoint.shardFormat(ofIndex: index)
            }
            return
        }
        self = try CheckpointFormat.detect(MappedFile(path: url.path))
    }

    /// The container kind of a mapped file; see ``init(contentsOf:)``.
    package static func detect(_ file: MappedFile) throws -> CheckpointFormat {
        try file.reading { try detect(file.bytes, path: file.path) }
    }

    private static func detect(_ bytes: UnsafeRawBufferPointer, path: String) throws -> CheckpointFormat {
        guard bytes.count > 0 else {
            throw CheckpointError(.truncated, "file is empty", file: path, expected: "a checkpoint")
        }
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            return .pt
        }
        if LegacyTorchSave.magicPickleLength(bytes) != nil {
            return .legacy
        }
        if bytes.count >= 262, bytes[257..<262].elementsEqual(Array("ustar".utf8)) {
            throw CheckpointError(
                .unsupported, "torch.save's tar format (torch before 0.4) is not supported", file: path,
                expected: "a zip archive, safetensors, or the pre-1.6 pickle format", found: "a tar archive")
        }
        if bytes.count >= 9, bytes[8] == UInt8(ascii: "{") {
            return .safetensors
        }
        throw CheckpointError(
            .notRecognized, "not a checkpoint", file: path,
            expected: "a zip archive (.ckpt/.pt), safetensors, or torch's pre-1.6 format", found: "first bytes \(bytes.prefix(8).map { String($0, radix: 16) })")
    }
}
