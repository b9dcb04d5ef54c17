/// Byte counts as people read them.
package enum ByteCount {
    /// `1.5 KiB (1536 bytes)`-style text; `1.5 KiB` without `exact` (for tables), `512 B` under a
    /// KiB.
    ///
    /// Tenths are rounded half to even as `%.1f` rounds them, in integer arithmetic: Foundation's
    /// `String(format:)` took a tenth of a millisecond on its first use, about 1% of an inspect.
    ///
    /// - Parameters:
    ///   - count: The number of bytes.
    ///   - exact: Whether to add the count itself in parentheses.
    /// - Returns: The text.
    package static func text(_ count: Int, exact: Bool = true) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var unit = 0
        while unit < units.count - 1, count >= 1 << (10 * (unit + 1)) {
            unit += 1
        }
        guard unit > 0 else { return "\(count) B" }
        let divisor = 1 << (10 * unit)
        var (tenths, rest) = divisor.dividingFullWidth(count.multipliedFullWidth(by: 10))
        if 2 * rest > divisor || (2 * rest == divisor && tenths % 2 == 1) { tenths += 1 }
        return "\(tenths / 10).\(tenths % 10) " + units[unit] + (exact ? " (\(count) bytes)" : "")
    }
}
