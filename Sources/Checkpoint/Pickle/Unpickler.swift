/// What a torch pickle's persistent id names: one storage record `data/<key>`.
package struct StorageReference: Sendable, Equatable {
    /// The record key (`"0"` for `data/0`).
    package var key: String
    /// The dtype of the legacy typed storage, or nil for `torch.UntypedStorage`.
    package var dtype: DType?
    /// Size of the whole storage in bytes (numel × item size; numel itself for untyped storages).
    package var byteCount: Int
    /// The location tag (`"cpu"`, `"cuda:0"`).
    package var location: String

    /// Creates a reference.
    ///
    /// - Parameters:
    ///   - key: The record key.
    ///   - dtype: The typed storage's dtype, nil for an untyped storage.
    ///   - byteCount: Size of the whole storage in bytes.
    ///   - location: The location tag.
    init(key: String, dtype: DType?, byteCount: Int, location: String) {
        self.key = key
        self.dtype = dtype
        self.byteCount = byteCount
        self.location = location
    }
}

/// A restricted unpickler like `torch.load(weights_only=True)`: it executes nothing. The
/// allow-listed globals become the values they stand for; any other global, and what a pickle
/// builds from it (REDUCE, NEWOBJ, BUILD, APPEND, SETITEM), becomes a ``PickledObject``
/// placeholder holding its name, arguments and state as data, never imported or run, so the
/// tensors around and inside it stay readable.
///
/// Unlike torch's, it also reads pickle protocols 3 to 5 (`torch.save(..., pickle_protocol=4)`).
/// Every length, count, index and nesting level in the input is checked before it is used, so a
/// hostile pickle ends in a ``CheckpointError``, never in a crash, a hang or a huge allocation.
package enum Unpickler {
    /// The deepest nesting a tree may ever have, whatever the limits say
    /// (``ResourceLimits/nestingDepthCeiling``). Code that walks a tree recursively can rely on it.
    package static let maximumNestingDepth = ResourceLimits.nestingDepthCeiling

    /// Reads a pickle into a state tree.
    ///
    /// - Parameters:
    ///   - bytes: The pickle (`data.pkl`).
    ///   - file: For error messages.
    ///   - dataGlobals: The data globals to read as values (numpy arrays, records, defaultdicts;
    ///     see ``DataGlobalCodec``) rather than placeholders.
    ///   - limits: The resource caps.
    ///   - storage: Resolves a persistent id to its storage; called once per distinct key, and
    ///     tensors naming the same key share the returned object.
    /// - Returns: The tree.
    /// - Throws: ``CheckpointError`` (never for a global outside the allow-list by itself, which
    ///   becomes a ``PickledObject``): `.malformedPickle` (with the byte offset and opcode) for input
    ///   that breaks the pickle machine's rules; `.truncated` when it ends early; `.unsupported` for
    ///   valid pickles this library cannot represent (an int wider than 64 bits, a dict key that is
    ///   not str or int, a frozenset, a tensor with Python attributes, an object that contains
    ///   itself, a call of something other than a global); for an allowed data global, the errors of
    ///   ``DataGlobalCodec/decode(_:allowing:)`` at its key path; `.unknownDType` for a torch
    ///   dtype or storage class with no ``DType``; `.outOfBounds` for a tensor view past its
    ///   storage or a size that overflows; `.limitExceeded` for a pickle past a cap of `limits`
    ///   (its size, memo entries, values, nesting); whatever `storage` throws. Errors found while reading name the
    ///   byte offset and opcode; errors found in the finished tree name its key path.
    package static func load(
        _ bytes: UnsafeRawBufferPointer, file: String? = nil, dataGlobals: DataGlobals = .none,
        limits: ResourceLimits = .default, storage: (StorageReference) throws -> Storage
    ) throws -> StateValue {
        try loadPrefix(bytes, file: file, dataGlobals: dataGlobals, limits: limits, storage: storage).value
    }

    /// Reads the pickle at the start of `bytes`, which may go on past its STOP (torch's pre-1.6
    /// format is several pickles and raw data in a row).
    ///
    /// - Parameters:
    ///   - bytes: The pickle, then anything.
    ///   - file: For error messages.
    ///   - legacyPersistentIDs: Read persistent ids as torch's pre-1.6 format writes them
    ///     (`('storage', type, root_key, location, numel, view_metadata)`, `('module', cls, ...)`).
    ///   - dataGlobals: The data globals to read as values rather than placeholders.
    ///   - limits: The resource caps.
    ///   - storage: Resolves a persistent id to its storage; called once per distinct key.
    /// - Returns: The tree and the number of bytes the pickle took, its STOP included.
    /// - Throws: As ``load(_:file:storage:)``; with `legacyPersistentIDs`, `.corrupt` for a storage
    ///   key named with two sizes and `.outOfBounds` for a storage view past its root storage.
    package static func loadPrefix(
        _ bytes: UnsafeRawBufferPointer, file: String? = nil, legacyPersistentIDs: Bool = false,
        dataGlobals: DataGlobals = .none, limits: ResourceLimits = .default, storage: (StorageReference) throws -> Storage
    ) throws -> (value: StateValue, byteCount: Int) {
        try withoutActuallyEscaping(storage) { resolve in
            var machine = PickleMachine(
                bytes: bytes, file: file, legacyPersistentIDs: legacyPersistentIDs, limits: limits, resolveStorage: resolve)
            let root = try machine.run()
            var converter = PickleConverter(nodes: machine.nodes, file: file, dataGlobals: dataGlobals, limits: limits)
            return (try converter.convert(root), machine.position)
        }
    }

    /// Runs the pickle at the start of `bytes` without building its tree: what a reader needs to
    /// learn which storages a pickle names, and where it ends, before it can resolve them.
    ///
    /// - Parameters:
    ///   - bytes: The pickle, then anything.
    ///   - file: For error messages.
    ///   - legacyPersistentIDs: As in ``loadPrefix(_:file:legacyPersistentIDs:storage:)``.
    ///   - limits: The resource caps.
    ///   - storage: Called once per distinct storage key; what it returns stands in for the storage.
    /// - Returns: The number of bytes the pickle took, its STOP included.
    /// - Throws: The errors of the pickle machine (not those found only when building the tree).
    package static func scan(
        _ bytes: UnsafeRawBufferPointer, file: String? = nil, legacyPersistentIDs: Bool = false,
        limits: ResourceLimits = .default, storage: (StorageReference) throws -> Storage
    ) throws -> Int {
        try withoutActuallyEscaping(storage) { resolve in
            var machine = PickleMachine(
                bytes: bytes, file: file, legacyPersistentIDs: legacyPersistentIDs, limits: limits, resolveStorage: resolve)
            _ = try machine.run()
            return machine.position
        }
    }

    /// Reads a pickle held in an array, as the buffer overload does.
    ///
    /// - Parameters:
    ///   - bytes: The pickle.
    ///   - file: For error messages.
    ///   - limits: The resource caps.
    ///   - storage: Resolves a persistent id to its storage; called once per distinct key.
    /// - Returns: The tree.
    /// - Throws: As the buffer overload.
    package static func load(
        _ bytes: [UInt8], file: String? = nil, limits: ResourceLimits = .default, storage: (StorageReference) throws -> Storage
    ) throws -> StateValue {
        try bytes.withUnsafeBytes { try load($0, file: file, limits: limits, storage: storage) }
    }
}
