/// Writes a state tree as a protocol-2 pickle that `torch.load(weights_only=True)` reads back
/// equal, laid out as torch.save lays it out (same opcodes, globals, memo use and batching).
///
/// Tensors become `torch._utils._rebuild_tensor_v2` calls on a legacy typed storage, or
/// `_rebuild_tensor_v3` on a `torch.storage.UntypedStorage` for the dtypes torch saves that way
/// (unsigned 16/32/64-bit, float8). A storage viewed by tensors of different dtypes keeps the type
/// of the first tensor met; the others are written through `_rebuild_tensor_v3`, which names its
/// dtype explicitly, so torch rebuilds every view with its own dtype over one shared storage.
///
/// Output is deterministic: the same tree and keys give the same bytes.
package enum Pickler {
    /// Pickles a tree.
    ///
    /// - Parameters:
    ///   - value: The tree.
    ///   - storageKeys: The record key of every storage in the tree (see ``StateValue/storagesInOrder``).
    /// - Returns: The pickle (`data.pkl`).
    /// - Throws: ``CheckpointError`` `.invalidArgument` when a tensor's storage has no key, when an
    ///   integer or bool tensor requires gradients (torch.load would refuse the file), when a
    ///   plain dict carries attributes (only an OrderedDict can), or when the tree nests deeper
    ///   than ``Unpickler/maximumNestingDepth``.
    package static func dump(_ value: StateValue, storageKeys: [ObjectIdentifier: String]) throws -> [UInt8] {
        var writer = PickleWriter(storageKeys: storageKeys)
        try writer.writeRoot(value)
        return writer.output
    }
}
