/// Writing `.metadata`: DCP's `Metadata` dataclass pickled as Python's pickler writes it (the
/// objects built by NEWOBJ and given their `__dict__` by BUILD, `TensorProperties` its
/// `__getstate__` tuple), so `pickle.load` in torch rebuilds the same objects. Protocol 2 opcodes;
/// globals and strings are memoized, as Python's pickler memoizes the one string object a name is
/// (each chunk names its tensor again: written out each time, ckpt's `.metadata` of 64 ranks was
/// 1.7 times the size of torch's, and slower to read).
extension DistributedCheckpoint.Metadata {
    /// The pickle.
    func pickled() throws -> [UInt8] {
        var writer = MetadataPickleWriter()
        try writer.metadata(self)
        return writer.output
    }
}

private struct MetadataPickleWriter: PickleEmitter {
    var output: [UInt8] = []
    var memo = PickleMemo()

    private static let module = DistributedCheckpoint.Metadata.module

    private mutating func integer(_ value: Int) { integer(Int64(value)) }

    /// `cls.__new__(cls)` then BUILD with a dict of `fields` (none: no BUILD, as for an empty `__dict__`).
    private mutating func object(
        _ module: String, _ name: String, fields: [(String, (inout MetadataPickleWriter) throws -> Void)]
    ) throws {
        global(module, name)
        op(.emptyTuple)
        op(.newObj)
        guard !fields.isEmpty else { return }
        op(.emptyDict)
        op(.mark)
        for (key, value) in fields {
            try string(key)
            try value(&self)
        }
        op(.setItems)
        op(.build)
    }

    private mutating func size(_ dims: [Int]) {
        global("torch", "Size")
        op(.mark)
        for dim in dims { integer(dim) }
        op(.tuple)
        op(.tuple1)
        op(.reduce)
    }

    mutating func metadata(_ metadata: DistributedCheckpoint.Metadata) throws {
        output = [PickleOpcode.proto.rawValue, 2]
        try object(Self.module, "Metadata", fields: [
            ("state_dict_metadata", { try $0.items(metadata.items) }),
            ("planner_data", { try $0.paths(metadata.paths) }),
            ("storage_data", { try $0.locations(of: metadata.items) }),
            ("storage_meta", { $0.op(.none) }),
            ("version", { writer in
                if let version = metadata.version { try writer.string(version) } else { writer.op(.none) }
            }),
        ])
        op(.stop)
    }

    private mutating func items(_ items: OrderedMap<String, DistributedCheckpoint.Item>) throws {
        op(.emptyDict)
        op(.mark)
        for (name, item) in items {
            try string(name)
            switch item {
            case .bytes:
                try object(Self.module, "BytesStorageMetadata", fields: [])
            case .tensor(let tensor):
                try object(Self.module, "TensorStorageMetadata", fields: [
                    ("properties", { try $0.properties(tensor) }),
                    ("size", { $0.size(tensor.shape) }),
                    ("chunks", { writer in
                        writer.op(.emptyList)
                        writer.op(.mark)
                        for chunk in tensor.chunks {
                            try writer.object(Self.module, "ChunkStorageMetadata", fields: [
                                ("offsets", { $0.size(chunk.offsets) }), ("sizes", { $0.size(chunk.sizes) }),
                            ])
                        }
                        writer.op(.appends)
                    }),
                ])
            }
        }
        op(.setItems)
    }

    /// `TensorProperties.__getstate__`: dtype, layout, requires_grad, memory format, pin_memory, strides.
    private mutating func properties(_ tensor: DistributedCheckpoint.TensorItem) throws {
        global(Self.module, "TensorProperties")
        op(.emptyTuple)
        op(.newObj)
        op(.mark)
        global("torch", tensor.dtype.torchName)
        global("torch.serialization", "_get_layout")
        try string("torch.strided")
        op(.tuple1)
        op(.reduce)
        op(tensor.requiresGrad ? .newTrue : .newFalse)
        global(Self.module, "_MEM_FORMAT_ENCODING")
        integer(0)
        op(.tuple1)
        op(.reduce)
        op(.newFalse)
        op(.mark)
        for stride in Tensor.contiguousStrides(for: tensor.shape) { integer(stride) }
        op(.tuple)
        op(.tuple)
        op(.build)
    }

    private mutating func paths(_ paths: OrderedMap<String, [StateKey]>) throws {
        op(.emptyDict)
        op(.mark)
        for (name, path) in paths {
            try string(name)
            op(.mark)
            for key in path {
                switch key {
                case .string(let text): try string(text)
                case .int(let index): integer(Int(index))
                }
            }
            op(.tuple)
        }
        op(.setItems)
    }

    /// `storage_data`, keyed by `MetadataIndex` objects, in the items' order.
    private mutating func locations(of items: OrderedMap<String, DistributedCheckpoint.Item>) throws {
        // Each with its chunk's position in the tensor's chunks (MetadataIndex.index, a lookup hint).
        var indices: [(index: DistributedCheckpoint.StorageIndex, position: Int?, location: DistributedCheckpoint.Location)] = []
        for (name, item) in items {
            switch item {
            case .bytes(let location):
                if let location { indices.append((.init(name: name, offsets: nil), nil, location)) }
            case .tensor(let tensor):
                for (position, chunk) in tensor.chunks.enumerated() {
                    if let location = chunk.location { indices.append((.init(name: name, offsets: chunk.offsets), position, location)) }
                }
            }
        }
        op(.emptyDict)
        op(.mark)
        for (index, position, location) in indices {
            var fields: [(String, (inout MetadataPickleWriter) throws -> Void)] = [
                ("fqn", { try $0.string(index.name) }),
                ("index", { writer in if let position { writer.integer(position) } else { writer.op(.none) } }),
            ]
            if let offsets = index.offsets { fields.append(("offset", { $0.size(offsets) })) }
            try object(Self.module, "MetadataIndex", fields: fields)
            var info: [(String, (inout MetadataPickleWriter) throws -> Void)] = [
                ("relative_path", { try $0.string(location.file) }),
                ("offset", { $0.integer(location.offset) }),
                ("length", { $0.integer(location.length) }),
            ]
            if !location.transforms.isEmpty {
                info.append(("transform_descriptors", { writer in
                    writer.op(.emptyList)
                    writer.op(.mark)
                    for transform in location.transforms { try writer.string(transform) }
                    writer.op(.appends)
                }))
            }
            try object("torch.distributed.checkpoint.filesystem", "_StorageInfo", fields: info)
        }
        op(.setItems)
    }
}
