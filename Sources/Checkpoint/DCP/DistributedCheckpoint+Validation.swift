import Foundation

/// The checks opening a DCP checkpoint makes before any data is read: torch's own loader makes
/// none of them (chunks that overlap or leave holes load as garbage or uninitialized memory there).
extension DistributedCheckpoint.Metadata {
    /// Checks every tensor's chunks against its shape and every item's storage entry.
    ///
    /// - Parameter file: The `.metadata` path, for errors.
    /// - Throws: ``CheckpointError`` `.outOfBounds` for a chunk outside its tensor, `.corrupt` for
    ///   overlapping or missing chunks, `.missingEntry` for an item without storage entry,
    ///   `.unsafeName` for a data file name that leaves the directory.
    func validate(file: String) throws {
        for (name, item) in items {
            let path = "state_dict_metadata/\(KeyPathSyntax.escape(name))"
            switch item {
            case .bytes(let location):
                try Self.checkLocation(location?.file, of: DistributedCheckpoint.StorageIndex(name: name, offsets: nil), file: file, path: path)
            case .tensor(let tensor):
                try Self.checkChunks(of: tensor, file: file, path: path)
                // By index: a chunk copied out would retain its four arrays and strings.
                for number in tensor.chunks.indices {
                    try Self.checkLocation(
                        tensor.chunks[number].location?.file,
                        of: DistributedCheckpoint.StorageIndex(name: name, offsets: tensor.chunks[number].offsets), file: file, path: path)
                }
            }
        }
    }

