// OWNER: pickle helper. Interface agreed with the archive layer; bodies to be implemented.

/// What a torch pickle's persistent id names: one storage record `data/<key>`.
public struct StorageReference: Sendable, Equatable {
    /// The record key (`"0"` for `data/0`).
    public var key: String
    /// The dtype of the legacy typed storage, or nil for `torch.UntypedStorage`.
    public var dtype: DType?
    /// Size of the whole storage in bytes (numel × item size; numel itself for untyped storages).
    public var byteCount: Int
    /// The location tag (`"cpu"`, `"cuda:0"`).
    public var location: String
}

/// A restricted unpickler like `torch.load(weights_only=True)`: it executes nothing and accepts
/// only the allow-listed globals, rejecting any other with an error naming it.
public enum Unpickler {
    /// - Parameters:
    ///   - bytes: The pickle (`data.pkl`).
    ///   - file: For error messages.
    ///   - storage: Resolves a persistent id to its storage; called once per distinct key.
    public static func load(
        _ bytes: UnsafeRawBufferPointer, file: String? = nil, storage: (StorageReference) throws -> Storage
    ) throws -> StateValue {
        throw CheckpointError(.unsupported, "unpickler not implemented yet", file: file)
    }
}
