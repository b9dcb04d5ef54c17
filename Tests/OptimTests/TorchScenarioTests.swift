import Testing
@testable import Optim

// Every scenario torch ran in scripts/make_optim_fixtures.py, replayed through ckpt.

@Suite struct TorchScenarioTests {
    @Test(arguments: ["layouts", "errors", "sparse", "semantics", "loads"])
    func scenariosArePresent(_ file: String) throws {
        #expect(try !OptimFixtures.scenarios(file).isEmpty)
    }

    @Test(arguments: OptimFixtures.names("layouts"))
    func stateDictLayoutMatchesTorch(_ name: String) throws {
        let scenario = try OptimFixtures.scenario("layouts", name)
        try ScenarioRun(scenario).expectMatches(scenario)
    }

    @Test(arguments: OptimFixtures.names("errors"))
    func errorMatchesTorch(_ name: String) throws {
        let scenario = try OptimFixtures.scenario("errors", name)
        try ScenarioRun(scenario).expectMatches(scenario)
    }

    @Test(arguments: OptimFixtures.names("sparse"))
    func sparseTrajectoryMatchesTorch(_ name: String) throws {
        let scenario = try OptimFixtures.scenario("sparse", name)
        try ScenarioRun(scenario).expectMatches(scenario)
    }

    @Test(arguments: OptimFixtures.names("semantics"))
    func stepSemanticsMatchTorch(_ name: String) throws {
        let scenario = try OptimFixtures.scenario("semantics", name)
        try ScenarioRun(scenario).expectMatches(scenario)
    }

    @Test(arguments: OptimFixtures.names("loads"))
    func loadStateDictMatchesTorch(_ name: String) throws {
        let scenario = try OptimFixtures.scenario("loads", name)
        try ScenarioRun(scenario).expectMatches(scenario)
    }
}
