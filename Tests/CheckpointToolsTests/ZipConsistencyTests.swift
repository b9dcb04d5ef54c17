import CheckpointTools
import Foundation
import Testing
import TestSupport
@testable import Checkpoint

/// libzip's second opinion (`ZipReader.checkConsistency`) on archives this library writes.
@Suite struct ZipConsistencyTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory(prefix: "ckpt-zip-consistency") }

    /// An archive of a few stored entries of assorted sizes, written as `ckpt` writes its own.
    func writtenArchive(forceZip64: Bool) throws -> String {
        let path = directory.path("written-\(forceZip64).zip")
        try DurableFile.write(to: path, sync: false) { fd in
            let writer = ZipWriter(fileDescriptor: fd, path: path, forceZip64: forceZip64)
            for (index, count) in [0, 1, 64, 65, 100_000].enumerated() {
                let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
                try bytes.withUnsafeBytes { _ = try writer.addEntry(name: "archive/data/\(index)", bytes: $0) }
            }
            try writer.finish()
        }
        return path
    }

    @Test(arguments: [false, true])
    func libzipReadsWhatWeWrite(forceZip64: Bool) throws {
        try ZipReader(path: writtenArchive(forceZip64: forceZip64)).checkConsistency()
    }

    /// libzip compares local and central headers; a local CRC that disagrees passes our open
    /// (which trusts the central directory) but not the second opinion.
    @Test func libzipConsistencyCheckIsASecondOpinion() throws {
        let path = try writtenArchive(forceZip64: false)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // The first local header's CRC-32 field (offset 14).
        bytes.replaceSubrange(14..<18, with: [0xEF, 0xBE, 0xAD, 0xDE])
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reader = try ZipReader(path: path)
        let error = #expect(throws: CheckpointError.self) { try reader.checkConsistency() }
        #expect(error?.code == .corrupt)
    }
}
