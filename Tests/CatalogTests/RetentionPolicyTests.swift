import Catalog
import Foundation
import Testing

/// Retention policies as a table: steps with their loss, a policy, and the steps it keeps.
@Suite struct RetentionPolicyTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        /// (step, loss); nil loss = no metric.
        var checkpoints: [(Int, Double?)]
        var policy: RetentionPolicy
        var kept: [Int]
        var testDescription: String { name }
    }

    static let losses: [(Int, Double?)] = [(0, 5), (100, 3), (200, 4), (300, 1), (400, 2), (500, 6), (600, 7)]

    static let cases: [Case] = [
        Case(name: "no rule keeps all", checkpoints: losses, policy: .keepAll, kept: [600, 500, 400, 300, 200, 100, 0]),
        Case(name: "keep last 3", checkpoints: losses, policy: .init(keepLast: 3), kept: [600, 500, 400]),
        Case(name: "keep last more than exist", checkpoints: losses, policy: .init(keepLast: 50), kept: [600, 500, 400, 300, 200, 100, 0]),
        Case(name: "keep best 2 min", checkpoints: losses, policy: .init(keepBest: 2, metric: "loss", mode: .min), kept: [400, 300]),
        Case(name: "keep best 2 max", checkpoints: losses, policy: .init(keepBest: 2, metric: "loss", mode: .max), kept: [600, 500]),
        Case(name: "last 2 and best 2", checkpoints: losses, policy: .init(keepLast: 2, keepBest: 2, metric: "loss"), kept: [600, 500, 400, 300]),
        Case(name: "last 1 and best 1 overlap", checkpoints: [(1, 1), (2, 0)], policy: .init(keepLast: 1, keepBest: 1, metric: "loss"), kept: [2]),
        Case(name: "every 200", checkpoints: losses, policy: .init(keepEvery: 200), kept: [600, 400, 200, 0]),
        Case(name: "last 1 and every 300", checkpoints: losses, policy: .init(keepLast: 1, keepEvery: 300), kept: [600, 300, 0]),
        Case(name: "all three", checkpoints: losses, policy: .init(keepLast: 1, keepBest: 1, metric: "loss", keepEvery: 500), kept: [600, 500, 300, 0]),
        Case(
            name: "without metrics kept by default",
            checkpoints: [(1, 3), (2, nil), (3, 1), (4, 2), (5, nil)],
            policy: .init(keepBest: 1, metric: "loss"), kept: [5, 3, 2]),
        Case(
            name: "without metrics dropped when asked",
            checkpoints: [(1, 3), (2, nil), (3, 1), (4, 2), (5, nil)],
            policy: .init(keepBest: 1, metric: "loss", keepCheckpointsWithoutMetrics: false), kept: [3]),
        Case(
            name: "without metrics and last",
            checkpoints: [(1, 3), (2, nil), (3, 1), (4, 2), (5, nil)],
            policy: .init(keepLast: 1, keepBest: 1, metric: "loss", keepCheckpointsWithoutMetrics: false), kept: [5, 3]),
        Case(
            name: "NaN is the worst value", checkpoints: [(1, .nan), (2, 9), (3, .nan)],
            policy: .init(keepBest: 1, metric: "loss", mode: .min), kept: [2]),
        Case(
            name: "NaN is the worst value for max too", checkpoints: [(1, .nan), (2, -9), (3, .nan)],
            policy: .init(keepBest: 2, metric: "loss", mode: .max), kept: [3, 2]),
        Case(
            name: "ties go to the newer step", checkpoints: [(1, 1), (2, 1), (3, 1)],
            policy: .init(keepBest: 2, metric: "loss"), kept: [3, 2]),
        Case(
            name: "steps, not names or insertion order", checkpoints: [(1000, nil), (999, nil), (10000, nil), (2, nil)],
            policy: .init(keepLast: 2), kept: [10000, 1000]),
        Case(name: "empty", checkpoints: [], policy: .init(keepLast: 2), kept: []),
    ]

    static func entries(_ checkpoints: [(Int, Double?)], status: CheckpointStatus = .committed) -> [CheckpointEntry] {
        checkpoints.map { step, loss in
            CheckpointEntry(
                run: "main", step: step, directory: URL(fileURLWithPath: "/x"), relativePath: "\(step)", status: status, bytes: 1,
                manifestCRC32: 0, created: Date(), committed: Date(), metrics: loss.map { ["loss": $0] } ?? [:])
        }
    }

    @Test(arguments: cases)
    func keeps(_ test: Case) throws {
        try test.policy.validate()
        let plan = test.policy.plan(Self.entries(test.checkpoints))
        #expect(plan.kept.map(\.entry.step) == test.kept)
        let all = Set(test.checkpoints.map(\.0))
        #expect(Set(plan.deleted.map(\.step)) == all.subtracting(test.kept))
        #expect(plan.kept.allSatisfy { !$0.reasons.isEmpty })
    }

    @Test func reasonsNameTheRules() {
        let plan = RetentionPolicy(keepLast: 1, keepBest: 1, metric: "loss", keepEvery: 300).plan(Self.entries(Self.losses))
        let reasons = Dictionary(uniqueKeysWithValues: plan.kept.map { ($0.entry.step, $0.reasons) })
        #expect(reasons[600] == [.last, .every])
        #expect(reasons[300] == [.best, .every])
        #expect(reasons[0] == [.every])
        #expect(reasons[300]?.description == "best,every")
    }

    @Test func onlyCommittedCheckpointsAreConsidered() {
        let writing = Self.entries([(700, 0)], status: .writing)
        let corrupt = Self.entries([(800, 0)], status: .corrupt)
        let plan = RetentionPolicy(keepLast: 1).plan(Self.entries(Self.losses) + writing + corrupt)
        #expect(plan.kept.map(\.entry.step) == [600])
        #expect(!plan.deleted.contains { $0.step >= 700 })
    }

    @Test(arguments: [
        RetentionPolicy(keepLast: 0), RetentionPolicy(keepBest: 0, metric: "loss"), RetentionPolicy(keepEvery: 0),
        RetentionPolicy(keepBest: 2), RetentionPolicy(keepBest: 2, metric: ""),
    ])
    func invalidPoliciesAreRefused(_ policy: RetentionPolicy) {
        let error = #expect(throws: CatalogError.self) { try policy.validate() }
        #expect(error?.code == .invalidArgument)
    }
}
