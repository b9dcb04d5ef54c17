#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Storage {
    /// Takes the pages of a storage that views a mapped file out of this process's resident set
    /// (`MADV_DONTNEED`): they stay in the page cache, and a later read faults them back in with
    /// the same bytes (the mapping is private and never written). Writers call it once a storage's
    /// bytes are written, so converting a file larger than memory keeps about one tensor resident
    /// instead of the whole input. Owned memory is left alone.
    ///
    /// - Parameters:
    ///   - offset: The first byte of the range to release, in the storage.
    ///   - length: The range's length; nil for the rest of the storage.
    package func releaseMappedPages(offset: Int = 0, length: Int? = nil) {
        guard isMapped else { return }
        try? withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            let end = min(bytes.count, offset + (length ?? bytes.count - offset))
            guard offset >= 0, end > offset else { return }
            // Only whole pages inside the range: a page shared with a neighbour stays.
            let page = Int(getpagesize())
            let first = (Int(bitPattern: base) + offset + page - 1) / page * page
            let last = (Int(bitPattern: base) + end) / page * page
            guard last > first, let start = UnsafeMutableRawPointer(bitPattern: first) else { return }
            _ = madvise(start, last - first, MADV_DONTNEED)
        }
    }
}

extension Tensor {
    /// Releases the mapped pages this tensor's elements span (see ``Storage/releaseMappedPages(offset:length:)``).
    package func releaseMappedPages() {
        let item = dtype.itemSize
        guard let extent = try? Tensor.requiredStorageBytes(shape: shape, strides: strides, storageOffset: storageOffset, itemSize: item),
              extent > 0 else { return }
        storage.releaseMappedPages(offset: storageOffset * item, length: extent - storageOffset * item)
    }
}
