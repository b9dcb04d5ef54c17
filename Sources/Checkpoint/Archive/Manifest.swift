/// The JSON description of a ckpt archive (`<name>/manifest.json`): the whole state tree and every
/// storage blob, so a reader needs only a zip library and a JSON parser. Specified in docs/FORMAT.md.
package struct Manifest: Equatable {
    static let formatName = "ckpt"
    static let formatVersion = 1

    /// One storage blob, `data/<key>` in the archive.
    package struct StorageRecord: Equatable {
        package var key: String
        /// The zip entry name (`archive/data/0`).
        package var record: String
        package var dtype: DType
        package var byteCount: Int
        package var crc32: UInt32
        /// File offset of the blob's first byte (64-byte aligned).
        package var dataOffset: Int
    }

    package var storages: [StorageRecord]
    package var root: StateValue
    /// The caller's tree without tensors (``SaveOptions/metadata``), or nil for none.
    package var metadata: StateValue? = nil
}

extension Manifest {
    /// The manifest as deterministic JSON text.
    ///
    /// - Parameter storageIndex: The index in ``storages`` of each storage object in `root`.
    /// - Throws: ``CheckpointError`` for a tree too deep to describe.
    func encoded(storageIndex: [ObjectIdentifier: Int]) throws -> String {
        let root = try StateTreeJSON.encode(root, objects: true) { tensor, path in
            guard let index = storageIndex[ObjectIdentifier(tensor.storage)] else {
                throw CheckpointError(.invalidArgument, "tensor storage missing from the storage table", path: path.pathString)
            }
            return [
                ("dtype", .string(tensor.dtype.rawValue)),
                ("shape", .array(tensor.shape.map { .integer($0) })),
                ("strides", .array(tensor.strides.map { .integer($0) })),
                ("storage_offset", .integer(tensor.storageOffset)),
                ("storage", .integer(index)),
            ]
        }
        let storages: [OrderedJSON] = storages.map { storage in
            .object([
                ("key", .string(storage.key)),
                ("record", .string(storage.record)),
                ("dtype", .string(storage.dtype.rawValue)),
                ("nbytes", .integer(storage.byteCount)),
                ("crc32", .integer(storage.crc32)),
                ("offset", .integer(storage.dataOffset)),
            ])
        }
        var members: [(key: String, value: OrderedJSON)] = [
            ("format", .string(Manifest.formatName)),
            ("format_version", .integer(Manifest.formatVersion)),
            ("byteorder", .string("little")),
        ]
        if let metadata { members.append(("metadata", try Manifest.encodeMetadata(metadata))) }
        members += [("storages", .array(storages)), ("root", root)]
        let top: OrderedJSON = .object(members)
        return top.serialized + "\n"
    }

    /// Parses and validates a manifest.
    ///
    /// - Parameters:
    ///   - bytes: The JSON.
    ///   - file: For error messages.
    ///   - entry: The manifest's zip entry name, for error messages.
    ///   - limits: The caps the JSON is held to (``ResourceLimits/maximumJSONValues``).
    ///   - storage: Resolves a storage record to its bytes; called once per record, in order.
    /// - Returns: The manifest and the storage of each record.
    /// - Throws: ``CheckpointError`` naming the entry and the JSON field or key path of the first problem.
    package static func decode(
        _ bytes: [UInt8], file: String, entry: String, limits: ResourceLimits = .default,
        storage resolve: (StorageRecord) throws -> Storage
    ) throws -> (manifest: Manifest, storages: [Storage]) {
        let (top, fields) = try parseHeader(bytes, file: file, entry: entry, limits: limits)
        if top["byteorder"] != nil {
            let order = try fields.string(top, "byteorder", [])
            guard order == "little" else {
                throw fields.failure("big-endian checkpoints are not supported", [], code: .unsupported, expected: "little", found: order)
            }
        }
        var records: [StorageRecord] = []
        var storages: [Storage] = []
        for (index, json) in try fields.array(top, "storages", []).enumerated() {
            let at = StateTreeJSON.Decoder(file: file, location: "\(entry)#storages/\(index)")
            guard let crc = try at.field(json, "crc32", []).int64.flatMap(UInt32.init(exactly:)) else {
                throw at.failure("crc32 is not a 32-bit unsigned integer", [])
            }
            let record = StorageRecord(
                key: try at.string(json, "key", []), record: try at.string(json, "record", []),
                dtype: try at.dtype(json, "dtype", []), byteCount: try at.count(try at.field(json, "nbytes", []), []),
                crc32: crc, dataOffset: try at.count(try at.field(json, "offset", []), []))
            records.append(record)
            storages.append(try resolve(record))
        }
        let tree = StateTreeJSON.Decoder(file: file, location: "\(entry)#root", objects: true)
        let root = try tree.decode(try fields.field(top, "root", [])) { node, path in
            let index = try tree.count(try tree.field(node, "storage", path), path)
            guard storages.indices.contains(index) else {
                throw tree.failure("storage index out of range", path, expected: "< \(storages.count)", found: "\(index)")
            }
            do {
                return try Tensor(
                    storage: storages[index], dtype: try tree.dtype(node, "dtype", path),
                    shape: try tree.counts(node, "shape", path), strides: try tree.counts(node, "strides", path),
                    storageOffset: try tree.count(try tree.field(node, "storage_offset", path), path))
            } catch var error as CheckpointError where error.file == nil {
                error.file = file
                error.path = "\(entry)#root:\(path.pathString)"
                throw error
            }
        }
        return (Manifest(storages: records, root: root), storages)
    }
}

extension Manifest {
    /// Parses a manifest's JSON and checks its `format` and `format_version`.
    ///
    /// - Returns: The top-level object and a decoder whose errors name `entry`.
    /// - Throws: ``CheckpointError`` for JSON that does not parse or a manifest of another format
    ///   or version.
    static func parseHeader(
        _ bytes: [UInt8], file: String, entry: String, limits: ResourceLimits = .default
    ) throws -> (OrderedJSON, StateTreeJSON.Decoder) {
        let top: OrderedJSON
        do {
            top = try bytes.withUnsafeBytes { try OrderedJSON.parse($0, file: file, what: "manifest", limits: limits) }
        } catch var error as CheckpointError {
            error.path = error.path.map { "\(entry)#\($0)" } ?? entry
            throw error
        }
        let fields = StateTreeJSON.Decoder(file: file, location: entry)
        let format = try fields.string(top, "format", [])
        guard format == formatName else {
            throw fields.failure("not a ckpt manifest", [], expected: formatName, found: format)
        }
        let version = try fields.int64(try fields.field(top, "format_version", []), [])
        guard version == Int64(formatVersion) else {
            throw fields.failure("manifest format version not supported", [], code: .unsupported, expected: "\(formatVersion)", found: "\(version)")
        }
        return (top, fields)
    }
}
