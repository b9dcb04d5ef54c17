import Foundation

/// How ``StateValue/init(contentsOf:options:)`` reads.
public struct LoadOptions: Sendable {
    /// Verify each tensor blob's CRC-32 the first time its bytes are read (default true).
    public var verifyChecksums: Bool
    /// The globals outside torch's weights-only allow-list to read as plain values (numpy arrays
    /// and scalars, `argparse.Namespace`, paths, datetimes, defaultdicts) rather than
    /// ``PickledObject`` placeholders (default ``DataGlobals/none``). Nothing is run either way.
    public var allowDataGlobals: DataGlobals
    /// How much a file may make the reader allocate, nest and count (default
    /// ``ResourceLimits/default``); a file past a cap fails with `.limitExceeded` naming it.
    public var limits: ResourceLimits

    /// Options for a load.
    ///
    /// - Parameters:
    ///   - verifyChecksums: Verify each tensor blob's CRC-32 when first read.
    ///   - allowDataGlobals: The globals to read as plain values.
    ///   - limits: The resource caps.
    public init(verifyChecksums: Bool = true, allowDataGlobals: DataGlobals = .none, limits: ResourceLimits = .default) {
        self.verifyChecksums = verifyChecksums
        self.allowDataGlobals = allowDataGlobals
        self.limits = limits
    }
}

/// How ``StateValue/write(to:format:options:)`` writes.
public struct SaveOptions: Sendable {
    /// fsync the file and its directory (default true). False keeps the save atomic but not durable.
    public var durable: Bool
    /// A tree without tensors stored in a `.ckpt` manifest's `metadata` member (default nil: none),
    /// read back by ``StateValue/metadata(contentsOf:)`` without loading any tensor. Only the ckpt
    /// format has a manifest to hold it.
    public var metadata: StateValue?
    /// The data globals a `.pt` or `.ckpt` may hold (default ``DataGlobals/none``): a numpy array
    /// (``Tensor/numpyOrigin``), a ``PythonRecord`` or a defaultdict is written as numpy and Python
    /// pickle it, so `torch.load(weights_only=False)` returns an equal value, only when every
    /// global it needs is allowed; otherwise the write fails with `.forbiddenGlobal`. Such a file
    /// loads in torch with `weights_only=False`, or with those globals in `safe_globals`.
    /// ``keepObjects`` allows them all. safetensors stores numpy arrays as tensors and refuses the
    /// rest either way.
    public var allowDataGlobals: DataGlobals
    /// Write each ``PickledObject`` in the tree back as it was read (default false: a tree that
    /// holds one outside torch's weights-only allow-list is refused with `.forbiddenGlobal`, naming
    /// its key path and `module.name`).
    ///
    /// Only `.pt` and `.ckpt` can hold objects: the pickle gets the global, its arguments and
    /// state as read, so `torch.load(weights_only=False)` rebuilds an equal object, and a `.ckpt`
    /// manifest describes it as an `object` node (docs/FORMAT.md). safetensors refuses objects
    /// either way. A file written with objects needs trust to load in torch:
    /// `torch.load(weights_only=True)` refuses it. Objects on that loader's allow-list (a
    /// `collections.Counter`, as MultiStepLR's state holds) are written without this option,
    /// since torch reads them without trust.
    public var keepObjects: Bool
    /// Called on the writing thread as tensor data is written, with the bytes written so far and
    /// the tensor bytes the file holds in all (default nil). Reports come at least every 64 MiB;
    /// the last one has both numbers equal, before the final fsync.
    public var progress: (@Sendable (_ writtenBytes: Int, _ totalBytes: Int) -> Void)?

    /// Options for a save.
    ///
    /// - Parameters:
    ///   - durable: fsync the file and its directory.
    ///   - metadata: A tree without tensors for a `.ckpt` manifest's `metadata` member.
    ///   - keepObjects: Write ``PickledObject`` placeholders back as read.
    ///   - allowDataGlobals: The data globals the file may hold.
    ///   - progress: Called as tensor data is written (see ``progress``).
    public init(
        durable: Bool = true, metadata: StateValue? = nil, keepObjects: Bool = false, allowDataGlobals: DataGlobals = .none,
        progress: (@Sendable (_ writtenBytes: Int, _ totalBytes: Int) -> Void)? = nil
    ) {
        self.durable = durable
        self.metadata = metadata
        self.keepObjects = keepObjects
        self.allowDataGlobals = allowDataGlobals
        self.progress = progress
    }
}

