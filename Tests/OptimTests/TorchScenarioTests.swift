import Testing
@testable import Optim

// Every scenario torch ran in scripts/make_optim_fixtures.py (Adagrad's and SGD's), replayed through ckpt.

@Suite struct TorchScenarioTests {
    @Test(arguments: ["layouts", "errors", "sparse", "semantics", "loads", "sgd_layouts", "sgd_errors", "sgd_loads"])
    func scenariosArePresent(_ file: String) throws {
        #expect(try !OptimFixtures.scenarios(file).isEmpty)
    }

    /// A scenario of one of the files (Adagrad's, and SGD's `sgd_*`).
    struct Named: Sendable, CustomTestStringConvertible {
        let file: String
        let name: String
        var testDescription: String { "\(file)/\(name)" }

        static func all(_ files: String...) -> [Named] {
            files.flatMap { file in OptimFixtures.names(file).map { Named(file: file, name: $0) } }
        }

        func run() throws {
            let scenario = try OptimFixtures.scenario(file, name)
            try ScenarioRun(scenario).expectMatches(scenario)
        }
    }

    @Test(arguments: Named.all("layouts", "sgd_layouts"))
    func stateDictLayoutMatchesTorch(_ scenario: Named) throws { try scenario.run() }

    @Test(arguments: Named.all("errors", "sgd_errors"))
    func errorMatchesTorch(_ scenario: Named) throws { try scenario.run() }

    static let sparse = OptimFixtures.reproducibleScenarios("sparse")
    static let semantics = OptimFixtures.reproducibleScenarios("semantics")

    /// Sparse trajectories must match torch bit for bit in every dtype: torch's CPU `sqrt` on
    /// float32/float64 is MKL's (not correctly rounded), and the sparse path reproduces it
    /// (`ckpt_torch_sqrt_f32/_f64`) rather than computing IEEE `sqrt`. Compared against every
    /// recorded machine whose square root this CPU reproduces, under that machine's rounding.
    @Test(.enabled(if: !sparse.isEmpty, "no sparse.json variant comes from a CPU whose torch.sqrt this one reproduces (\(TorchRounding.native))"),
          arguments: sparse)
    func sparseTrajectoryMatchesTorch(_ recorded: OptimFixtures.MachineScenario) throws {
        let scenario = try OptimFixtures.scenario("sparse", recorded.name, in: recorded.folder)
        try TorchRounding.$current.withValue(recorded.machine.rounding) {
            let observed = try ScenarioRun(scenario).expectMatches(scenario, ulpTolerance: 0)
            #expect(observed == 0)
        }
    }

    /// Step bookkeeping (parameters without a gradient skipped, their `step` untouched; `lr`
    /// changed between steps; a tensor `lr` on each path; complex parameters through
    /// view_as_real) on the dense kernels, bit for bit, against every reproducible machine.
    @Test(.enabled(if: !semantics.isEmpty, "no semantics.json variant comes from a CPU whose torch.sqrt this one reproduces (\(TorchRounding.native))"),
          arguments: semantics)
    func stepSemanticsMatchTorch(_ recorded: OptimFixtures.MachineScenario) throws {
        let scenario = try OptimFixtures.scenario("semantics", recorded.name, in: recorded.folder)
        try TorchRounding.$current.withValue(recorded.machine.rounding) {
            try ScenarioRun(scenario).expectMatches(scenario)
        }
    }

    @Test(arguments: Named.all("loads", "sgd_loads"))
    func loadStateDictMatchesTorch(_ scenario: Named) throws { try scenario.run() }
}
