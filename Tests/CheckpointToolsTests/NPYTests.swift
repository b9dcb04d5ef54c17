import Checkpoint
import CheckpointTools
import Foundation
import Testing
import TestSupport

// npy_headers.json holds the exact header bytes numpy's writer produces (scripts/make_numeric_fixtures.py).

private struct HeaderCase: Decodable, CustomTestStringConvertible {
    var descr: String
    var shape: [Int]
    var hex: String
    var testDescription: String { "\(descr) rank \(shape.count)" }
}

private let headerCases: [HeaderCase] = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/numeric/npy_headers.json")
    guard let data = try? Data(contentsOf: url) else { return [] }
    return (try? JSONDecoder().decode([HeaderCase].self, from: data)) ?? []
}()

private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

@Suite("NPY writer")
struct NPYTests {
    @Test func fixtureIsPresent() { #expect(headerCases.count >= 8) }

    @Test(arguments: headerCases)
    fileprivate func headerMatchesNumpyByteForByte(_ expected: HeaderCase) {
        let header = NPY.header(descriptor: expected.descr, shape: expected.shape)
        #expect(header.count % 64 == 0)
        #expect(hex(header) == expected.hex)
    }

    @Test func writesHeaderThenRowMajorData() throws {
        let base = try Tensor([Int16(1), 2, 3, 4, 5, 6], shape: [2, 3])
        let transposed = try Tensor(storage: base.storage, dtype: .int16, shape: [3, 2], strides: [1, 3])
        let path = TemporaryDirectory.scoped(prefix: "npy").appendingPathComponent("x.npy").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try NPY.write(transposed, to: URL(fileURLWithPath: path)) == .int16)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let header = NPY.header(descriptor: "<i2", shape: [3, 2])
        #expect(Array(bytes.prefix(header.count)) == header)
        #expect(Array(bytes.dropFirst(header.count)) == [1, 0, 4, 0, 2, 0, 5, 0, 3, 0, 6, 0])
    }

    @Test(arguments: [(DType.bfloat16, DType.uint16), (.float8_e4m3fn, .uint8), (.float8_e5m2, .uint8), (.float32, .float32)])
    func typesNumpyLacksAreStoredAsTheirBits(dtype: DType, stored: DType) {
        #expect(NPY.storedDType(for: dtype) == stored)
        #expect(NPY.descriptor(for: stored) != nil)
    }

    /// A broadcast view of 12 TiB over three floats: extracting it would need more memory than
    /// the machine has, so the writer refuses before allocating.
    @Test func hugeBroadcastViewIsRefusedNotAllocated() throws {
        let base = try Tensor([Float(1), 2, 3])
        let huge = try Tensor(storage: base.storage, dtype: .float32, shape: [1 << 40, 3], strides: [0, 1])
        #expect { try NPY.write(huge, to: URL(fileURLWithPath: "/tmp/never-written.npy")) } throws: { ($0 as? CheckpointError)?.code == .outOfBounds }
    }

    @Test func unwritablePathThrowsIO() throws {
        let tensor = try Tensor([Float(1)])
        #expect { try NPY.write(tensor, to: URL(fileURLWithPath: "/nonexistent-dir/x.npy")) } throws: { ($0 as? CheckpointError)?.code == .io }
    }
}