extension StateValue {
    /// Loads a checkpoint, the format detected from the file's contents (not its name).
    ///
    /// Opening reads only the zip central directory and the manifest (or `data.pkl`, or the
    /// safetensors header); tensor bytes are mapped, read only when used, and checked against
    /// their CRC-32 the first time they are read. A file in torch's pre-1.6 format (which has no
    /// checksums) is read through its pickles; its storages are mapped where their offset suits
    /// their element type and copied otherwise (see docs/FORMAT.md).
    ///
    /// A directory is read as the one checkpoint it holds: a PyTorch Distributed Checkpoint
    /// (``DistributedCheckpoint``, when it holds `.metadata`) or a Hugging Face sharded checkpoint
    /// (``ShardedCheckpoint``, the directory of a `*.index.json`; the index itself may be given too).
    ///
    /// - Parameters:
    ///   - url: The file or directory.
    ///   - options: Checksum verification, and the globals to read as plain values.
    /// - Throws: ``CheckpointError`` naming the file, the entry and what was wrong; `.notRecognized`
    ///   for a directory that holds neither kind of checkpoint; `.limitExceeded` for a file past a
    ///   cap of ``LoadOptions/limits``; `.invalidArgument` when ``LoadOptions/allowDataGlobals``
    ///   names a global ckpt cannot read as data (`os.system`), or a limit is negative or nests
    ///   past ``ResourceLimits/nestingDepthCeiling``.
    public init(contentsOf url: URL, options: LoadOptions = LoadOptions()) throws {
        if let name = options.allowDataGlobals.unreadableNames.first {
            throw CheckpointError(
                .invalidArgument, "\(name) is not a global ckpt can read as data (ckpt never imports or runs what a pickle names)",
                file: url.path, expected: "names from DataGlobals.readableNames", found: name)
        }
        let limits = options.limits
        try limits.validate(file: url.path)
        switch try CheckpointLayout.detect(url) {
        case .distributed?:
            self = try DistributedCheckpoint(contentsOf: url, limits: limits).load(options: options)
            return
        case .sharded(let index)?:
            self = try ShardedCheckpoint(contentsOf: index, limits: limits).load(options: options)
            return
        case nil:
            break
        }
        let file = try MappedFile(path: url.path)
        switch try CheckpointFormat.detect(file) {
        case .safetensors:
            self = try Safetensors.read(file, limits: limits)
        case .ckpt, .pt:
            self = try TorchArchive.read(
                ZipReader(mapping: file, limits: limits), verifyChecksums: options.verifyChecksums,
                dataGlobals: options.allowDataGlobals)
        case .legacy:
            self = try LegacyTorchSave.read(file, dataGlobals: options.allowDataGlobals, limits: limits)
        case .dcp:
            preconditionFailure("a mapped file is never a DCP directory")
        }
    }

    /// Saves the tree atomically, the format chosen by `format` or else by the path's extension.
    ///
    /// The file is written to a temporary name in the same directory and renamed over `url`, so an
    /// interrupted save leaves the previous file intact. A symlink at `url` is followed; a device or
    /// FIFO is written to, not replaced.
    ///
    /// ``CheckpointFormat/dcp`` writes a directory (one rank; ``DistributedCheckpoint/write(_:to:ranks:options:)``
    /// writes more), committed when its `.metadata` is renamed into place.
    ///
    /// - Parameters:
    ///   - url: The destination.
    ///   - format: The format; nil infers it from the extension.
    ///   - options: Durability, metadata for the ckpt format, and whether to keep placeholders.
    /// - Throws: ``CheckpointError`` `.unsupported` for ``CheckpointFormat/legacy``; if the format cannot be inferred, the tree cannot be stored in
    ///   it, metadata is given for a format other than ckpt or holds a tensor, or the write fails;
    ///   `.forbiddenGlobal` (naming the key path and `module.name`) for a tree holding a
    ///   ``PickledObject`` outside torch's weights-only allow-list without
    ///   ``SaveOptions/keepObjects``, or a data value whose globals ``SaveOptions/allowDataGlobals``
    ///   does not allow; `.unsupported` for an object or record in safetensors.
    public func write(to url: URL, format: CheckpointFormat? = nil, options: SaveOptions = SaveOptions()) throws {
        let path = url.path
        guard let format = format ?? CheckpointFormat(pathExtension: url.pathExtension) else {
            throw CheckpointError(
                .invalidArgument, "cannot tell the format from the file name", file: path,
                expected: "extension .ckpt, .pt, .pth or .safetensors",
                found: url.pathExtension.isEmpty ? "no extension" : "." + url.pathExtension)
        }
        if options.metadata != nil, format != .ckpt {
            throw CheckpointError(
                .invalidArgument, "metadata can only be stored in the ckpt format", file: path,
                expected: "format ckpt", found: format.rawValue)
        }
        if !options.keepObjects, format != .safetensors {
            do {
                try refuseObjects()
                try refuseDataValues(allowing: options.allowDataGlobals)
            } catch let error as CheckpointError {
                throw error.inFile(path)
            }
        }
        switch format {
        case .ckpt:
            try TorchArchive.write(
                self, to: path, includeManifest: true, durable: options.durable, metadata: options.metadata,
                keepObjects: options.keepObjects, dataGlobals: options.allowDataGlobals, progress: options.progress)
        case .pt:
            try TorchArchive.write(
                self, to: path, includeManifest: false, durable: options.durable, keepObjects: options.keepObjects,
                dataGlobals: options.allowDataGlobals, progress: options.progress)
        case .safetensors: try Safetensors.write(self, toPath: path, sync: options.durable, progress: options.progress)
        case .legacy:
            throw CheckpointError(
                .unsupported, "torch's pre-1.6 format is read, never written", file: path,
                expected: "format pt, ckpt, safetensors or dcp", found: format.rawValue)
        case .dcp: try DistributedCheckpoint.write(self, to: url, ranks: 1, options: options)
        }
    }
}
