/// The torch.save zip layout, written with or without ckpt's JSON manifest.
///
/// One writer produces both `.pt` (torch's records only) and `.ckpt` (the same records plus
/// `archive/manifest.json`); one reader reads both, preferring the manifest when present so that
/// opening a `.ckpt` never runs the unpickler.
package enum TorchArchive {
    /// The top-level folder. Torch derives it from the file name; a fixed name makes the bytes
    /// independent of where the file is written ("same input, same bytes"), and torch.load accepts any.
    static let folder = "archive"
    package static let manifestName = "manifest.json"

    /// Writes `value` atomically to `path`.
    ///
    /// - Parameters:
    ///   - value: The tree.
    ///   - path: The destination.
    ///   - includeManifest: True for the ckpt format.
    ///   - durable: fsync file and directory.
    ///   - metadata: The manifest's `metadata` member (ckpt only).
    ///   - keepObjects: Write placeholders back as read (see ``SaveOptions/keepObjects``).
    ///   - dataGlobals: The data globals the file may hold (``SaveOptions/allowDataGlobals``).
    ///   - progress: ``SaveOptions/progress``.
    /// - Throws: ``CheckpointError`` if the tree cannot be pickled or the write fails.
    static func write(
        _ value: StateValue, to path: String, includeManifest: Bool, durable: Bool, metadata: StateValue? = nil,
        keepObjects: Bool = false, dataGlobals: DataGlobals = .none, progress: (@Sendable (Int, Int) -> Void)? = nil
    ) throws {
        let archive = try Contents(value, keepObjects: keepObjects, dataGlobals: dataGlobals, file: path)
        try DurableFile.write(to: path, sync: durable) { fd in
            let zip = ZipWriter(fileDescriptor: fd, path: path)
            zip.startsWriteback = durable
            try archive.write(to: zip, includeManifest: includeManifest, metadata: metadata, progress: progress)
        }
    }

    /// A tree made ready for an archive: its pickle and its storages in key order.
    struct Contents {
        let value: StateValue
        let storages: [Storage]
        let indices: [ObjectIdentifier: Int]
        let dtypes: [ObjectIdentifier: DType]
        let pickle: [UInt8]

        /// Pickles `value` (storage keys `0, 1, 2, ...` in order of first use).
        ///
        /// - Throws: ``CheckpointError`` if the tree cannot be pickled, with `file` filled in.
        init(_ value: StateValue, keepObjects: Bool, dataGlobals: DataGlobals = .none, file: String) throws {
            self.value = value
            storages = value.storagesInOrder
            var keys: [ObjectIdentifier: String] = [:]
            var indices: [ObjectIdentifier: Int] = [:]
            for (index, storage) in storages.enumerated() {
                keys[ObjectIdentifier(storage)] = String(index)
                indices[ObjectIdentifier(storage)] = index
            }
            self.indices = indices
            var dtypes: [ObjectIdentifier: DType] = [:]
            value.forEachTensor { _, tensor in
                if dtypes[ObjectIdentifier(tensor.storage)] == nil { dtypes[ObjectIdentifier(tensor.storage)] = tensor.dtype }
            }
            self.dtypes = dtypes
            do {
                pickle = try Pickler.dump(value, storageKeys: keys, keepObjects: keepObjects, dataGlobals: dataGlobals)
            } catch let error as CheckpointError {
                throw error.inFile(file)
            }
        }

        /// Writes the archive's entries and finishes it.
        ///
        /// - Parameters:
        ///   - zip: The writer, at the archive's first byte.
        ///   - includeManifest: True for the ckpt format.
        ///   - metadata: The manifest's `metadata` member (ckpt only).
        ///   - progress: ``SaveOptions/progress``.
        /// - Throws: ``CheckpointError`` if a write fails or a storage fails its pending check.
        func write(
            to zip: ZipWriter, includeManifest: Bool = false, metadata: StateValue? = nil, progress: (@Sendable (Int, Int) -> Void)? = nil
        ) throws {
            let prefix = folder + "/"
            func add(_ name: String, _ bytes: [UInt8]) throws {
                try bytes.withUnsafeBytes { _ = try zip.addEntry(name: prefix + name, bytes: $0) }
            }
            try add("data.pkl", pickle)
            try add(".format_version", Array("1".utf8))
            try add(".storage_alignment", Array("64".utf8))
            try add("byteorder", Array("little".utf8))
            var records: [Manifest.StorageRecord] = []
            let checksums = ChecksumPipeline(storages)
            defer { checksums.cancel() }
            zip.payloadProgress = WriteProgress(total: storages.reduce(0) { $0 + $1.byteCount }, report: progress)
            for (index, storage) in storages.enumerated() {
                let name = "\(prefix)data/\(index)"
                let crc = try checksums.checksum(at: index)
                let written = try storage.withUnsafeBytes {
                    try zip.addEntry(name: name, bytes: $0, precomputedCRC32: crc)
                }
                storage.releaseMappedPages()
                records.append(Manifest.StorageRecord(
                    key: String(index), record: name, dtype: dtypes[ObjectIdentifier(storage)] ?? .uint8,
                    byteCount: storage.byteCount, crc32: written.crc32, dataOffset: written.dataOffset))
            }
            zip.payloadProgress = nil
            if includeManifest {
                let text = try Manifest(storages: records, root: value, metadata: metadata).encoded(storageIndex: indices)
                try add(manifestName, Array(text.utf8))
            }
            try add("version", Array("3\n".utf8))
            try zip.finish()
        }
    }

    /// Reads a torch.save zip archive or a ckpt archive; a TorchScript archive (`torch.jit.save`)
    /// as its module's state dict (``ScriptModule/stateDict()``).
    ///
    /// - Parameters:
    ///   - reader: The opened archive.
    ///   - verifyChecksums: Check each blob's CRC-32 when its bytes are first read.
    ///   - dataGlobals: The data globals the pickle's may become values (a manifest's are values already).
    /// - Returns: The tree, with tensors viewing the mapped file.
    /// - Throws: ``CheckpointError`` for a missing or inconsistent record, or a bad pickle or manifest.
    static func read(_ reader: ZipReader, verifyChecksums: Bool, dataGlobals: DataGlobals = .none) throws -> StateValue {
        var locations: [ObjectIdentifier: String] = [:]
        return try read(reader, verifyChecksums: verifyChecksums, dataGlobals: dataGlobals, locations: &locations)
    }

    /// Reads an archive as ``read(_:verifyChecksums:dataGlobals:)`` does, and gives the location tag
    /// torch.save recorded for each storage the pickle names (`cpu`, `cuda:0`, `mps`).
    ///
    /// - Parameters:
    ///   - reader: The opened archive.
    ///   - verifyChecksums: Check each blob's CRC-32 when its bytes are first read.
    ///   - dataGlobals: The data globals the pickle's may become values.
    ///   - locations: Gets each storage's location tag, keyed by the storage object. A ckpt archive
    ///     is read from its manifest and a TorchScript archive from its module tree, which record
    ///     none, so they add nothing.
    /// - Returns: The tree.
    /// - Throws: As ``read(_:verifyChecksums:dataGlobals:)``.
    package static func read(
        _ reader: ZipReader, verifyChecksums: Bool, dataGlobals: DataGlobals = .none, locations: inout [ObjectIdentifier: String]
    ) throws -> StateValue {
        let path = reader.file.path
        let prefix = try self.prefix(of: reader)
        if reader.entry(named: prefix + TorchScriptArchive.constantsName) != nil {
            return .dict(try TorchScriptArchive.read(reader, verifyChecksums: verifyChecksums, dataGlobals: dataGlobals).stateDict())
        }
        if let order = reader.entry(named: prefix + "byteorder") {
            let text = String(decoding: try reader.contents(of: order), as: UTF8.self)
            guard text == "little" else {
                throw CheckpointError(
                    text == "big" ? .unsupported : .corrupt, "unsupported byte order", file: path, path: order.name,
                    expected: "little", found: text)
            }
        }
        if let manifest = reader.entry(named: prefix + manifestName) {
            return try readManifest(reader, manifest, verifyChecksums: verifyChecksums)
        }
        guard let pickle = reader.entry(named: prefix + "data.pkl") else {
            throw CheckpointError(.missingEntry, "no pickle in the archive", file: path, expected: prefix + "data.pkl")
        }
        return try unpickle(
            reader, pickle, records: prefix + "data/", verifyChecksums: verifyChecksums, dataGlobals: dataGlobals, locations: &locations)
    }

    /// The top-level folder every entry is in (`archive/`), as torch finds it: from the first entry.
    ///
    /// - Throws: ``CheckpointError`` for an archive without entries or whose first entry is in no folder.
    static func prefix(of reader: ZipReader) throws -> String {
        let path = reader.file.path
        guard let first = reader.entries.first else {
            throw CheckpointError(.missingEntry, "the zip archive has no entries", file: path, expected: "data.pkl")
        }
        guard let slash = first.name.firstIndex(of: "/") else {
            throw CheckpointError(
                .notRecognized, "file in archive is not in a subdirectory", file: path, path: first.name,
                expected: "<folder>/data.pkl")
        }
        return String(first.name[...slash])
    }

    /// A pickle of the archive whose persistent ids name records in `records` (`archive/data/`).
    ///
    /// - Throws: ``CheckpointError`` for a missing record, one whose size differs from what the
    ///   pickle gives, or the unpickler's errors.
    static func unpickle(
        _ reader: ZipReader, _ pickle: ZipEntry, records: String, verifyChecksums: Bool, dataGlobals: DataGlobals,
        locations: inout [ObjectIdentifier: String]
    ) throws -> StateValue {
        let path = reader.file.path
        let bytes = try reader.contents(of: pickle)
        return try bytes.withUnsafeBytes { raw in
            try Unpickler.load(raw, file: path, dataGlobals: dataGlobals, limits: reader.limits) { reference in
                let name = records + reference.key
                guard let entry = reader.entry(named: name) else {
                    throw CheckpointError(.missingEntry, "storage record missing", file: path, path: name)
                }
                guard entry.uncompressedSize == reference.byteCount else {
                    throw CheckpointError(
                        .corrupt, "storage record size does not match the pickle's shape × dtype size", file: path,
                        path: name, expected: "\(reference.byteCount) bytes", found: "\(entry.uncompressedSize) bytes")
                }
                let storage = try reader.storage(for: entry, verifyCRC: verifyChecksums)
                locations[ObjectIdentifier(storage)] = reference.location
                return storage
            }
        }
    }

    /// True when the archive holds a ckpt manifest beside its pickle (a `.ckpt` archive); false for
    /// a plain torch.save archive.
    package static func hasManifest(_ reader: ZipReader) -> Bool {
        guard let first = reader.entries.first?.name, let slash = first.firstIndex(of: "/") else { return false }
        return reader.entry(named: first[...slash] + manifestName) != nil
    }

    private static func readManifest(_ reader: ZipReader, _ entry: ZipEntry, verifyChecksums: Bool) throws -> StateValue {
        let path = reader.file.path
        let bytes = try reader.contents(of: entry, limit: .maximumJSONBytes)
        return try Manifest.decode(bytes, file: path, entry: entry.name, limits: reader.limits) { record in
            guard let blob = reader.entry(named: record.record) else {
                throw CheckpointError(.missingEntry, "storage record named by the manifest is missing", file: path, path: record.record)
            }
            guard blob.uncompressedSize == record.byteCount else {
                throw CheckpointError(
                    .corrupt, "storage record size differs from the manifest", file: path, path: record.record,
                    expected: "\(record.byteCount) bytes", found: "\(blob.uncompressedSize) bytes")
            }
            guard blob.crc32 == record.crc32 else {
                throw CheckpointError(
                    .corrupt, "storage record CRC-32 differs from the manifest", file: path, path: record.record,
                    expected: CRC32.hex(record.crc32), found: CRC32.hex(blob.crc32))
            }
            return try reader.storage(for: blob, verifyCRC: verifyChecksums)
        }.manifest.root
    }
}
