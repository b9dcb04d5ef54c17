import Foundation
import OrderedCollections

/// The Hugging Face safetensors format: an 8-byte little-endian header length N, an N-byte JSON
/// header, then the tensors' bytes.
///
/// ## Reading
/// Files are checked with safetensors' own rules (its `tensor.rs`, as of safetensors 0.8.0): N at
/// most 100 000 000 and inside the file; the header valid UTF-8 and a JSON object; each record
/// `{dtype, shape, data_offsets: [begin, end]}` with a known dtype; the records, sorted by offset,
/// contiguous from 0 with no gap or overlap (a zero-size tensor may share its neighbour's offset);
/// each byte count equal to numel × dtype size (computed with overflow checks); the data ending
/// exactly at the end of the file. A JSON object with a duplicate key (two tensors of one name, a
/// repeated metadata key) is an error here, though safetensors itself keeps the last metadata value.
/// Tensors are zero-copy windows into the memory-mapped file; only a tensor whose data is not
/// aligned to its element size (possible in hand-made files, never in safetensors' own) is copied.
/// The format has no checksums, so there is nothing to verify lazily.
///
/// ## How a state tree maps to a file
/// - A plain `dict` of string keys to plain tensors (not `nn.Parameter`, no `requires_grad`) is stored
///   as is: one safetensors tensor per key, named by the key. This is what `safetensors.torch.save_file`
///   writes and `load_file` returns.
/// - Any other tree (an `OrderedDict` such as `model.state_dict()` with its `_metadata`, nested dicts,
///   lists, tuples, int keys as in an optimizer's `state`, non-tensor leaves, Parameters,
///   `requires_grad`) additionally stores its structure as JSON in `__metadata__["ckpt.tree"]`. Each
///   tensor is stored under its key path joined with `/` (`state/0/sum`); if two paths give one name
///   the later gets a `#2`, `#3`, ... suffix. Reading such a file rebuilds the same tree: Python types,
///   key order, int keys and OrderedDict attributes. Other tools see a flat dict of those names.
///   The record is `{"version": 1, "root": node}`, a node being `{"type": <Python type name>, ...}`:
///   `dict`/`OrderedDict` with `items` (`[key, node]` pairs; a JSON integer key is a Python int) and,
///   for OrderedDict, `attributes`; `list`/`tuple`/`set` with `items`; `Tensor`/`Parameter` with
///   `name` and `requires_grad`; `str`/`int`/`bool`/`device`/`dtype`/`Size` with `value`; `float`
///   with `value` (finite) or `bits` (hex bit pattern, for NaN and infinities); `complex` with `real`
///   and `imag` float nodes; `bytes`/`bytearray` with `base64`; `NoneType`.
/// - complex128, which safetensors lacks, is stored as `torch.view_as_real` would give it (F64 with a
///   last dimension of 2), and its node says `"dtype": "complex128"`.
/// - safetensors cannot share storage: tensors that view one storage (tied weights) are written as
///   separate copies and come back as separate storages; strided views are written contiguous.
/// - Key order: a file without `ckpt.tree` is read in header order. This writer lists tensors in the
///   tree's order but lays their bytes out by decreasing element size, as safetensors does, so every
///   tensor is aligned.
/// - Other `__metadata__` string pairs are the caller's: written by ``write(_:to:metadata:options:)`` and
///   returned by ``metadata(contentsOf:)``; the key `ckpt.tree` is reserved.
public enum Safetensors {
    /// Reads a safetensors file.
    ///
    /// ``StateValue/init(contentsOf:options:)`` reads safetensors too; this reads nothing else.
    ///
    /// - Parameter url: The file.
    /// - Returns: The tree (see ``Safetensors`` for the mapping), tensors mapped zero-copy.
    /// - Throws: ``CheckpointError`` naming the file, the tensor and what was expected versus found.
    public static func read(contentsOf url: URL) throws -> StateValue {
        try read(MappedFile(path: url.path))
    }

    /// Reads a safetensors file already mapped (``StateValue/init(contentsOf:options:)`` maps it to
    /// detect the format).
    static func read(_ file: MappedFile, limits: ResourceLimits = .default) throws -> StateValue {
        try readWithMetadata(file, limits: limits).tree
    }

