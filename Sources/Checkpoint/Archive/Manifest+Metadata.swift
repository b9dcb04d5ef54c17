import Foundation

/// The manifest's optional `metadata` member: a caller's tree without tensors, in the same node
/// encoding as `root` (docs/FORMAT.md), readable without touching any storage blob.
extension Manifest {
    /// Encodes a metadata tree.
    ///
    /// - Throws: ``CheckpointError`` `.invalidArgument` if the tree holds a tensor, `.unsupported`
    ///   if it is too deep.
    static func encodeMetadata(_ metadata: StateValue) throws -> OrderedJSON {
        try StateTreeJSON.encode(metadata) { _, path in
            throw CheckpointError(
                .invalidArgument, "metadata cannot hold tensors", path: "metadata:" + path.pathString,
                expected: "a tree of plain values", found: "a tensor")
        }
    }

    /// Reads the `metadata` member of a manifest, or nil when it has none.
    ///
    /// Only the manifest's format fields are checked; storages and the tree are not decoded.
    ///
    /// - Parameters:
    ///   - bytes: The manifest's JSON.
    ///   - file: For error messages.
    ///   - entry: The manifest's zip entry name, for error messages.
    ///   - limits: The caps the JSON is held to.
    /// - Throws: ``CheckpointError`` for JSON that does not parse, a manifest of another format or
    ///   version, or a metadata tree that holds a tensor node.
    static func decodeMetadata(_ bytes: [UInt8], file: String, entry: String, limits: ResourceLimits = .default) throws -> StateValue? {
        let (top, _) = try parseHeader(bytes, file: file, entry: entry, limits: limits)
        guard let json = top["metadata"] else { return nil }
        let tree = StateTreeJSON.Decoder(file: file, location: "\(entry)#metadata")
        return try tree.decode(json) { _, path in
            throw tree.failure("metadata holds a tensor", path, expected: "a tree of plain values", found: "a tensor")
        }
    }
}

extension StateValue {
    /// Reads the metadata a ckpt file was saved with (``SaveOptions/metadata``), without loading
    /// or checking any tensor.
    ///
    /// Only the zip central directory and `manifest.json` are read, so the cost does not grow with
    /// the size of the tensors.
    ///
    /// - Parameter url: The file.
    /// - Returns: The metadata tree; nil for a ckpt file saved without metadata, a zip archive
    ///   without a manifest (`.pt`), or a safetensors file.
    /// - Throws: ``CheckpointError`` if the file cannot be read, is not a checkpoint, or its
    ///   manifest is malformed.
    public static func metadata(contentsOf url: URL) throws -> StateValue? {
        let file = try MappedFile(path: url.path)
        let isZip = try file.reading { () throws -> Bool in
            let bytes = file.bytes
            if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return true }
            // safetensors: an 8-byte header length, then the JSON header.
            if bytes.count >= 9, bytes[8] == UInt8(ascii: "{") { return false }
            throw CheckpointError(
                .notRecognized, "not a checkpoint", file: url.path, expected: "a zip archive (.ckpt/.pt) or safetensors",
                found: bytes.isEmpty ? "an empty file" : "first bytes \(bytes.prefix(8).map { String($0, radix: 16) })")
        }
        guard isZip else { return nil }
        let reader = try ZipReader(mapping: file)
        guard let first = reader.entries.first, let slash = first.name.firstIndex(of: "/") else { return nil }
        let name = String(first.name[...slash]) + "manifest.json"
        guard let entry = reader.entry(named: name) else { return nil }
        return try Manifest.decodeMetadata(
            try reader.contents(of: entry, limit: .maximumJSONBytes), file: url.path, entry: name, limits: reader.limits)
    }
}
