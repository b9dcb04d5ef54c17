import Foundation

/// How much a file may make ckpt allocate, nest and count while it is read
/// (``LoadOptions/limits``).
///
/// A checkpoint comes from anywhere, and pickle and zip let a few bytes describe a great deal:
/// a memo of millions of entries, containers nested past the stack, a deflated entry that inflates
/// a thousandfold, a DCP `.metadata` of millions of chunks. Every reader checks what a file
/// declares against these caps before it allocates or loops, and a file past one fails with
/// ``CheckpointError/Code/limitExceeded`` naming the cap (`LoadOptions.limits.maximumMemoEntries`),
/// its value and what the file holds, so the cap can be raised for a file you trust
/// (`ckpt-tool --limit maximumMemoEntries=50000000`).
///
/// The bound is relative to the file: no file inside the caps moves peak memory more than 64 MiB
/// above the file's size or takes more than a second per MiB to read and show (docs/RELIABILITY.md,
/// "Resource caps", has the measurements). So the count caps grow with the size of the checkpoint
/// being read (the whole `.pt`, `.ckpt`, legacy or safetensors file with its tensor data; a DCP
/// directory's `.metadata` and data files; a sharded checkpoint's index and shards): each such
/// field is a base, to which a reader adds one unit per so many bytes of the file
/// (``maximumMemoEntries`` +1 per 128 bytes, ``maximumValues`` +1 per 256, ``maximumTreeValues``
/// +1 per 4, ``maximumJSONValues`` +1 per 256, ``maximumDCPChunks`` +1 per 4,096), unless
/// ``scalesWithFileSize`` is false. The allowances are sized from each unit's measured cost so that
/// what a file's structure may take stays within half its size. A large checkpoint thereby admits a
/// structure in proportion: a `.pt` of many tensors carries their data, a DCP checkpoint of many
/// chunks their data files. The bases alone hold a small hostile file to the bound.
public struct ResourceLimits: Sendable, Equatable {
    /// The largest pickle read into memory, in bytes: a `.pt`'s `data.pkl`, a legacy file's
    /// pickles, a DCP `.metadata`, a TorchScript archive's code and constants (default 256 MiB).
    ///
    /// A pickle holds the tree's structure, not its tensor data: a 70B-parameter model's is about
    /// 100 KB, and the `.metadata` of a 70B model saved by 1,024 ranks (about 2 million chunks with
    /// their optimizer state) is about 150 MB.
    public var maximumPickleBytes: Int
    /// The largest JSON document read: a `.ckpt` manifest, a safetensors header, a sharded
    /// checkpoint's `*.index.json` (default 100,000,000 bytes, safetensors' own `MAX_HEADER_SIZE`).
    ///
    /// A manifest or header grows with the number of tensors, about 150 bytes each: 100,000
    /// tensors take 15 MB.
    public var maximumJSONBytes: Int
    /// The most values (objects, arrays, strings, numbers, literals) a JSON document may hold:
    /// a `.ckpt` manifest, a safetensors header, a sharded checkpoint's `*.index.json` (default
    /// 1,048,576), counted while it is parsed.
    ///
    /// A safetensors header or a manifest holds about 10 values per tensor, so the default admits
    /// about 100,000 tensors; each value costs about 30 bytes once parsed, so a hostile document
    /// of numbers stays near 30 MiB whatever ``maximumJSONBytes`` allows.
    ///
    /// Grows by 1 per 256 bytes of the file (``scalesWithFileSize``): a document is read from
    /// the mapping, so its own bytes are resident and only the rest of the file is slack.
    public var maximumJSONValues: Int
    /// The deepest nesting of containers (dicts, lists, tuples, sets, objects) a pickled tree may
    /// have (default 1,000, also the most it may be set to: ``nestingDepthCeiling``).
    ///
    /// Python's pickler recurses once per level and stops at its recursion limit, 1,000 by
    /// default, so torch.save cannot write a deeper tree; real checkpoints nest fewer than 20
    /// levels. Code that walks a tree recursively relies on the ceiling.
    public var maximumNestingDepth: Int
    /// The most memo entries a pickle may store (default 524,288).
    ///
    /// A pickler memoizes each container, string and global it writes: a 70B model's pickle has
    /// about 10,000; a DCP `.metadata` about 5 per chunk. Each entry costs about 40 bytes while
    /// the pickle is read, so the default keeps a hostile memo near 20 MiB.
    ///
    /// Grows by 1 per 128 bytes of the file (``scalesWithFileSize``).
    public var maximumMemoEntries: Int
    /// The most values a pickle may push onto its machine's stack (default 262,144), counted as
    /// they are pushed, whatever the input spent on each (a BINGET is 2 bytes); a new container
    /// (list, tuple, dict, set, object) counts as 6, as it costs about six times a scalar.
    ///
    /// A number in a metric list costs 1, a tensor of a `torch.save` state_dict about 60, a DCP
    /// chunk about 130 (read by the pickle machine: 40 pushes and 18 containers). A scalar costs
    /// about 80 bytes by the time the tree is built, so the base keeps a hostile pickle near
    /// 20 MiB. It grows by 1 per 256 bytes of the file (``scalesWithFileSize``): a `.pt` of 5,000
    /// tensors loads once its file is 10 MB, which its tensors' data makes it.
    public var maximumValues: Int
    /// The most places a pickled tree may have once built (default 1,048,576): a container shared
    /// through the memo counts once for every place it appears, so a few hundred bytes cannot
    /// expand into a tree no one can walk (22 levels of tuples sharing one child make 4 million
    /// places from 100 bytes).
    ///
    /// Sharing costs no memory, but everything that walks the tree (totals, verify, inspect)
    /// takes time in proportion; at the base a walk stays well under a second. It grows by 1 per
    /// 4 bytes of the file (``scalesWithFileSize``), about 0.2 s per MiB to walk and print. Real
    /// trees share little, so they reach ``maximumValues`` first.
    public var maximumTreeValues: Int
    /// The most entries a zip archive's central directory may list (default 1,048,576).
    ///
    /// torch.save writes one entry per storage plus six: a 70B model with its optimizer state has
    /// a few thousand, and the largest archives seen hold about 100,000.
    public var maximumZipEntries: Int
    /// How many bytes of tensor data ckpt may allocate, beyond the size of the files it reads
    /// (default 32 MiB): the deflated entries of a zip archive, inflated into memory when the file
    /// is opened, may together take at most the archive's size plus this; a DCP checkpoint's
    /// tensors that are assembled from chunks, at most the size of its data files plus this.
    ///
    /// Tensor data that is mapped rather than allocated (stored entries, safetensors, legacy
    /// storages) must lie inside the file anyway. torch.save and ckpt never deflate tensor data,
    /// and a DCP checkpoint's chunks hold each element once, so real files stay inside; a file
    /// recompressed by a zip tool may inflate to more and needs this raised.
    public var maximumBytesBeyondFileSize: Int
    /// The most chunks a DCP `.metadata` may describe, over all its tensors (default 131,072).
    ///
    /// A checkpoint sharded over N ranks has up to N chunks per tensor: 64 ranks saving 129
    /// tensors make 8,256; 1,024 ranks saving a 70B model and its Adam state (about 2,200
    /// tensors) make about 2.3 million. It grows by 1 per 4,096 bytes of the checkpoint
    /// (``scalesWithFileSize``), and a real chunk carries far more data than that.
    public var maximumDCPChunks: Int
    /// The most chunks one tensor of a DCP `.metadata` may have (default 16,384).
    ///
    /// FSDP and tensor parallelism give each rank one chunk of a tensor (1,024 ranks, 1,024
    /// chunks; 2-D parallelism over 8,192 ranks at most 8,192); the overlap check that keeps a
    /// tensor's chunks disjoint compares each chunk with those that start before it ends along
    /// one dimension, which for chunks laid out other than along a dimension can be every pair.
    public var maximumDCPChunksPerTensor: Int
    /// Whether the count caps (``maximumMemoEntries``, ``maximumValues``, ``maximumTreeValues``,
    /// ``maximumJSONValues``, ``maximumDCPChunks``) grow with the size of the checkpoint read, as
    /// the type's summary describes (default true). False holds every file to the fields as set.
    public var scalesWithFileSize: Bool
    /// The checkpoint size the caps were made effective for (``effective(fileBytes:)``), nil
    /// before: a reader scales once, and its errors say how a cap was computed.
    package private(set) var scaledForFileBytes: Int?
    /// The bytes of a document read whole (``forDocument(ofBytes:)``), which
    /// ``maximumJSONValues`` does not grow with; 0 otherwise.
    package private(set) var documentBytes = 0

