extension Int {
    /// The number with thousands separators, as people read large counts: `1234567` as
    /// `1,234,567`. Used by error messages and by the CLI's summaries alike.
    package var grouped: String {
        let digits = String(magnitude)
        var result = self < 0 ? "-" : ""
        for (offset, digit) in digits.enumerated() {
            if offset > 0, (digits.count - offset) % 3 == 0 { result.append(",") }
            result.append(digit)
        }
        return result
    }
}
