import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Dates as the catalog commands print them, formatted by hand: `ls --json` prints tens of
/// thousands, where a date formatter would cost more than the rest of the command.
enum Timestamp {
    /// `2025-06-01T12:34:56.789Z`: ISO 8601 in UTC with milliseconds (the `--json` documents).
    static func iso8601(_ date: Date) -> String {
        String(unsafeUninitializedCapacity: iso8601Length) { iso8601(date, into: $0) }
    }

    /// The length of ``iso8601(_:)``'s text.
    static let iso8601Length = 24

    /// Writes ``iso8601(_:)``'s text at the start of `buffer` (at least ``iso8601Length`` bytes).
    ///
    /// - Returns: Its length.
    static func iso8601(_ date: Date, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let (seconds, milliseconds) = split(date)
        var time = seconds
        var parts = tm()
        gmtime_r(&time, &parts)
        var end = calendar(parts, separator: UInt8(ascii: "T"), into: buffer)
        buffer[end] = UInt8(ascii: ".")
        end = digits(milliseconds, width: 3, into: buffer, at: end + 1)
        buffer[end] = UInt8(ascii: "Z")
        return end + 1
    }

    /// `2025-06-01 12:34:56` in local time (the tables).
    static func local(_ date: Date) -> String {
        var time = split(date).seconds
        var parts = tm()
        localtime_r(&time, &parts)
        return String(unsafeUninitializedCapacity: 19) { calendar(parts, separator: UInt8(ascii: " "), into: $0) }
    }

    /// Whole seconds (rounded down, also before 1970) and milliseconds.
    private static func split(_ date: Date) -> (seconds: time_t, milliseconds: Int) {
        let interval = date.timeIntervalSince1970
        let seconds = interval.rounded(.down)
        return (time_t(seconds), min(999, Int((interval - seconds) * 1000)))
    }

    /// Writes `YYYY-MM-DD` + separator + `hh:mm:ss` (19 bytes) at the start of `buffer`.
    ///
    /// - Returns: The index after it.
    private static func calendar(_ parts: tm, separator: UInt8, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var end = digits(Int(parts.tm_year) + 1900, width: 4, into: buffer, at: 0)
        for (value, before) in [
            (parts.tm_mon + 1, UInt8(ascii: "-")), (parts.tm_mday, UInt8(ascii: "-")), (parts.tm_hour, separator),
            (parts.tm_min, UInt8(ascii: ":")), (parts.tm_sec, UInt8(ascii: ":")),
        ] {
            buffer[end] = before
            end = digits(Int(value), width: 2, into: buffer, at: end + 1)
        }
        return end
    }

    /// Writes the last `width` decimal digits of a non-negative number, zero-padded, at `start`.
    ///
    /// - Returns: The index after them.
    private static func digits(_ value: Int, width: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        var value = value
        for index in (start..<start + width).reversed() {
            buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
        }
        return start + width
    }
}