    /// There is a location, and its data file name stays in the directory. Each is checked in
    /// place: deduplicating the names first hashed 8,256 strings for a 64-rank checkpoint, where
    /// these byte scans are cheaper.
    private static func checkLocation(
        _ name: String?, of index: @autoclosure () -> DistributedCheckpoint.StorageIndex, file: String, path: String
    ) throws {
        guard let name else {
            let index = index()
            throw CheckpointError(
                .missingEntry, "DCP metadata has no storage entry for an item", file: file, path: path,
                expected: "storage_data for \(index.name)\(index.offsets.map { " at offsets \($0)" } ?? "")", found: "none")
        }
        let bytes = name.utf8
        if bytes.isEmpty || name == "." || name == ".." || bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == 0 }) {
            throw CheckpointError(
                .unsafeName, "DCP metadata names a data file outside the checkpoint directory", file: file,
                expected: "a file name such as __0_0.distcp", found: name.debugDescription)
        }
    }

    /// Each chunk inside the tensor, no two overlapping, together covering every element.
    static func checkChunks(of tensor: DistributedCheckpoint.TensorItem, file: String, path: String) throws {
        let shape = tensor.shape
        let numel = try Tensor.checkedElementCount(shape)
        var covered = 0
        // Boxes alone, as (offsets, sizes): a whole chunk copied out would also retain its location.
        let boxes = tensor.chunks.map { (offsets: $0.offsets, sizes: $0.sizes) }
        for (number, chunk) in boxes.enumerated() {
            guard chunk.offsets.count == shape.count, chunk.sizes.count == shape.count else {
                throw CheckpointError(
                    .corrupt, "DCP chunk has another rank than its tensor", file: file, path: "\(path)/chunks/\(number)",
                    expected: "\(shape.count) offsets and sizes", found: "offsets \(chunk.offsets), sizes \(chunk.sizes)")
            }
            let inside = zip(zip(chunk.offsets, chunk.sizes), shape).allSatisfy { box, dim in
                box.0 >= 0 && box.1 >= 0 && box.0 <= dim && box.1 <= dim - box.0
            }
            guard inside else {
                throw CheckpointError(
                    .outOfBounds, "DCP chunk lies outside its tensor", file: file, path: "\(path)/chunks/\(number)",
                    expected: "within shape \(shape)", found: "offsets \(chunk.offsets), sizes \(chunk.sizes)")
            }
            // Each chunk is inside, so its count does not overflow; many full-size ones add up past Int.
            let count = chunk.sizes.reduce(1, *)
            covered = covered.addingReportingOverflow(count).overflow ? .max : covered + count
        }
        // A sweep along the dimension with the most distinct offsets: chunks sorted by where they
        // start there, each compared only with those starting before it ends there. Sharding
        // along one dimension makes that one comparison per chunk; comparing every pair took 2 ms
        // of a 64-rank inspect, and 10⁸ comparisons for a tensor of 16,384 chunks.
        // Chunk indices are sorted rather than the boxes, which would retain and release their
        // offset and size arrays at every move.
        let nonEmpty = boxes.indices.filter { !boxes[$0].sizes.contains(0) }
        let distinct = shape.indices.map { d in Set(nonEmpty.lazy.map { boxes[$0].offsets[d] }).count }
        let sweep = distinct.indices.max { distinct[$0] < distinct[$1] } ?? 0
        let sorted = shape.isEmpty ? nonEmpty : nonEmpty.sorted { boxes[$0].offsets[sweep] < boxes[$1].offsets[sweep] }
        for first in sorted.indices {
            let a = boxes[sorted[first]]
            for b in sorted[(first + 1)...].lazy.map({ boxes[$0] }) {
                if !shape.isEmpty, b.offsets[sweep] >= a.offsets[sweep] + a.sizes[sweep] { break }
                let intersects = shape.indices.allSatisfy { d in
                    a.offsets[d] < b.offsets[d] + b.sizes[d] && b.offsets[d] < a.offsets[d] + a.sizes[d]
                }
                if intersects {
                    throw CheckpointError(
                        .corrupt, "DCP chunks of one tensor overlap", file: file, path: path,
                        expected: "disjoint chunks",
                        found: "offsets \(a.offsets) sizes \(a.sizes) and offsets \(b.offsets) sizes \(b.sizes)")
                }
            }
        }
        guard covered == numel else {
            throw CheckpointError(
                .corrupt, "DCP chunks leave part of the tensor uncovered", file: file, path: path,
                expected: "\(numel) elements (shape \(shape))",
                found: "\(covered == .max ? "more than \(Int.max)" : "\(covered)") in \(tensor.chunks.count) chunks")
        }
    }

    /// Each data file named: present, every item's bytes inside it, no two items sharing bytes.
    ///
    /// - Parameter directory: The checkpoint directory.
    /// - Returns: The files in name order, with sizes and ranks.
    /// - Throws: ``CheckpointError`` `.missingEntry` for a missing file, `.outOfBounds` for an item
    ///   past its file's end, `.corrupt` for items that overlap.
    func checkFiles(in directory: URL) throws -> [DistributedCheckpoint.DataFile] {
        // Byte ranges as plain tuples in one bucket per file, each kept with its item's and
        // chunk's positions (chunk -1 for a value) to name it in errors: grouping the entries
        // themselves (names and offset arrays) retained and released each of them at every step,
        // 5 ms of a 64-rank inspect.
        typealias Span = (start: Int, end: Int, item: Int, chunk: Int)
        var fileNumbers: [String: Int] = [:]
        var names: [String] = []
        var buckets: [[Span]] = []
        func add(_ file: String, _ start: Int, _ length: Int, item: Int, chunk: Int) {
            let number: Int
            if let known = fileNumbers[file] {
                number = known
            } else {
                number = names.count
                fileNumbers[file] = number
                names.append(file)
                buckets.append([])
            }
            buckets[number].append((start, start + length, item, chunk))
        }
        for (position, item) in items.storage.values.enumerated() {
            switch item {
            case .bytes(let location):
                if let location { add(location.file, location.offset, location.length, item: position, chunk: -1) }
            case .tensor(let tensor):
                // By index: a chunk copied out would retain its four arrays and strings.
                for number in tensor.chunks.indices {
                    if let location = tensor.chunks[number].location {
                        add(location.file, location.offset, location.length, item: position, chunk: number)
                    }
                }
            }
        }
        func entry(_ span: Span) -> DistributedCheckpoint.StorageIndex {
            let (name, item) = items.storage.elements[span.item]
            guard case .tensor(let tensor) = item, span.chunk >= 0 else { return .init(name: name, offsets: nil) }
            return .init(name: name, offsets: tensor.chunks[span.chunk].offsets)
        }
        var files: [DistributedCheckpoint.DataFile] = []
        files.reserveCapacity(names.count)
        for number in names.indices.sorted(by: { names[$0] < names[$1] }) {
            let name = names[number]
            let spans = buckets[number].sorted { $0.start < $1.start }
            let path = directory.appendingPathComponent(name).path
            let size: Int
            do {
                size = try FileIO.size(ofFileAt: path)
            } catch {
                throw CheckpointError(
                    .missingEntry, "a data file the DCP metadata names is missing or unreadable: \(error.reason)", file: path,
                    path: entry(spans[0]).description, expected: "a regular file", cause: error)
            }
            for span in spans where span.end > size {
                throw CheckpointError(
                    .outOfBounds, "a DCP item's bytes lie past the end of its data file", file: path,
                    path: entry(span).description, expected: "at most \(size) bytes",
                    found: "bytes \(span.start)..<\(span.end)")
            }
            for (previous, next) in zip(spans, spans.dropFirst()) where previous.end > next.start {
                throw CheckpointError(
                    .corrupt, "two DCP items share bytes of one data file", file: path, path: entry(next).description,
                    expected: "an item starting at or after \(previous.end), where \(entry(previous)) ends",
                    found: "offset \(next.start)")
            }
            files.append(DistributedCheckpoint.DataFile(
                name: name, rank: DistributedCheckpoint.rank(ofFile: name), byteCount: size, itemCount: spans.count))
        }
        return files
    }
}

extension DistributedCheckpoint {
    /// The rank in a data file name `__<rank>_<n>.distcp`, nil for another name.
    static func rank(ofFile name: String) -> Int? {
        guard name.hasPrefix("__"), name.hasSuffix(".distcp") else { return nil }
        let middle = name.dropFirst(2).dropLast(".distcp".count)
        guard let underscore = middle.firstIndex(of: "_") else { return nil }
        return Int(middle[..<underscore])
    }
}

extension DistributedCheckpoint.StorageIndex: CustomStringConvertible {
    /// `model.w` for a value, `model.w@[3, 0]` for a chunk, as errors name an item.
    public var description: String { offsets.map { "\(name)@\($0)" } ?? name }
}
