import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writing a DCP checkpoint the way torch's `FileSystemWriter` does: each rank writes its own data
/// file `__<rank>_0.distcp` (every item a complete torch.save archive at an offset), and one rank
/// gathers what they wrote and writes `.metadata`, which is what makes the checkpoint exist:
/// `.metadata.tmp`, fsync, rename, fsync of the directory.
extension DistributedCheckpoint {
    /// One value a rank writes: a piece of a tensor, or a value torch.save stores as bytes.
    public struct WriteItem: Sendable {
        /// What it is.
        public enum Content: Sendable {
            /// A piece of a tensor of shape `shape`, starting at `offsets` in it (the whole tensor:
            /// all zeros and its own shape). The piece's dtype is the tensor's.
            case chunk(Tensor, shape: [Int], offsets: [Int])
            /// A value that is not a tensor (an int, a list of ints, ...), saved with torch.save.
            case value(StateValue)
        }

        /// Where it sits in the tree: dict keys as strings, list indices as ints. Its flattened
        /// name, which DCP keys items by, is the keys joined with `.` (`optim.state.0.sum`).
        public var path: [StateKey]
        public var content: Content
        /// The item's place in the whole tree's order, when a plan knows it: `.metadata` lists
        /// items in tree order, as torch's does, whichever rank wrote them.
        var position: Int?

        /// An item.
        ///
        /// - Parameters:
        ///   - path: Its place in the tree.
        ///   - content: The tensor piece or value.
        public init(path: [StateKey], content: Content) {
            self.path = path
            self.content = content
        }

        /// The flattened name: the path's keys joined with `.`, as torch's `flatten_state_dict` joins them.
        public var name: String { path.map(\.description).joined(separator: ".") }
    }

    /// What one rank wrote, for the rank that writes `.metadata`; `Codable`, so that it can be sent
    /// there (as JSON over any channel) from another process.
    public struct ShardResult: Sendable, Codable, Equatable {
        /// The rank that wrote it.
        public var rank: Int
        /// Its data file's name (`__<rank>_0.distcp`).
        public var file: String
        /// Each item written, in file order.
        var entries: [Entry]

        struct Entry: Codable, Equatable {
            var name: String
            var path: [PathKey]
            /// Tensor pieces only: the dtype, the whole shape, `requires_grad`, and the piece's box.
            var dtype: String?
            var shape: [Int]?
            var requiresGrad: Bool?
            var offsets: [Int]?
            var sizes: [Int]?
            var offset: Int
            var length: Int
            /// ``WriteItem/position``.
            var position: Int?
        }

        /// A path key in JSON: a string or an int.
        struct PathKey: Codable, Equatable {
            var key: StateKey

