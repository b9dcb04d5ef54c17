import Foundation

/// A PyTorch Distributed Checkpoint (`torch.distributed.checkpoint`, "DCP"): a directory holding
/// `.metadata` and one or more `__<rank>_<n>.distcp` data files.
///
/// Opening reads `.metadata` alone (through a restricted unpickler that knows DCP's dataclasses
/// as data: nothing is imported or run, and any other global is refused by name) and checks it:
/// every chunk inside its tensor, no two chunks of a tensor overlapping, the chunks covering the
/// tensor, every item's bytes inside a data file that exists. ``load(options:)`` then builds the
/// tree torch's `dcp_to_torch_save` builds: the flattened names (`optim.state.0.sum`) put back
/// into nested dicts and lists by the planner data, each tensor whole, each non-tensor value
/// decoded from its torch.save bytes.
///
/// A tensor saved as one chunk is a zero-copy view of its data file; a tensor saved in chunks
/// (one per rank of a sharded DTensor) is assembled into owned memory the first time its bytes
/// are read, so loading stays cheap until the data is used.
public struct DistributedCheckpoint: Sendable {
    /// The checkpoint directory.
    public let directory: URL
    /// What `.metadata` says.
    public let metadata: Metadata
    /// Each data file the metadata names, with its size on disk, in name order.
    public let files: [DataFile]

    /// The name of the metadata file in a checkpoint directory.
    public static let metadataName = ".metadata"

    /// Opens a checkpoint directory: reads and checks `.metadata`, and the size of each data file
    /// it names; no data is read.
    ///
    /// - Parameters:
    ///   - directory: The checkpoint directory.
    ///   - limits: The resource caps.
    /// - Throws: ``CheckpointError`` naming the file and the item: `.io` or `.missingEntry` when
    ///   `.metadata` or a data file is missing, `.forbiddenGlobal` for a global outside DCP's
    ///   dataclasses and torch's weights-only allow-list, `.malformedPickle`/`.corrupt` for a
    ///   metadata pickle of another shape, `.outOfBounds` for a chunk outside its tensor or an item
    ///   past the end of its file, `.corrupt` for overlapping chunks or chunks that leave part of a
    ///   tensor uncovered, `.unknownDType` for a dtype ckpt has no ``DType`` for;
    ///   `.limitExceeded` for a `.metadata` past a cap of `limits` (its size, memo, values, chunks
    ///   in all or of one tensor), or tensors that declare more bytes than the data files hold
    ///   plus ``ResourceLimits/maximumBytesBeyondFileSize``.
    public init(contentsOf directory: URL, limits: ResourceLimits = .default) throws {
        self.directory = directory
        let path = directory.appendingPathComponent(Self.metadataName).path
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch let error as CheckpointError where error.code == .io {
            let others = (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?
                .filter { $0.hasSuffix(".metadata") }.sorted() ?? []
            if !others.isEmpty {
                throw CheckpointError(
                    .unsupported, "a DCP checkpoint without a global .metadata (saved with use_collectives=False) is not supported",
                    file: directory.path, expected: Self.metadataName, found: others.joined(separator: ", "))
            }
            throw error
        }
        let limits = limits.effective(fileBytes: ResourceLimits.directoryBytes(directory))
        metadata = try withExtendedLifetime(file) { try Metadata(pickle: file.bytes, file: path, limits: limits) }
        files = try metadata.checkFiles(in: directory)
        try checkDeclaredBytes(limits: limits, file: path)
    }

    /// Tensors assembled from chunks are allocated, not mapped: their declared bytes may exceed
    /// what the data files hold by the allowance only, however many chunks share one item's bytes.
    private func checkDeclaredBytes(limits: ResourceLimits, file: String) throws {
        var declared = 0
        for case (_, .tensor(let tensor)) in metadata.items {
            let bytes = (try? Tensor.checkedElementCount(tensor.shape))
                .map { $0.multipliedReportingOverflow(by: tensor.dtype.itemSize) }
            let add = bytes.map { $0.overflow ? Int.max : $0.partialValue } ?? .max
            declared = declared.addingReportingOverflow(add).overflow ? .max : declared + add
        }
        let stored = files.reduce(0) { $0 + $1.byteCount }
        let (allowed, overflow) = stored.addingReportingOverflow(limits.maximumBytesBeyondFileSize)
        guard overflow || declared <= allowed else {
            throw limits.exceeded(
                .maximumBytesBeyondFileSize, found: "\(declared) tensor bytes declared over \(stored) bytes of data files",
                what: "tensor bytes declared beyond the data files' size", file: file)
        }
    }

    /// True when `directory` holds a `.metadata` file: what tells a DCP checkpoint from other
    /// directories.
    package static func isCheckpoint(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(metadataName).path)
    }
}

extension DistributedCheckpoint {
    /// `.metadata`: what each saved item is, where it sits in the tree, and where its bytes are.
    public struct Metadata: Sendable, Equatable {
        /// Every saved item by its flattened name (`model.weight`, `optim.state.0.sum`), in the
        /// order torch recorded them (`state_dict_metadata`).
        public var items: OrderedMap<String, Item>
        /// Where each flattened name goes in the nested tree (`planner_data`): dict keys as
        /// strings, list indices as ints (`optim.param_groups.0.lr` → `optim`, `param_groups`, 0,
        /// `lr`). A name without an entry is a key of the root.
        public var paths: OrderedMap<String, [StateKey]>
        /// The metadata format version (`"1.0.0"` in torch 2.4 and later), nil in older files.
        public var version: String?
        /// The path `dcp.save` was given (`storage_meta.checkpoint_id`), when recorded.
        public var checkpointID: String?