    /// The most ``maximumNestingDepth`` may be: code that walks a tree recursively (equality,
    /// descriptions, destruction of nested values) needs a stack in proportion, and 1,000 levels
    /// fit in the smallest thread stack ckpt runs on with a wide margin.
    public static let nestingDepthCeiling = 1000

    /// The defaults each field describes.
    public static let `default` = ResourceLimits()

    /// No cap but the stack's: every count and size may be as large as `Int` allows, nesting as
    /// deep as ``nestingDepthCeiling``. For files you trust; a hostile file can then take as much
    /// memory and time as it declares (it still cannot crash the reader).
    public static let unlimited = ResourceLimits(
        maximumPickleBytes: .max, maximumJSONBytes: .max, maximumJSONValues: .max, maximumNestingDepth: nestingDepthCeiling,
        maximumMemoEntries: .max, maximumValues: .max, maximumTreeValues: .max, maximumZipEntries: .max,
        maximumBytesBeyondFileSize: .max, maximumDCPChunks: .max, maximumDCPChunksPerTensor: .max, scalesWithFileSize: false)

    /// Limits with the given caps, each defaulting to the value its field documents.
    ///
    /// - Parameters:
    ///   - maximumPickleBytes: The largest pickle read.
    ///   - maximumJSONBytes: The largest manifest, safetensors header or sharded index read.
    ///   - maximumJSONValues: The most values such a JSON document may hold.
    ///   - maximumNestingDepth: The deepest nesting of a pickled tree (at most ``nestingDepthCeiling``).
    ///   - maximumMemoEntries: The most memo entries a pickle may store.
    ///   - maximumValues: The most values a pickle may push.
    ///   - maximumTreeValues: The most places a pickled tree may have.
    ///   - maximumZipEntries: The most entries a zip archive may list.
    ///   - maximumBytesBeyondFileSize: Tensor bytes allocated beyond the files' size.
    ///   - maximumDCPChunks: The most chunks a DCP `.metadata` may describe.
    ///   - maximumDCPChunksPerTensor: The most chunks of one DCP tensor.
    ///   - scalesWithFileSize: Whether the count caps grow with the checkpoint's size.
    public init(
        maximumPickleBytes: Int = 256 << 20, maximumJSONBytes: Int = 100_000_000, maximumJSONValues: Int = 1 << 20,
        maximumNestingDepth: Int = 1000, maximumMemoEntries: Int = 1 << 19, maximumValues: Int = 1 << 18,
        maximumTreeValues: Int = 1 << 20, maximumZipEntries: Int = 1 << 20, maximumBytesBeyondFileSize: Int = 32 << 20,
        maximumDCPChunks: Int = 1 << 17, maximumDCPChunksPerTensor: Int = 1 << 14, scalesWithFileSize: Bool = true
    ) {
        self.maximumPickleBytes = maximumPickleBytes
        self.maximumJSONBytes = maximumJSONBytes
        self.maximumJSONValues = maximumJSONValues
        self.maximumNestingDepth = maximumNestingDepth
        self.maximumMemoEntries = maximumMemoEntries
        self.maximumValues = maximumValues
        self.maximumTreeValues = maximumTreeValues
        self.maximumZipEntries = maximumZipEntries
        self.maximumBytesBeyondFileSize = maximumBytesBeyondFileSize
        self.maximumDCPChunks = maximumDCPChunks
        self.maximumDCPChunksPerTensor = maximumDCPChunksPerTensor
        self.scalesWithFileSize = scalesWithFileSize
    }
}