            init(_ key: StateKey) { self.key = key }

            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let index = try? container.decode(Int64.self) { key = .int(index) } else { key = .string(try container.decode(String.self)) }
            }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                switch key {
                case .string(let text): try container.encode(text)
                case .int(let index): try container.encode(index)
                }
            }
        }
    }

    /// Alignment of each item in a data file, so each tensor's bytes are aligned in the file as in
    /// a torch.save archive of its own and map zero-copy.
    static let itemAlignment = 64

    /// Writes one rank's data file, `__<rank>_0.distcp` in `directory` (created if missing),
    /// atomically; `.metadata` is left to ``commit(_:to:options:)``.
    ///
    /// - Parameters:
    ///   - items: What this rank holds: tensor pieces and values.
    ///   - rank: This rank's number.
    ///   - directory: The checkpoint directory.
    ///   - options: Durability; ``SaveOptions/keepObjects`` for values holding Python objects.
    /// - Returns: What was written, for ``commit(_:to:options:)``.
    /// - Throws: ``CheckpointError`` `.invalidArgument` for a piece outside its tensor or of another
    ///   rank, a negative rank, an empty path or one item given twice; what writing throws.
    public static func writeShard(
        _ items: [WriteItem], rank: Int, to directory: URL, options: SaveOptions = SaveOptions()
    ) throws -> ShardResult {
        guard rank >= 0 else { throw CheckpointError(.invalidArgument, "a rank must not be negative", found: "\(rank)") }
        let name = "__\(rank)_0.distcp"
        let path = directory.appendingPathComponent(name).path
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var seen = Set<StorageIndex>()
        for item in items {
            guard !item.path.isEmpty else {
                throw CheckpointError(.invalidArgument, "a DCP item needs a path in the tree", file: path, expected: "at least one key")
            }
            var offsets: [Int]?
            if case .chunk(let tensor, let shape, let start) = item.content {
                let sizes = tensor.shape
                guard start.count == shape.count, sizes.count == shape.count,
                      zip(zip(start, sizes), shape).allSatisfy({ $0.0 >= 0 && $0.0 + $0.1 <= $1 })
                else {
                    throw CheckpointError(
                        .invalidArgument, "a tensor piece lies outside its tensor", file: path, path: item.path.pathString,
                        expected: "within shape \(shape)", found: "offsets \(start), sizes \(sizes)")
                }
                offsets = start
            }
            guard seen.insert(StorageIndex(name: item.name, offsets: offsets)).inserted else {
                throw CheckpointError(.invalidArgument, "an item is given twice", file: path, path: item.path.pathString)
            }
        }
        var entries: [ShardResult.Entry] = []
        try DurableFile.write(to: path, sync: options.durable) { descriptor in
            var position = 0
            for item in items {
                let padding = (itemAlignment - position % itemAlignment) % itemAlignment
                if padding > 0 {
                    try [UInt8](repeating: 0, count: padding).withUnsafeBytes { bytes in
                        do { try FileIO.writeAll(descriptor, bytes) } catch {
                            throw CheckpointError(.io, "cannot write the data file", file: path, cause: error)
                        }
                    }
                    position += padding
                }
                var entry = ShardResult.Entry(
                    name: item.name, path: item.path.map(ShardResult.PathKey.init), offset: position, length: 0, position: item.position)
                let value: StateValue
                switch item.content {
                case .chunk(let tensor, let shape, let offsets):
                    value = .tensor(try ownedPiece(tensor))
                    (entry.dtype, entry.shape, entry.requiresGrad) = (tensor.dtype.rawValue, shape, tensor.requiresGrad)
                    (entry.offsets, entry.sizes) = (offsets, tensor.shape)
                case .value(let stored):
                    value = stored
                }
                let contents = try TorchArchive.Contents(value, keepObjects: options.keepObjects, file: path)
                let zip = ZipWriter(fileDescriptor: descriptor, path: path, forceZip64: false, embedded: true)
                do {
                    try contents.write(to: zip)
                } catch var error as CheckpointError {
                    if error.path == nil { error.path = item.path.pathString }
                    throw error
                }
                // The whole storage, not just this piece: reading it (its CRC-32 is checked whole)
                // brought all of it in, and the other ranks' pieces fault back in when copied.
                if case .chunk(let tensor, _, _) = item.content { tensor.storage.releaseMappedPages() }
                let end = Int(lseek(descriptor, 0, SEEK_CUR))
                entry.length = end - position
                position = end
                entries.append(entry)
            }
        }
        return ShardResult(rank: rank, file: name, entries: entries)
    }

    /// The piece as torch saves it: detached, in storage of its own exactly its size (torch clones a
    /// view of larger storage, which torch.save would otherwise write whole). A contiguous piece of
    /// a mapped file is a window of the same mapping; another is copied when the writer first reads
    /// it, straight into its storage.
    private static func ownedPiece(_ tensor: Tensor) throws -> Tensor {
        var piece = tensor
        if tensor.isContiguous, tensor.storage.byteCount != tensor.byteCount,
           let window = try tensor.storage.mappedWindow(offset: tensor.storageOffset * tensor.dtype.itemSize, byteCount: tensor.byteCount) {
            piece = try Tensor(storage: window, dtype: tensor.dtype, shape: tensor.shape)
        } else if !tensor.isContiguous || tensor.storageOffset != 0 || tensor.storage.byteCount != tensor.byteCount {
            let source = tensor
            let storage = Storage(byteCount: tensor.byteCount) { destination in
                try place(source, at: source.shape.map { _ in 0 }, in: destination, shape: source.shape, itemSize: source.dtype.itemSize)
            }
            piece = try Tensor(storage: storage, dtype: tensor.dtype, shape: tensor.shape)
        }
        piece.requiresGrad = false
        piece.isParameter = false
        return piece
    }

    /// Writes `.metadata` from what the ranks wrote: atomically (`.metadata.tmp`, fsync, rename,
    /// fsync of the directory), so the checkpoint exists whole or not at all. Data files of an
    /// earlier save in the directory that the new metadata does not name are then removed.
    ///
    /// - Parameters:
    ///   - results: Every rank's ``ShardResult``.
    ///   - directory: The checkpoint directory.
    ///   - options: Durability.
    /// - Returns: The metadata written.
    /// - Throws: ``CheckpointError`` `.invalidArgument` when the ranks disagree on a tensor's dtype or
    ///   shape or an item's path, a value is written twice, or the pieces of a tensor overlap or
    ///   leave part of it out (`.corrupt`, `.outOfBounds` as reading would report); `.io` if a data
    ///   file is missing or the write fails.
    @discardableResult
    public static func commit(_ results: [ShardResult], to directory: URL, options: SaveOptions = SaveOptions()) throws -> Metadata {
        let path = directory.appendingPathComponent(metadataName).path
        var metadata = Metadata(items: [:], paths: [:])
        var written = Set<StorageIndex>()
        // Rank order, items that know their place in the tree first in that order.
        let entries = results.sorted { $0.rank < $1.rank }.flatMap { result in result.entries.map { (result.file, $0) } }
        let ordered = entries.enumerated().sorted {
            ($0.element.1.position ?? Int.max, $0.offset) < ($1.element.1.position ?? Int.max, $1.offset)
        }
        for (_, (file, entry)) in ordered {
            try metadata.add(entry, file: file, metadataPath: path, written: &written)
        }
        for (name, item) in metadata.items {
            if case .tensor(let tensor) = item {
                try Metadata.checkChunks(of: tensor, file: path, path: "state_dict_metadata/\(KeyPathSyntax.escape(name))")
            }
        }
        let files = try metadata.checkFiles(in: directory)
        let bytes = try metadata.pickled()
        try writeAtomically(bytes, to: path, durable: options.durable)
        removeStaleDataFiles(in: directory, keeping: Set(files.map(\.name)))
        return metadata
    }

    /// torch's FileSystemWriter commit: the bytes to `<path>.tmp`, fsync, rename over `path`, then
    /// (here, not in torch) fsync of the directory so the rename itself survives a crash.
    private static func writeAtomically(_ bytes: [UInt8], to path: String, durable: Bool) throws {
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CheckpointError(.io, "cannot create", file: temporary, systemCall: SystemCallError(systemCall: "open", errno: errno))
        }
        do {
            defer { close(descriptor) }
            try bytes.withUnsafeBytes { raw in
                do throws(SystemCallError) {
                    try FileIO.writeAll(descriptor, raw)
                } catch {
                    throw CheckpointError(.io, "cannot write", file: temporary, systemCall: error)
                }
            }
            if durable, fsync(descriptor) != 0 {
                throw CheckpointError(.io, "cannot fsync", file: temporary, systemCall: SystemCallError(systemCall: "fsync", errno: errno))
            }
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let failure = SystemCallError(systemCall: "rename", errno: errno)
            unlink(temporary)
            throw CheckpointError(.io, "cannot rename into place", file: path, systemCall: failure)
        }
        guard durable else { return }
        let directory = (path as NSString).deletingLastPathComponent
        let handle = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        guard handle >= 0 else { return }
        defer { close(handle) }
        if fsync(handle) != 0 {
            throw CheckpointError(.io, "cannot fsync the directory", file: directory, systemCall: SystemCallError(systemCall: "fsync", errno: errno))
        }
    }

    /// Removes `__<rank>_<n>.distcp` files the committed metadata does not name (an earlier save
    /// with more ranks); failures are ignored, as the checkpoint is already whole.
    private static func removeStaleDataFiles(in directory: URL, keeping: Set<String>) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where rank(ofFile: name) != nil && !keeping.contains(name) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }
}

