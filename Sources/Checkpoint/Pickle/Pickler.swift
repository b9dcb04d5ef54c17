// OWNER: pickle helper. Interface agreed with the archive layer; bodies to be implemented.

/// Writes a state tree as a protocol-2 pickle that `torch.load(weights_only=True)` reads back
/// equal, exactly as torch.save would lay it out.
public enum Pickler {
    /// - Parameters:
    ///   - value: The tree.
    ///   - storageKeys: The record key of every storage in the tree (see ``StateValue/storagesInOrder``).
    public static func dump(_ value: StateValue, storageKeys: [ObjectIdentifier: String]) throws -> [UInt8] {
        throw CheckpointError(.unsupported, "pickler not implemented yet")
    }
}
