import Checkpoint

/// One worker thread's buffer for the elements of a strided view, packed row-major so the block
/// kernels can read them as they read a contiguous tensor. Grows to the largest block asked for.
final class GatherBuffer {
    private var buffer: UnsafeMutableRawPointer?
    private var capacity = 0

    deinit { buffer?.deallocate() }

    /// Copies `count` elements from row-major index `start` of a view into the buffer.
    ///
    /// - Parameters:
    ///   - tensor: The view.
    ///   - storage: Its storage's bytes.
    ///   - start: The row-major index of the first element.
    ///   - count: Elements to copy.
    /// - Returns: The packed elements, valid until the next call.
    func gather(_ tensor: Tensor, _ storage: UnsafeRawBufferPointer, start: Int, count: Int) -> UnsafeRawPointer {
        let item = tensor.dtype.itemSize
        if buffer == nil || capacity < count * item {
            buffer?.deallocate()
            buffer = UnsafeMutableRawPointer.allocate(byteCount: max(count * item, 1), alignment: 64)
            capacity = count * item
        }
        let destination = buffer!
        var written = 0
        tensor.forEachElementOffset(from: start, count: count) { offset in
            (destination + written).copyMemory(from: storage.baseAddress! + (tensor.storageOffset + offset) * item, byteCount: item)
            written += item
        }
        return UnsafeRawPointer(destination)
    }
}
