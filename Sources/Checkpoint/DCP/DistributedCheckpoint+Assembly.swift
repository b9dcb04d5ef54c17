import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension DistributedCheckpoint {
    /// Where tensors saved in chunks are assembled: one sparse scratch file, unlinked as soon as it
    /// is made, with a page-aligned slot per such tensor. Storages view it through a read-only
    /// mapping like a data file's; a slot is written the first time its tensor is read, through a
    /// shared mapping of the slot alone that is unmapped at once. Written pages then belong to the
    /// page cache, not to this process, and leave its resident set once read and released
    /// (``Storage/releaseMappedPages(offset:length:)``), so a checkpoint larger than memory can be
    /// assembled tensor by tensor. The disk space used is at most the assembled tensors' size.
    final class AssemblyArea: @unchecked Sendable {
        /// The read-only mapping storages view.
        let file: MappedFile
        /// Each chunked tensor's slot offset, by flattened name.
        let offsets: [String: Int]
        /// Open for writing the slots.
        private let descriptor: Int32

        /// A scratch file for `metadata`'s tensors in more than one piece; nil when there is none,
        /// or when no scratch file can be made (tensors are then assembled in owned memory).
        init?(_ metadata: Metadata) {
            let page = Int(getpagesize())
            var offsets: [String: Int] = [:]
            var size = 0
            for (name, item) in metadata.items {
                guard case .tensor(let tensor) = item, !(tensor.chunks.count == 1 && tensor.chunks[0].sizes == tensor.shape),
                      let count = try? Tensor.checkedElementCount(tensor.shape), count > 0 else { continue }
                offsets[name] = size
                size += (count * tensor.dtype.itemSize + page - 1) / page * page
            }
            guard size > 0 else { return nil }
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-dcp-assembly-\(UUID().uuidString)").path
            let descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { return nil }
            defer { unlink(path) }
            guard ftruncate(descriptor, off_t(size)) == 0, let file = try? MappedFile(path: path) else {
                close(descriptor)
                return nil
            }
            self.file = file
            self.offsets = offsets
            self.descriptor = descriptor
        }

        deinit { close(descriptor) }

        /// Writes a slot through a shared mapping of it alone, unmapped once `body` returns.
        func write(offset: Int, byteCount: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
            guard byteCount > 0 else { return try body(UnsafeMutableRawBufferPointer(start: nil, count: 0)) }
            guard let base = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, off_t(offset)), base != MAP_FAILED else {
                throw CheckpointError(
                    .io, "cannot map the scratch file tensors are assembled in", file: file.path,
                    systemCall: SystemCallError(systemCall: "mmap", errno: errno))
            }
            defer { munmap(base, byteCount) }
            try body(UnsafeMutableRawBufferPointer(start: base, count: byteCount))
        }
    }
}
