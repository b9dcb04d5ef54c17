import Checkpoint
import Foundation

/// A checkpoint read for inspection: its tree, and what the file says beyond the tree that explains
/// how (and whether) torch loads it: the format its contents are in, the device each storage was
/// saved on, and a safetensors file's `__metadata__`.
///
/// Opening reads what ``StateValue/init(contentsOf:options:)`` reads (the structure, not the tensor
/// data) and nothing more.
public struct CheckpointContents {
    /// The tree, tensors mapped and not yet read.
    public var tree: StateValue
    /// The format of the contents, whatever the file's name says: ``CheckpointFormat/ckpt`` for a
    /// zip archive with a ckpt manifest, ``CheckpointFormat/pt`` for any other torch.save archive
    /// (a Lightning `.ckpt` too), ``CheckpointFormat/safetensors``.
    public var format: CheckpointFormat
    /// The caller's `__metadata__` string pairs of a safetensors file, in header order, without
    /// ckpt's reserved `ckpt.tree` record; nil for an archive, a header without `__metadata__`, or a
    /// sharded checkpoint (whose index metadata is ``sharded``'s).
    public var metadata: OrderedMap<String, String>?
    /// The storage locations torch.save recorded, keyed by storage.
    private var locations: [ObjectIdentifier: String]
    /// A DCP checkpoint's metadata and data files (its ranks and chunks), nil for other formats.
    public var distributed: DistributedCheckpoint?
    /// A Hugging Face sharded checkpoint's index and shards, nil for a single file.
    public var sharded: ShardedCheckpoint?

    /// Reads a checkpoint.
    ///
    /// - Parameters:
    ///   - url: The file, or the directory of a DCP or Hugging Face sharded checkpoint (or the
    ///     latter's `*.index.json`).
    ///   - options: Checksum verification for the tensor bytes read later, and the data globals
    ///     read as values.
    /// - Throws: ``CheckpointError`` as ``StateValue/init(contentsOf:options:)`` does.
    public init(contentsOf url: URL, options: LoadOptions = LoadOptions()) throws {
        if options.allowDataGlobals.unreadableNames.first != nil {
            // The same refusal, worded once, by the loader itself.
            _ = try StateValue(contentsOf: url, options: options)
        }
        try options.limits.validate(file: url.path)
        locations = [:]
        metadata = nil
        switch try CheckpointLayout.detect(url) {
        case .distributed?:
            let checkpoint = try DistributedCheckpoint(contentsOf: url, limits: options.limits)
            // Only the values' items: a tensor's are opened when its bytes are read.
            tree = try checkpoint.load(options: options, openingItems: false)
            format = .dcp
            distributed = checkpoint
            return
        case .sharded(let index)?:
            let checkpoint = try ShardedCheckpoint(contentsOf: index, limits: options.limits)
            tree = try checkpoint.load(options: options)
            format = ShardedCheckpoint.shardFormat(ofIndex: index)
            sharded = checkpoint
            return
        case nil:
            break
        }
        let file = try MappedFile(path: url.path)
        var locations: [ObjectIdentifier: String] = [:]
        switch try CheckpointFormat.detect(file) {
        case .safetensors:
            (tree, metadata) = try Safetensors.readWithMetadata(file, limits: options.limits)
            format = .safetensors
        case .ckpt, .pt:
            let reader = try ZipReader(mapping: file, limits: options.limits)
            tree = try TorchArchive.read(
                reader, verifyChecksums: options.verifyChecksums, dataGlobals: options.allowDataGlobals, locations: &locations)
            format = TorchArchive.hasManifest(reader) ? .ckpt : .pt
        case .legacy:
            tree = try LegacyTorchSave.read(
                file, dataGlobals: options.allowDataGlobals, limits: options.limits, locations: &locations)
            format = .legacy
        case .dcp:
            preconditionFailure("a mapped file is never a DCP directory")
        }
        self.locations = locations
    }

    /// The location tag torch.save recorded for a tensor's storage (`cpu`, `cuda:0`, `mps`): where
    /// `torch.load` puts it unless told otherwise by `map_location`.
    ///
    /// - Parameter tensor: A tensor of ``tree``.
    /// - Returns: The tag; nil for safetensors, which records no device, and for a ckpt archive,
    ///   read from its manifest (ckpt always saves `cpu`).
    public func device(of tensor: Tensor) -> String? {
        locations[ObjectIdentifier(tensor.storage)]
    }

    /// The distinct devices of the tree's storages, in the order the tree first uses them; empty
    /// when the file records none (see ``device(of:)``).
    public var devices: [String] {
        var seen: [String] = []
        tree.forEachTensor { _, tensor in
            if let device = device(of: tensor), !seen.contains(device) { seen.append(device) }
        }
        return seen
    }
}
