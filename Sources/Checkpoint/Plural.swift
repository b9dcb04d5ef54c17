/// Counted nouns for text people read (`1 check`, `2 checks`, `1 entry`, `3 entries`): every
/// module's report and summary lines go through it, so none says "1 checks".
package enum Plural {
    /// `count` and the noun in the number it needs.
    ///
    /// - Parameters:
    ///   - count: How many.
    ///   - singular: The noun for one (`check`).
    ///   - plural: The noun for other counts; nil appends `s` (`entries` must be given).
    /// - Returns: `1 check`, `0 checks`, `2 entries`.
    package static func count(_ count: Int, _ singular: String, _ plural: String? = nil) -> String {
        "\(count) " + noun(count, singular, plural)
    }

    /// The noun alone in the number `count` needs (`check` or `checks`), for counts printed apart.
    ///
    /// - Parameters:
    ///   - count: How many.
    ///   - singular: The noun for one.
    ///   - plural: The noun for other counts; nil appends `s`.
    /// - Returns: The noun.
    package static func noun(_ count: Int, _ singular: String, _ plural: String? = nil) -> String {
        count == 1 ? singular : plural ?? singular + "s"
    }
}
