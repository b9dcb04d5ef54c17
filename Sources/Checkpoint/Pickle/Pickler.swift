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
    /// A ``PickledObject`` is written as it was read (its global, arguments, REDUCE or NEWOBJ,
    /// items and BUILD). One outside torch's weights-only allow-list, which only
    /// `torch.load(weights_only=False)` reads, is written only when `keepObjects` is set.
    ///
    /// - Parameters:
    ///   - value: The tree.
    ///   - storageKeys: The record key of every storage in the tree (see ``StateValue/storagesInOrder``).
    ///   - keepObjects: Write every placeholder and data value back; false refuses a tree that holds
    ///     a placeholder outside torch's weights-only allow-list.
    ///   - dataGlobals: Without `keepObjects`, the data globals the tree's data values may need
    ///     (numpy tensors, records, defaultdicts; see ``DataGlobalCodec``).
    /// - Returns: The pickle (`data.pkl`).
    /// - Throws: ``CheckpointError`` `.forbiddenGlobal` naming the key path and `module.name` of the
    ///   first placeholder outside torch's allow-list, or data value needing a global `dataGlobals`
    ///   does not allow, when `keepObjects` is false; `.invalidArgument` for a record whose
    ///   attributes do not fit its kind, or when a tensor's storage
    ///   has no key, when an integer or bool tensor requires gradients (torch.load would refuse the
    ///   file), when a plain dict carries attributes (only an OrderedDict can), when a placeholder's
    ///   module or name is empty or holds a newline, or when the tree nests deeper than
    ///   ``Unpickler/maximumNestingDepth``.
    package static func dump(
        _ value: StateValue, storageKeys: [ObjectIdentifier: String], keepObjects: Bool = false, dataGlobals: DataGlobals = .none
    ) throws -> [UInt8] {
        if !keepObjects {
            try value.refuseObjects()
            try value.refuseDataValues(allowing: dataGlobals)
        }
        var writer = PickleWriter(storageKeys: storageKeys)
        try writer.writeRoot(value)
        return writer.output
    }
}

extension StateValue {
    /// Throws when the tree holds a ``PickledObject`` that `torch.load(weights_only=True)` would
    /// refuse: what every writer does unless ``SaveOptions/keepObjects`` is set. Objects on torch's
    /// weights-only allow-list (a `collections.Counter`, as a MultiStepLR state holds) pass, since
    /// torch reads them back without trust.
    ///
    /// - Throws: ``CheckpointError`` `.forbiddenGlobal` naming the first such object's key path and
    ///   `module.name`.
    package func refuseObjects() throws {
        var first: (path: [StateKey], object: PickledObject)?
        forEachObject { path, object in
            if first == nil && !object.isOnTorchAllowList { first = (path, object) }
        }
        guard let first else { return }
        throw CheckpointError(
            .forbiddenGlobal,
            "\(first.object.summary) is a Python object kept as a placeholder; writing it back needs keepObjects "
                + "(ckpt-tool: --keep-objects), and loading the file then needs torch.load(weights_only=False)",
            path: first.path.isEmpty ? "(root)" : first.path.pathString, found: first.object.qualifiedName)
    }

    /// Throws when the tree holds a data value (a numpy tensor, a ``PythonRecord``, a defaultdict)
    /// needing a global `allowed` does not allow: a file holding it loads in torch only with
    /// `weights_only=False` or that global in `safe_globals`.
    ///
    /// - Parameter allowed: The data globals allowed (``SaveOptions/allowDataGlobals``).
    /// - Throws: ``CheckpointError`` `.forbiddenGlobal` naming the first such value's key path and the global.
    package func refuseDataValues(allowing allowed: DataGlobals) throws {
        try forEachValue { path, value in
            guard let missing = DataGlobalCodec.requiredGlobals(value).first(where: { !allowed.allows($0) }) else { return }
            throw CheckpointError(
                .forbiddenGlobal,
                "a \(value.pythonTypeName) is written with \(missing), which torch.load(weights_only=True) refuses; "
                    + "writing it needs allowDataGlobals (ckpt-tool: --allow-data-globals), and loading the file then needs "
                    + "torch.load(weights_only=False) or safe_globals",
                path: path.isEmpty ? "(root)" : path.pathString, found: missing)
        }
    }
}