extension DistributedCheckpoint.Metadata {
    /// Adds one written item, merging a tensor's pieces from every rank.
    fileprivate mutating func add(
        _ entry: DistributedCheckpoint.ShardResult.Entry, file: String, metadataPath: String, written: inout Set<DistributedCheckpoint.StorageIndex>
    ) throws {
        let path = entry.path.map(\.key)
        if let known = paths[entry.name], known != path {
            throw CheckpointError(
                .invalidArgument, "two items flatten to one DCP name", file: metadataPath, path: entry.name,
                expected: "one path", found: "\(known.pathString) and \(path.pathString)")
        }
        paths[entry.name] = path
        let location = DistributedCheckpoint.Location(file: file, offset: entry.offset, length: entry.length)
        let index: DistributedCheckpoint.StorageIndex
        if let dtypeName = entry.dtype, let shape = entry.shape, let offsets = entry.offsets, let sizes = entry.sizes {
            guard let dtype = DType(rawValue: dtypeName) else {
                throw CheckpointError(.unknownDType, "unknown dtype in a shard result", file: metadataPath, path: entry.name, found: dtypeName)
            }
            let chunk = DistributedCheckpoint.Chunk(offsets: offsets, sizes: sizes, location: location)
            switch items[entry.name] {
            case nil:
                items[entry.name] = .tensor(.init(dtype: dtype, shape: shape, chunks: [chunk], requiresGrad: entry.requiresGrad ?? false))
            case .tensor(var tensor)?:
                guard tensor.dtype == dtype, tensor.shape == shape else {
                    throw CheckpointError(
                        .invalidArgument, "ranks disagree on a tensor", file: metadataPath, path: entry.name,
                        expected: "\(tensor.dtype) \(tensor.shape)", found: "\(dtype) \(shape)")
                }
                tensor.chunks.append(chunk)
                items[entry.name] = .tensor(tensor)
            case .bytes?:
                throw CheckpointError(
                    .invalidArgument, "an item is a value on one rank and a tensor on another", file: metadataPath, path: entry.name)
            }
            index = .init(name: entry.name, offsets: offsets)
        } else {
            guard items[entry.name] == nil else {
                throw CheckpointError(.invalidArgument, "a value is written by two ranks or beside a tensor", file: metadataPath, path: entry.name)
            }
            items[entry.name] = .bytes(location: location)
            index = .init(name: entry.name, offsets: nil)
        }
        guard written.insert(index).inserted else {
            throw CheckpointError(.invalidArgument, "a tensor piece is written twice", file: metadataPath, path: index.description)
        }
    }
}