extension ResourceLimits {
    /// A cap by its field's name, for tools that set caps from text (`--limit NAME=VALUE`).
    package enum Name: String, CaseIterable, Sendable {
        case maximumPickleBytes, maximumJSONBytes, maximumJSONValues, maximumNestingDepth, maximumMemoEntries, maximumValues
        case maximumTreeValues, maximumZipEntries, maximumBytesBeyondFileSize, maximumDCPChunks, maximumDCPChunksPerTensor

        var keyPath: WritableKeyPath<ResourceLimits, Int> {
            switch self {
            case .maximumPickleBytes: return \.maximumPickleBytes
            case .maximumJSONBytes: return \.maximumJSONBytes
            case .maximumJSONValues: return \.maximumJSONValues
            case .maximumNestingDepth: return \.maximumNestingDepth
            case .maximumMemoEntries: return \.maximumMemoEntries
            case .maximumValues: return \.maximumValues
            case .maximumTreeValues: return \.maximumTreeValues
            case .maximumZipEntries: return \.maximumZipEntries
            case .maximumBytesBeyondFileSize: return \.maximumBytesBeyondFileSize
            case .maximumDCPChunks: return \.maximumDCPChunks
            case .maximumDCPChunksPerTensor: return \.maximumDCPChunksPerTensor
            }
        }

        /// How many bytes of the checkpoint add one to this cap, for the caps that grow with it: each
        /// from the unit's measured cost (docs/RELIABILITY.md), so that a structure at the scaled part
        /// of the caps takes about half the file's size or less in memory (memo entries ~40 B and pushed
        /// values ~80 B: together ~0.6 B a file byte; a parsed JSON value ~30 B: ~0.12 B a byte, as a
        /// document's own bytes are resident while it is parsed) or
        /// ~0.2 s per MiB to walk and print (tree places, ~0.8 µs each in `inspect --json`).
        package var bytesPerUnit: Int? {
            switch self {
            case .maximumMemoEntries: return 128
            case .maximumValues: return 256
            case .maximumTreeValues: return 4
            case .maximumJSONValues: return 256
            case .maximumDCPChunks: return 4096
            default: return nil
            }
        }
    }

