/// torch.save's format before 1.6 (`_use_new_zipfile_serialization=False`), read only.
///
/// The file is four pickles and the raw storages, one after another:
/// 1. the magic number `0x1950a86a20f9469cfc6c`;
/// 2. the protocol version, `1001`;
/// 3. `sys_info`: `{'protocol_version': 1001, 'little_endian': True, 'type_sizes': {...}}`;
/// 4. the object, whose persistent ids are `('storage', storage_type, root_key, location, numel,
///    view_metadata)` (`view_metadata` is None except in files from torch before 0.4, where it is
///    `(view_key, offset, size)`: a window of the root storage), or `('module', cls, source_file,
///    source)` for a pickled `nn.Module` class;
/// 5. the root keys of the storages, in the order their data follows;
///
/// then per key an int64 little-endian element count (elements of the storage type the object
/// first names the key with) and that many elements.
///
/// Tensors on one storage come back as views of one ``Storage``. A storage whose data starts at a
/// multiple of its element size (up to 8) is a zero-copy window into the mapped file; any other is
/// copied into aligned memory, since the format aligns nothing and ckpt's kernels read elements at
/// their natural alignment. The format has no checksums.
package enum LegacyTorchSave {
    /// The protocol version torch writes and reads (`PROTOCOL_VERSION` in torch/serialization.py).
    static let protocolVersion: Int64 = 1001

    /// `MAGIC_NUMBER`, little-endian, as pickle's LONG1 holds it.
    private static let magic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// The length of the magic-number pickle at the start of `bytes`, or nil when the file does not
    /// start with one: `PROTO n`, a FRAME at protocol 4 and 5, `LONG1` of the magic number, `STOP`.
    static func magicPickleLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 2, bytes[0] == 0x80, (2...5).contains(bytes[1]) else { return nil }
        var position = 2
        if bytes[1] >= 4 {
            let frame: [UInt8] = [0x95, 0x0D, 0, 0, 0, 0, 0, 0, 0]
            guard bytes.count >= position + frame.count, bytes[position..<position + frame.count].elementsEqual(frame) else {
                return nil
            }
            position += frame.count
        }
        let body: [UInt8] = [0x8A, 0x0A] + magic + [0x2E]
        guard bytes.count >= position + body.count, bytes[position..<position + body.count].elementsEqual(body) else {
            return nil
        }
        return position + body.count
    }

    /// Reads a legacy file.
    ///
    /// - Parameters:
    ///   - file: The mapped file.
    ///   - dataGlobals: The data globals to read as values rather than placeholders.
    ///   - limits: The resource caps its pickles are held to.
    /// - Returns: The tree, with tensors viewing the mapping or aligned copies.
    /// - Throws: ``CheckpointError`` naming the file: `.notRecognized` without the magic number;
    ///   `.unsupported` for another protocol version or a big-endian `sys_info`; the pickle errors
    ///   of ``Unpickler``; `.corrupt` for a key list that is not a list of str, names a key twice or
    ///   a key the object never uses, or for an element count that disagrees with the object's
    ///   `numel`; `.missingEntry` for a storage the object uses but the key list leaves out;
    ///   `.truncated` when a count or the data runs past the end of the file, or the file shrank
    ///   while it was read.
    package static func read(_ file: MappedFile, dataGlobals: DataGlobals = .none, limits: ResourceLimits = .default) throws -> StateValue {
        var locations: [ObjectIdentifier: String] = [:]
        return try read(file, dataGlobals: dataGlobals, limits: limits, locations: &locations)
    }

    /// Reads a legacy file as ``read(_:dataGlobals:limits:)`` does, and gives the location tag
    /// torch.save recorded for each storage (`cpu`, `cuda:0`).
    ///
    /// - Parameters:
    ///   - file: The mapped file.
    ///   - dataGlobals: The data globals to read as values.
    ///   - limits: The resource caps its pickles are held to.
    ///   - locations: Gets each storage's location tag, keyed by the storage object.
    /// - Returns: The tree.
    /// - Throws: As ``read(_:dataGlobals:limits:)``.
    package static func read(
        _ file: MappedFile, dataGlobals: DataGlobals, limits: ResourceLimits = .default, locations: inout [ObjectIdentifier: String]
    ) throws -> StateValue {
        let found = LocationLog()
        let value: StateValue
        let limits = limits.effective(fileBytes: file.count)
        do {
            value = try file.reading { try read(file.bytes, file, dataGlobals, limits, found) }
        } catch let error as CheckpointError {
            throw error.inFile(file.path)
        }
        locations.merge(found.locations) { first, _ in first }
        return value
    }

    /// Collects the storages' location tags from inside the unpickler's callbacks.
    private final class LocationLog {
        var locations: [ObjectIdentifier: String] = [:]
    }

    /// One storage the object names: its element size for the count, and its size in bytes.
    private struct Root {
        var itemSize: Int
        var byteCount: Int
    }

    private static func read(
        _ bytes: UnsafeRawBufferPointer, _ file: MappedFile, _ dataGlobals: DataGlobals, _ limits: ResourceLimits,
        _ log: LocationLog
    ) throws -> StateValue {
        guard let magicLength = magicPickleLength(bytes) else {
            throw CheckpointError(
                .notRecognized, "not a legacy torch.save file", path: "pickle 1 (magic number)",
                expected: "the pickled magic number 0x1950a86a20f9469cfc6c")
        }
        var position = magicLength
        let version = try smallPickle(bytes, at: &position, what: "pickle 2 (protocol version)", limits: limits)
        guard case .int(protocolVersion) = version else {
            throw CheckpointError(
                .unsupported, "unknown legacy protocol version", path: "pickle 2 (protocol version)",
                expected: "\(protocolVersion)", found: describe(version))
        }
        let systemInfo = try smallPickle(bytes, at: &position, what: "pickle 3 (sys_info)", limits: limits)
        guard case .dict(let info) = systemInfo else {
            throw CheckpointError(
                .corrupt, "sys_info is not a dict", path: "pickle 3 (sys_info)", found: systemInfo.pythonTypeName)
        }
        if let littleEndian = info["little_endian"], littleEndian != .bool(true) {
            throw CheckpointError(
                .unsupported, "written on a big-endian machine, whose storages ckpt cannot tell the byte order of",
                path: "pickle 3 (sys_info)", expected: "little_endian True", found: describe(littleEndian))
        }

        // The object names its storages' sizes, but their data follows the key list after the
        // object's pickle: a first run learns the sizes and where the pickle ends, a second
        // builds the tree on the storages found then.
        let objectStart = position
        var roots: [String: Root] = [:]
        let objectLength = try located("pickle 4 (the object)", at: objectStart) {
            try Unpickler.scan(rest(bytes, from: objectStart), legacyPersistentIDs: true, limits: limits) { reference in
                guard reference.byteCount <= bytes.count - objectStart else {
                    throw CheckpointError(
                        .truncated, "storage '\(reference.key)' is larger than the rest of the file",
                        path: "pickle 4 (the object)", expected: "at most \(bytes.count - objectStart) bytes",
                        found: "\(reference.byteCount) bytes")
                }
                roots[reference.key] = Root(itemSize: reference.dtype?.itemSize ?? 1, byteCount: reference.byteCount)
                // Stands in for the storage during the first run only: views are checked against its size.
                return try Storage(mapping: file, offset: objectStart, byteCount: reference.byteCount)
            }
        }
        position = objectStart + objectLength
        let keys = try keyList(try smallPickle(bytes, at: &position, what: "pickle 5 (storage keys)", limits: limits), roots: roots)

        var storages: [String: Storage] = [:]
        for key in keys {
            let root = roots[key]!
            let location = "storage '\(key)' at byte \(position)"
            guard bytes.count - position >= 8 else {
                throw CheckpointError(
                    .truncated, "the file ends before the storage's element count", path: location,
                    expected: "8 bytes", found: "\(bytes.count - position)")
            }
            let count = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: Int64.self))
            let (byteCount, overflow) = Int(count).multipliedReportingOverflow(by: root.itemSize)
            guard count >= 0, !overflow, byteCount == root.byteCount else {
                throw CheckpointError(
                    .corrupt, "the storage's element count disagrees with the object's numel", path: location,
                    expected: "\(root.byteCount / root.itemSize) elements of \(root.itemSize) bytes", found: "\(count)")
            }
            position += 8
            guard bytes.count - position >= byteCount else {
                throw CheckpointError(
                    .truncated, "the file ends inside the storage's data", path: location,
                    expected: "\(byteCount) bytes", found: "\(bytes.count - position)")
            }
            storages[key] = try storage(file, offset: position, byteCount: byteCount, itemSize: root.itemSize)
            position += byteCount
        }

        return try located("pickle 4 (the object)", at: objectStart) {
            try Unpickler.loadPrefix(
                rest(bytes, from: objectStart), legacyPersistentIDs: true, dataGlobals: dataGlobals, limits: limits
            ) { reference in
                // Every key the object names was listed (keyList checked it), so this is found.
                guard let storage = storages[reference.key] else {
                    throw CheckpointError(.missingEntry, "storage '\(reference.key)' is not in the key list")
                }
                if log.locations[ObjectIdentifier(storage)] == nil { log.locations[ObjectIdentifier(storage)] = reference.location }
                return storage
            }.value
        }
    }

    /// The mapped bytes when their start suits the element type, else an aligned copy.
    private static func storage(_ file: MappedFile, offset: Int, byteCount: Int, itemSize: Int) throws -> Storage {
        // The mapping starts on a page, so the file offset decides the alignment.
        if offset % min(itemSize, 8) == 0 {
            return try Storage(mapping: file, offset: offset, byteCount: byteCount)
        }
        return Storage(copying: try file.slice(offset: offset, length: byteCount))
    }

    /// The root keys in data order, checked against the keys the object names.
    private static func keyList(_ value: StateValue, roots: [String: Root]) throws -> [String] {
        let what = "pickle 5 (storage keys)"
        guard case .list(let elements) = value else {
            throw CheckpointError(.corrupt, "the storage keys are not a list", path: what, found: value.pythonTypeName)
        }
        var keys: [String] = []
        var seen = Set<String>()
        for element in elements {
            let key: String
            switch element {
            case .string(let text): key = text
            case .int(let number): key = String(number)
            default:
                throw CheckpointError(
                    .corrupt, "a storage key is not a str", path: what, found: element.pythonTypeName)
            }
            guard seen.insert(key).inserted else {
                throw CheckpointError(.corrupt, "storage key listed twice", path: what, found: "'\(key)'")
            }
            guard roots[key] != nil else {
                throw CheckpointError(
                    .corrupt, "the key list names a storage the object does not use", path: what, found: "'\(key)'")
            }
            keys.append(key)
        }
        if let missing = roots.keys.sorted().first(where: { !seen.contains($0) }) {
            throw CheckpointError(
                .missingEntry, "the object uses a storage the key list leaves out, so its data is not in the file",
                path: what, expected: "'\(missing)' in the list")
        }
        return keys
    }

    /// A pickle of plain values (no persistent ids), advancing `position` past it.
    private static func smallPickle(
        _ bytes: UnsafeRawBufferPointer, at position: inout Int, what: String, limits: ResourceLimits
    ) throws -> StateValue {
        guard position < bytes.count else {
            throw CheckpointError(.truncated, "the file ends before this pickle", path: what)
        }
        let start = position
        let (value, length) = try located(what, at: start) {
            try Unpickler.loadPrefix(rest(bytes, from: start), limits: limits) { reference in
                throw CheckpointError(
                    .malformedPickle, "a storage where none belongs", found: "persistent id '\(reference.key)'")
            }
        }
        position = start + length
        return value
    }

    private static func rest(_ bytes: UnsafeRawBufferPointer, from offset: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[offset...])
    }

    /// Runs `body`, naming the pickle and its place in the file in any error that has no key path.
    private static func located<T>(_ what: String, at offset: Int, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var error as CheckpointError {
            if error.path == nil { error.path = "\(what), starting at byte \(offset)" }
            throw error
        }
    }

    private static func describe(_ value: StateValue) -> String {
        switch value {
        case .int(let number): return String(number)
        case .bool(let flag): return flag ? "True" : "False"
        default: return value.pythonTypeName
        }
    }
}
