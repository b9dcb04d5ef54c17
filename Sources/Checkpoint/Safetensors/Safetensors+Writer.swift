import OrderedCollections
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// The bytes of a safetensors file, decided before anything is written: the padded header and the
/// tensors in data order.
struct SafetensorsWritePlan {
    /// The header, padded with spaces to a multiple of 8 as safetensors' writer does, so that the
    /// data starts 8-aligned.
    let header: [UInt8]
    /// Tensors in the order their bytes follow the header.
    let dataOrder: [Safetensors.NamedTensor]

    /// Lays out the tensors: the header lists them in tree order; their bytes go by decreasing
    /// element size (stable), which keeps every tensor aligned to its element size.
    ///
    /// - Throws: ``CheckpointError`` `.unsupported` for a dtype safetensors cannot name,
    ///   `.outOfBounds` when sizes overflow or the header exceeds safetensors' limit.
    init(tensors: [Safetensors.NamedTensor], metadata: OrderedDictionary<String, String>, tree: OrderedJSON?) throws {
        let order = tensors.indices.sorted {
            let (a, b) = (tensors[$0].tensor.dtype.itemSize, tensors[$1].tensor.dtype.itemSize)
            return a != b ? a > b : $0 < $1
        }
        var offsets = [(begin: Int, end: Int)](repeating: (0, 0), count: tensors.count)
        var position = 0
        for index in order {
            let (end, overflow) = position.addingReportingOverflow(tensors[index].tensor.byteCount)
            guard !overflow else {
                throw CheckpointError(.outOfBounds, "total tensor size overflows", path: tensors[index].name)
            }
            offsets[index] = (position, end)
            position = end
        }

        var members: [(key: String, value: OrderedJSON)] = []
        var allMetadata = metadata.map { (key: $0.key, value: OrderedJSON.string($0.value)) }
        if let tree { allMetadata.append((Safetensors.treeMetadataKey, .string(tree.serialized))) }
        if !allMetadata.isEmpty { members.append((Safetensors.metadataKey, .object(allMetadata))) }
        for (index, named) in tensors.enumerated() {
            guard let tag = named.tensor.dtype.safetensorsName else {
                throw CheckpointError(
                    .unsupported, "safetensors has no tag for this dtype", path: named.name,
                    expected: "a dtype safetensors can store", found: "\(named.tensor.dtype)")
            }
            members.append((named.name, .object([
                ("dtype", .string(tag)),
                ("shape", .array(named.tensor.shape.map { .integer($0) })),
                ("data_offsets", .array([.integer(offsets[index].begin), .integer(offsets[index].end)])),
            ])))
        }
        var header = Array(OrderedJSON.object(members).serialized.utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        guard header.count <= Safetensors.maximumHeaderLength else {
            throw CheckpointError(
                .outOfBounds, "header too large for safetensors", expected: "at most \(Safetensors.maximumHeaderLength) bytes",
                found: "\(header.count) bytes")
        }
        self.header = header
        dataOrder = order.map { tensors[$0] }
    }

    /// Writes the whole file to a descriptor.
    func write(to descriptor: Int32, path: String, progress report: (@Sendable (Int, Int) -> Void)? = nil) throws {
        let progress = WriteProgress(total: dataOrder.reduce(0) { $0 + $1.tensor.byteCount }, report: report)
        var length = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &length) { try Self.writeAll(descriptor, $0, path: path) }
        try header.withUnsafeBytes { try Self.writeAll(descriptor, $0, path: path) }
        for named in dataOrder {
            do {
                try Self.writeData(of: named.tensor, to: descriptor, path: path, progress: progress)
                named.tensor.releaseMappedPages()
            } catch let error as CheckpointError {
                var located = error.inFile(path)
                if located.path == nil { located.path = named.name }
                throw located
            }
        }
    }

    /// Bytes gathered per write for a strided view (a multiple of every element size).
    private static let gatherChunk = 1 << 20

    /// Writes a tensor's logical elements in row-major order: a contiguous one straight from its
    /// storage, a strided view gathered through a bounded buffer.
    private static func writeData(of tensor: Tensor, to descriptor: Int32, path: String, progress: WriteProgress?) throws {
        let item = tensor.dtype.itemSize
        let total = tensor.byteCount
        guard total > 0 else { return }
        try tensor.storage.withUnsafeBytes { source in
            if tensor.isContiguous {
                var start = tensor.storageOffset * item
                let end = start + total
                while start < end {
                    let piece = progress == nil ? end - start : min(end - start, WriteProgress.piece)
                    try writeAll(descriptor, UnsafeRawBufferPointer(rebasing: source[start..<start + piece]), path: path)
                    progress?.add(piece)
                    start += piece
                }
                return
            }
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: min(gatherChunk, total), alignment: 64)
            defer { chunk.deallocate() }
            var filled = 0
            var failure: (any Error)?
            tensor.forEachElementOffset { offset in
                guard failure == nil else { return }
                let from = (tensor.storageOffset + offset) * item
                chunk.baseAddress!.advanced(by: filled).copyMemory(from: source.baseAddress!.advanced(by: from), byteCount: item)
                filled += item
                if filled == chunk.count {
                    do { try writeAll(descriptor, UnsafeRawBufferPointer(chunk), path: path) } catch { failure = error }
                    progress?.add(filled)
                    filled = 0
                }
            }
            if let failure { throw failure }
            try writeAll(descriptor, UnsafeRawBufferPointer(rebasing: chunk[0..<filled]), path: path)
            progress?.add(filled)
        }
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        do {
            try FileIO.writeAll(descriptor, bytes)
        } catch {
            throw CheckpointError(.io, "write failed", file: path, cause: error)
        }
    }
}
