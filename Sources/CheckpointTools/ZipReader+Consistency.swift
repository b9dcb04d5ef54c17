import CZip
import Checkpoint

extension ZipReader {
    /// Re-opens the archive's path with libzip's strict consistency check (`ZIP_CHECKCONS`) and
    /// compares libzip's view of every entry with this reader's: an independent parser as a
    /// second opinion for `verify`.
    ///
    /// libzip compares each central entry with its local header and the directory with the end
    /// records; it does not look for overlapping entries or unsafe names, which this reader's own
    /// validation covers.
    ///
    /// - Throws: ``CheckpointError`` `.corrupt` naming libzip's complaint or the first entry on
    ///   which libzip and this reader disagree.
    package func checkConsistency() throws {
        var code: Int32 = 0
        guard let archive = zip_open(file.path, ZIP_RDONLY | ZIP_CHECKCONS, &code) else {
            var error = zip_error_t()
            zip_error_init_with_code(&error, code)
            defer { zip_error_fini(&error) }
            let message = String(cString: zip_error_strerror(&error))
            throw CheckpointError(
                .corrupt, "libzip's consistency check rejects the archive", file: file.path,
                expected: "a consistent zip archive", found: message)
        }
        defer { zip_discard(archive) }
        let count = zip_get_num_entries(archive, 0)
        guard count == entries.count else {
            throw CheckpointError(
                .corrupt, "libzip counts a different number of entries", file: file.path,
                expected: "\(entries.count) entries", found: "\(count) entries")
        }
        for (index, entry) in entries.enumerated() {
            var info = zip_stat_t()
            zip_stat_init(&info)
            guard zip_stat_index(archive, zip_uint64_t(index), zip_flags_t(ZIP_FL_ENC_RAW), &info) == 0,
                let name = info.name
            else {
                throw CheckpointError(.corrupt, "libzip cannot describe the entry", file: file.path, path: entry.name)
            }
            let libzipView = "\(String(cString: name)), method \(info.comp_method), \(info.comp_size) → \(info.size) bytes, CRC \(CRC32.hex(info.crc))"
            let ourView = "\(entry.name), method \(entry.method), \(entry.compressedSize) → \(entry.uncompressedSize) bytes, CRC \(CRC32.hex(entry.crc32))"
            guard libzipView == ourView else {
                throw CheckpointError(
                    .corrupt, "libzip reads the entry differently", file: file.path, path: entry.name,
                    expected: ourView, found: libzipView)
            }
        }
    }
}