    /// The caps for a checkpoint of `fileBytes` bytes: each count cap that grows with the file
    /// (``Name/bytesPerUnit``) raised by `fileBytes / bytesPerUnit`, saturating at `Int.max`.
    /// Unchanged when ``scalesWithFileSize`` is false or the caps were already made effective; a
    /// negative cap is left for ``validate(file:)`` to refuse.
    ///
    /// - Parameter fileBytes: The size of the whole checkpoint being read.
    /// - Returns: The caps its readers hold it to.
    package func effective(fileBytes: Int) -> ResourceLimits {
        guard scalesWithFileSize, scaledForFileBytes == nil else { return self }
        var result = self
        let bytes = max(fileBytes, 0)
        result.scaledForFileBytes = bytes
        for name in Name.allCases {
            guard let per = name.bytesPerUnit, self[name] >= 0 else { continue }
            let (sum, overflow) = self[name].addingReportingOverflow(bytes / per)
            result[name] = overflow ? .max : sum
        }
        return result
    }

    /// The size of a checkpoint stored as a directory (DCP's `.metadata` and data files, a sharded
    /// checkpoint's index and shards): its regular files' sizes from one listing, saturating; 0
    /// when it cannot be listed (the reader then fails on the file it opens).
    ///
    /// readdir and fstatat directly: Foundation's resource values took 2 ms of a 64-rank inspect.
    package static func directoryBytes(_ directory: URL) -> Int {
        guard let stream = opendir(directory.path) else { return 0 }
        defer { closedir(stream) }
        let descriptor = dirfd(stream)
        var total = 0
        while let entry = readdir(stream) {
            var info = stat()
            let found = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { fstatat(descriptor, $0, &info, 0) }
            }
            guard found == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            let (sum, overflow) = total.addingReportingOverflow(Int(info.st_size))
            total = overflow ? .max : sum
        }
        return total
    }

    /// These caps for a JSON document of `documentBytes` read into memory (a safetensors header, a
    /// manifest, an index): its own bytes are resident while it is parsed, so
    /// ``maximumJSONValues`` grows with the rest of the file only. Unchanged when the caps were not
    /// grown with a file.
    ///
    /// - Parameter documentBytes: The document's size.
    /// - Returns: The caps its parser holds it to.
    package func forDocument(ofBytes documentBytes: Int) -> ResourceLimits {
        guard let bytes = scaledForFileBytes, self.documentBytes == 0, documentBytes > 0, maximumJSONValues != .max,
            let per = Name.maximumJSONValues.bytesPerUnit
        else { return self }
        var result = self
        result.documentBytes = min(documentBytes, bytes)
        result.maximumJSONValues = maximumJSONValues - bytes / per + (bytes - result.documentBytes) / per
        return result
    }

    /// `1.0 MiB`, or `4,096 bytes` under a MiB.
    private static func size(_ bytes: Int) -> String {
        bytes >= 1 << 20 ? "\(bytes >> 20).\((bytes & 0xFFFFF) * 10 >> 20) MiB" : "\(bytes.grouped) bytes"
    }

    /// A cap as an error states it: its value, and for a cap grown with the file how
    /// (`262,144 + 1 per 256 bytes of the file's 300.0 MiB = 1,491,136`).
    package func describe(_ name: Name) -> String {
        guard let bytes = scaledForFileBytes, let per = name.bytesPerUnit, self[name] != .max else {
            return self[name].grouped
        }
        if name == .maximumJSONValues, documentBytes > 0 {
            let rest = bytes - documentBytes
            return "\((self[name] - rest / per).grouped) + 1 per \(per.grouped) bytes of the file's \(Self.size(bytes)) "
                + "beyond its \(Self.size(documentBytes)) document = \(self[name].grouped)"
        }
        return "\((self[name] - bytes / per).grouped) + 1 per \(per.grouped) bytes of the file's \(Self.size(bytes)) = \(self[name].grouped)"
    }

    /// The cap a name stands for.
    package subscript(name: Name) -> Int {
        get { self[keyPath: name.keyPath] }
        set { self[keyPath: name.keyPath] = newValue }
    }

    /// Refuses limits no reader can honour: a negative cap, or nesting past the ceiling.
    ///
    /// - Parameter file: The file being opened, for the error.
    /// - Throws: ``CheckpointError`` `.invalidArgument` naming the cap.
    package func validate(file: String?) throws {
        for name in Name.allCases where self[name] < 0 {
            throw CheckpointError(
                .invalidArgument, "LoadOptions.limits.\(name.rawValue) is negative", file: file,
                expected: "a cap of 0 or more", found: "\(self[name])")
        }
        guard maximumNestingDepth <= Self.nestingDepthCeiling else {
            throw CheckpointError(
                .invalidArgument,
                "LoadOptions.limits.maximumNestingDepth is above the ceiling that keeps recursive walks of a tree on the stack",
                file: file, expected: "at most \(Self.nestingDepthCeiling)", found: "\(maximumNestingDepth)")
        }
    }

    /// Throws when `found` is past the cap `name`.
    ///
    /// - Parameters:
    ///   - name: The cap.
    ///   - found: What the file holds or declares.
    ///   - what: What is counted, for the message (`"memo entries"`).
    ///   - file: The file.
    ///   - path: The entry or key path.
    /// - Throws: ``CheckpointError`` `.limitExceeded` (see ``exceeded(_:found:what:file:path:)``).
    package func check(_ name: Name, _ found: Int, what: String, file: String?, path: String? = nil) throws {
        guard found <= self[name] else { throw exceeded(name, found: "\(found)", what: what, file: file, path: path) }
    }

    /// The error of a file past the cap `name`: it names the cap as a user sets it, its value and
    /// what the file holds.
    ///
    /// - Parameters:
    ///   - name: The cap.
    ///   - found: What the file holds or declares (`"16777217"`, `"more than 1000 levels"`).
    ///   - what: What is counted (`"memo entries"`).
    ///   - file: The file.
    ///   - path: The entry or key path.
    /// - Returns: A ``CheckpointError/Code/limitExceeded`` error.
    package func exceeded(_ name: Name, found: String, what: String, file: String?, path: String? = nil) -> CheckpointError {
        CheckpointError(
            .limitExceeded,
            "\(what) exceed LoadOptions.limits.\(name.rawValue): \(describe(name)); raise it for a file you trust (ckpt-tool --limit \(name.rawValue)=N)",
            file: file, path: path, expected: "at most \(self[name])", found: found)
    }
}