        /// Metadata made of its parts.
        ///
        /// - Parameters:
        ///   - items: The items by flattened name, in order, each chunk and value with where its
        ///     bytes are.
        ///   - paths: Each name's place in the nested tree.
        ///   - version: The format version.
        ///   - checkpointID: The path the checkpoint was saved to.
        public init(
            items: OrderedMap<String, Item>, paths: OrderedMap<String, [StateKey]>, version: String? = "1.0.0", checkpointID: String? = nil
        ) {
            self.items = items
            self.paths = paths
            self.version = version
            self.checkpointID = checkpointID
        }

        /// Where each item's bytes are, by torch's key (`storage_data`): a tensor chunk by its name
        /// and offsets, a value by its name alone. Made from the items at each call; the items
        /// themselves hold each ``Chunk/location``.
        public var locations: [StorageIndex: Location] {
            var locations: [StorageIndex: Location] = [:]
            for (name, item) in items {
                switch item {
                case .bytes(let location?):
                    locations[StorageIndex(name: name, offsets: nil)] = location
                case .bytes(nil):
                    break
                case .tensor(let tensor):
                    for chunk in tensor.chunks {
                        if let location = chunk.location { locations[StorageIndex(name: name, offsets: chunk.offsets)] = location }
                    }
                }
            }
            return locations
        }
    }

    /// One saved item: a tensor in one or more chunks, or a non-tensor value saved as
    /// torch.save bytes (`BytesStorageMetadata`).
    public enum Item: Sendable, Equatable {
        /// A tensor, in chunks.
        case tensor(TensorItem)
        /// A value torch.save stored (its type is known only once the bytes are read), and where
        /// those bytes are: nil until a storage entry gives it.
        case bytes(location: Location?)
    }

    /// A tensor item (`TensorStorageMetadata`).
    public struct TensorItem: Sendable, Equatable {
        /// The element type.
        public var dtype: DType
        /// The whole tensor's shape.
        public var shape: [Int]
        /// The pieces it was saved in; they cover the tensor without overlapping.
        public var chunks: [Chunk]
        /// `requires_grad` when saved; torch's loader does not restore it, nor does ckpt's.
        public var requiresGrad: Bool

        /// A tensor item.
        ///
        /// - Parameters:
        ///   - dtype: Element type.
        ///   - shape: The whole tensor's shape.
        ///   - chunks: Its pieces.
        ///   - requiresGrad: `requires_grad` when saved.
        public init(dtype: DType, shape: [Int], chunks: [Chunk], requiresGrad: Bool = false) {
            self.dtype = dtype
            self.shape = shape
            self.chunks = chunks
            self.requiresGrad = requiresGrad
        }
    }

    /// A box of a tensor saved as one piece (`ChunkStorageMetadata`): where it starts and how
    /// large it is in each dimension, and where its bytes are (its `storage_data` entry).
    public struct Chunk: Sendable, Hashable {
        /// Where the chunk starts in the tensor, per dimension.
        public var offsets: [Int]
        /// Its size in each dimension.
        public var sizes: [Int]
        /// Where its bytes are; nil until a storage entry gives it. Opening a checkpoint checks
        /// that every chunk has one.
        public var location: Location?

        /// A chunk.
        ///
        /// - Parameters:
        ///   - offsets: Where it starts, per dimension.
        ///   - sizes: Its size in each dimension.
        ///   - location: Where its bytes are.
        public init(offsets: [Int], sizes: [Int], location: Location? = nil) {
            self.offsets = offsets
            self.sizes = sizes
            self.location = location
        }

        /// Elements in the chunk.
        public var elementCount: Int { sizes.reduce(1, *) }
    }

    /// What names an item's bytes (`MetadataIndex`): the flattened name, and for a tensor chunk
    /// its offsets.
    public struct StorageIndex: Sendable, Hashable {
        /// The item's flattened name (`fqn`).
        public var name: String
        /// The chunk's offsets; nil for a non-tensor value.
        public var offsets: [Int]?

        /// An index.
        ///
        /// - Parameters:
        ///   - name: The flattened name.
        ///   - offsets: A chunk's offsets, nil for a value.
        public init(name: String, offsets: [Int]?) {
            self.name = name
            self.offsets = offsets
        }
    }

    /// Where an item's bytes are (`_StorageInfo`): a byte range of a data file.
    public struct Location: Sendable, Hashable {
        /// The data file's name in the checkpoint directory (`__0_0.distcp`).
        public var file: String
        /// The first byte's offset in the file.
        public var offset: Int
        /// The number of bytes.
        public var length: Int
        /// Stream transforms the bytes went through (`transform_descriptors`, DCP's compression
        /// extensions); empty for plain torch.save bytes, the only kind ckpt reads.
        public var transforms: [String]

        /// A location.
        ///
        /// - Parameters:
        ///   - file: The data file's name.
        ///   - offset: The first byte's offset.
        ///   - length: The number of bytes.
        ///   - transforms: The stream transforms applied.
        public init(file: String, offset: Int, length: Int, transforms: [String] = []) {
            self.file = file
            self.offset = offset
            self.length = length
            self.transforms = transforms
        }
    }

    /// A data file of the checkpoint.
    public struct DataFile: Sendable, Equatable {
        /// The name in the checkpoint directory (`__1_0.distcp`).
        public var name: String
        /// The rank that wrote it, from the name `__<rank>_<n>.distcp`; nil for another name.
        public var rank: Int?
        /// Its size on disk.
        public var byteCount: Int
        /// The items (tensor chunks and values) whose bytes it holds.
        public var itemCount: Int
    }
}
