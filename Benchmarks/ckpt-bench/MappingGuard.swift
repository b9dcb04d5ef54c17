// The cost of the SIGBUS guard on mapped checkpoints (Sources/CSystem/mapping_guard.c): reading a
// whole mapped file through MappedFile (registered with the handler, checked by `reading`) against
// the same read of a plain mmap of the same file, alternating, in one run. Copying the file into
// memory first (the other way to survive a file cut under a read) is shown for scale.
import BenchSupport
import Checkpoint
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// CRC-32 of the whole file through a mapping of its own, without the guard.
private func unguardedCRC(_ path: String, _ bytes: Int) throws -> UInt32 {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { throw CheckpointError(.io, "open failed", file: path) }
    defer { close(descriptor) }
    guard let base = mmap(nil, bytes, PROT_READ, MAP_PRIVATE, descriptor, 0), base != MAP_FAILED else {
        throw CheckpointError(.io, "mmap failed", file: path)
    }
    defer { munmap(base, bytes) }
    return CRC32.checksum(UnsafeRawBufferPointer(start: base, count: bytes))
}

/// CRC-32 of the whole file through MappedFile, as every library read of mapped bytes goes.
private func guardedCRC(_ path: String) throws -> UInt32 {
    let file = try MappedFile(path: path)
    return try file.reading { CRC32.checksum(file.bytes) }
}

/// CRC-32 of a copy: the whole file read into memory with pread first.
private func copiedCRC(_ path: String, _ bytes: Int) throws -> UInt32 {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { throw CheckpointError(.io, "open failed", file: path) }
    defer { close(descriptor) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 64)
    defer { buffer.deallocate() }
    guard try FileIO.readAll(descriptor, into: buffer, at: 0) == bytes else { throw CheckpointError(.truncated, "short read", file: path) }
    return CRC32.checksum(UnsafeRawBufferPointer(buffer))
}

/// Prints the guarded and unguarded read of `url` (in the page cache), medians of alternating runs.
func benchMappingGuard(_ url: URL, runs: Int = 9) throws {
    let path = url.path
    let bytes = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
    let expected = try unguardedCRC(path, bytes)  // also brings the file into the page cache
    var plain: [Double] = []
    var guarded: [Double] = []
    var copied: [Double] = []
    for _ in 0..<runs {
        var start = now()
        guard try unguardedCRC(path, bytes) == expected else { throw CheckpointError(.checksumMismatch, "unguarded", file: path) }
        plain.append(now() - start)
        start = now()
        guard try guardedCRC(path) == expected else { throw CheckpointError(.checksumMismatch, "guarded", file: path) }
        guarded.append(now() - start)
        start = now()
        guard try copiedCRC(path, bytes) == expected else { throw CheckpointError(.checksumMismatch, "copied", file: path) }
        copied.append(now() - start)
    }
    let gb = Double(bytes) / 1e9
    line("map + CRC-32 of \(bytes >> 20) MiB, plain mmap", String(format: "%.2f GB/s", gb / median(plain)))
    line("map + CRC-32, MappedFile (SIGBUS guard)", String(format: "%.2f GB/s", gb / median(guarded)))
    let ratio = median(plain) / median(guarded)
    line("  guarded vs plain mmap", String(format: "%.2fx", ratio), verdict(ratio >= 0.95, "≥ 0.95x"))
    line("  copy first (pread, then CRC) vs plain mmap", String(format: "%.2fx", median(plain) / median(copied)))
}
