import CheckpointTools
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte counts against the C library's own `%.1f`, which `ByteCount` replaces.
@Suite struct ByteCountTests {
    /// The C library's reading: `%.1f` of the count over the unit, as the tool printed it before.
    private static func printf(_ count: Int, unit: Int) -> String {
        let value = Double(count) / Double(1 << (10 * unit))
        var buffer = [CChar](repeating: 0, count: 64)
        _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.1f", $0) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self)
    }

    @Test(arguments: [
        (0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
        (1 << 20, "1.0 MiB"), (5 << 30, "5.0 GiB"), (3 << 40, "3.0 TiB"), (1 << 52, "4096.0 TiB"),
    ])
    func readsAsPeopleWriteSizes(count: Int, text: String) {
        #expect(ByteCount.text(count, exact: false) == text)
        #expect(ByteCount.text(count) == (count < 1024 ? text : "\(text) (\(count) bytes)"))
    }

    /// Ties (1.25 KiB: half to even), values that round up to the next unit's threshold (1023.95 KiB and up reads
    /// `1024.0 KiB`, as `%.1f` did), and random counts below 2⁵³, where a Double holds the count
    /// exactly and printf's rounding is the exact one.
    @Test func roundsTenthsAsPrintfDoes() {
        var counts = [1280, 1331, 1433, 2_047, 1_048_575, 1_048_524, 1_048_525, 1_048_473, 3 << 19, (1 << 30) - 1]
        var generator = SystemRandomNumberGenerator()
        for unit in 1...4 {
            for _ in 0..<2_000 {
                counts.append(Int.random(in: (1 << (10 * unit))..<min(1 << (10 * (unit + 1)), 1 << 53), using: &generator))
            }
            // The exact ties of a tenth: odd quarters of the unit (1.25 KiB reads 1.2, 1.75 KiB 1.8).
            for quarters in stride(from: 5, to: 405, by: 2) {
                counts.append(quarters * (1 << (10 * unit)) / 4)
            }
        }
        for count in counts {
            let unit = count >= 1 << 40 ? 4 : count >= 1 << 30 ? 3 : count >= 1 << 20 ? 2 : 1
            let expected = Self.printf(count, unit: unit) + " " + ["B", "KiB", "MiB", "GiB", "TiB"][unit]
            #expect(ByteCount.text(count, exact: false) == expected, "\(count)")
        }
    }
}
