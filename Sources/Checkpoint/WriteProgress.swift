/// Counts the tensor bytes a writer has written and reports them through
/// ``SaveOptions/progress``, in pieces no larger than ``piece`` so one big tensor moves the count
/// too.
package final class WriteProgress {
    /// The most bytes written between two reports.
    package static let piece = 64 << 20

    private let total: Int
    private let report: @Sendable (Int, Int) -> Void
    private var done = 0

    /// - Parameters:
    ///   - total: The tensor bytes the file will hold.
    ///   - report: ``SaveOptions/progress``.
    package init?(total: Int, report: (@Sendable (Int, Int) -> Void)?) {
        guard let report else { return nil }
        self.total = total
        self.report = report
    }

    /// Records `count` more bytes written.
    package func add(_ count: Int) {
        done += count
        report(done, total)
    }
}