    /// Reads a mapped safetensors file and its caller's `__metadata__` pairs (without the reserved
    /// `ckpt.tree` record; nil when the header has no `__metadata__`), parsing the header once.
    package static func readWithMetadata(
        _ file: MappedFile, limits: ResourceLimits = .default
    ) throws -> (tree: StateValue, metadata: OrderedMap<String, String>?) {
        let path = file.path
        let limits = limits.effective(fileBytes: file.count)
        let header = try file.reading { try parseHeader(file.bytes, file: path, limits: limits) }
        var tensors = OrderedDictionary<String, Tensor>()
        for entry in header.entries {
            let offset = header.dataStart + entry.begin
            let length = entry.end - entry.begin
            let storage: Storage
            if offset % entry.dtype.itemSize == 0 {
                storage = try Storage(mapping: file, offset: offset, byteCount: length)
            } else {
                storage = try file.reading { Storage(copying: try file.slice(offset: offset, length: length)) }
            }
            do {
                tensors[entry.name] = try Tensor(storage: storage, dtype: entry.dtype, shape: entry.shape)
            } catch let error as CheckpointError {
                var located = error.inFile(path)
                located.path = entry.name
                throw located
            }
        }
        var metadata = header.metadata
        let record = metadata?.removeValue(forKey: treeMetadataKey)
        if let record {
            return (try unflatten(record: record, tensors: tensors, file: path, limits: limits), metadata.map(OrderedMap.init))
        }
        var items = OrderedDictionary<StateKey, StateValue>()
        for (name, tensor) in tensors { items[.string(name)] = .tensor(tensor) }
        return (.dict(StateDict(items)), metadata.map(OrderedMap.init))
    }

    /// The caller's `__metadata__` string pairs of a safetensors file, in header order, without the
    /// reserved `ckpt.tree` record. Reads the header only.
    ///
    /// - Parameter url: The file.
    /// - Returns: The pairs; empty when the file has none.
    /// - Throws: ``CheckpointError`` if the file is not valid safetensors.
    public static func metadata(contentsOf url: URL) throws -> OrderedMap<String, String> {
        let path = url.path
        let file = try MappedFile(path: path)
        var metadata = try file.reading { try parseHeader(file.bytes, file: path).metadata ?? [:] }
        metadata.removeValue(forKey: treeMetadataKey)
        return OrderedMap(metadata)
    }

    /// Writes a tree as a safetensors file, atomically (temporary file, rename) and, unless
    /// `options.durable` is false, durably.
    ///
    /// - Parameters:
    ///   - value: The tree (see ``Safetensors`` for the mapping).
    ///   - url: The destination; replaced atomically.
    ///   - metadata: String pairs for `__metadata__`, in order; `ckpt.tree` is reserved.
    ///   - options: Durability and progress reports.
    /// - Throws: ``CheckpointError`` `.invalidArgument` for the reserved metadata key,
    ///   `.outOfBounds` if the header would exceed safetensors' limit, `.io` if the write fails, or a
    ///   failed verification of a tensor's source bytes.
    public static func write(
        _ value: StateValue, to url: URL, metadata: OrderedMap<String, String> = [:], options: SaveOptions = SaveOptions()
    ) throws {
        try write(value, toPath: url.path, sync: options.durable, metadata: metadata.storage, progress: options.progress)
    }

    /// Writes a tree as a safetensors file at a path; see ``write(_:to:metadata:options:)``.
    static func write(
        _ value: StateValue, toPath path: String, sync: Bool, metadata: OrderedDictionary<String, String> = [:],
        progress: (@Sendable (Int, Int) -> Void)? = nil
    ) throws {
        guard metadata[treeMetadataKey] == nil else {
            throw CheckpointError(
                .invalidArgument, "metadata key is reserved for the tree structure", file: path,
                path: "\(metadataKey)/\(treeMetadataKey)")
        }
        do {
            let (tensors, tree) = try flatten(value)
            let plan = try SafetensorsWritePlan(tensors: tensors, metadata: metadata, tree: tree)
            try DurableFile.write(to: path, sync: sync) { descriptor in
                try plan.write(to: descriptor, path: path, progress: progress)
            }
        } catch let error as CheckpointError {
            throw error.inFile(path)
        }
    }
}

extension Safetensors {
    @available(*, deprecated, renamed: "read(contentsOf:)")
    public static func read(path: String, verify: Bool = true) throws -> StateValue {
        try read(contentsOf: URL(fileURLWithPath: path))
    }

    @available(*, deprecated, renamed: "metadata(contentsOf:)")
    public static func metadata(path: String) throws -> OrderedDictionary<String, String> {
        try metadata(contentsOf: URL(fileURLWithPath: path)).storage
    }

    @available(*, deprecated, renamed: "write(_:to:metadata:options:)")
    public static func write(
        _ value: StateValue, to path: String, sync: Bool = true, metadata: OrderedDictionary<String, String> = [:]
    ) throws {
        try write(value, to: URL(fileURLWithPath: path), metadata: OrderedMap(metadata), options: SaveOptions(durable: sync))
    }
}
