import Checkpoint
import Foundation

/// Numbers in diff text, with as few digits as keep them truthful.
enum NumberText {
    /// `value` with three significant digits, or as many more as it takes to compare with
    /// `reference` as `value` does: a max rel diff of 1.0000034e-05 against rtol 1e-05 reads
    /// `1.000003e-05`, never `1e-05`, which would claim it equal to the tolerance it fails.
    ///
    /// - Parameters:
    ///   - value: A difference (finite, infinite or NaN).
    ///   - reference: The tolerance it is judged against.
    /// - Returns: `%g`-style text (`0.00384`, `1.5e-07`, `inf`).
    static func distinguishing(_ value: Double, from reference: Double) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : value < 0 ? "-inf" : "inf" }
        for digits in 3...17 {
            let text = String(format: "%.*g", digits, value)
            if let read = Double(text), (read < reference) == (value < reference), (read == reference) == (value == reference) {
                return text
            }
        }
        return "\(value)"
    }
}
