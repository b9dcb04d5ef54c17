import Checkpoint
import Foundation
import Testing

@testable import Optim
import TestSupport

// Name-based loading against real torch (scripts/make_rename_fixtures.py): v1's optimizer state,
// saved by torch.save, goes through Tests/Fixtures/rename/map.json into a v2 Adagrad whose layers
// were renamed, reordered, added and removed; torch did the same mapping by hand. Each v2
// parameter must get exactly torch's state, and continuing in ckpt must match torch bit for bit.

/// The rename fixture: torch's v1 checkpoint, the map, and what torch recorded for v2.
struct RenameFixture {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/rename", isDirectory: true)

    let expected: [String: Any]
    let v1: StateValue
    let map: RenameMap

    /// The committed fixture, or one machine's variant (its v1.pt and expected.json) in `folder`.
    init(folder: URL = directory) throws {
        let data = try Data(contentsOf: folder.appendingPathComponent("expected.json"))
        expected = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        v1 = try StateValue(contentsOf: folder.appendingPathComponent("v1.pt"))
        map = try RenameMap(contentsOf: Self.directory.appendingPathComponent("map.json"))
    }

    /// The recorded machines whose torch.sqrt (which the continued steps use) this CPU reproduces.
    static let reproducibleVariants = TorchMachine.variants(in: directory, factsFile: "expected.json")
        .filter { $0.machine.sqrtIsReproducible }
        .map { Variant(machine: $0.machine, folder: $0.directory) }

    struct Variant: Sendable, CustomTestStringConvertible {
        let machine: TorchMachine
        let folder: URL
        var testDescription: String { "\(machine)" }
    }

    var model: StateValue { get throws { try #require(v1["model"]) } }
    var optimizer: StateValue { get throws { try #require(v1["optimizer"]) } }
    /// v2 name -> v1 name for every surviving key, written by hand in the script.
    var v2FromV1: [String: String] { expected["v2_from_v1"] as? [String: String] ?? [:] }
    var groupSpecs: [[String: Any]] { expected["groups"] as? [[String: Any]] ?? [] }
    var v2Names: [String] { groupSpecs.flatMap { $0["names"] as? [String] ?? [] } }

    /// v2's parameters as torch had them before the load (v1's weights where they survive).
    /// `replacing` swaps in other tensors, to provoke mismatches.
    func parameters(replacing: [String: Tensor] = [:]) throws -> [String: Parameter] {
        var result: [String: Parameter] = [:]
        for spec in expected["initial_params"] as? [[String: Any]] ?? [] {
            let name = try #require(spec["name"] as? String)
            result[name] = Parameter(try replacing[name] ?? OptimFixtures.tensor(spec["tensor"]), name: name)
        }
        return result
    }

    /// v2's Adagrad, built as the script builds it (groups, their options, the optimizer-wide settings).
    func optimizer(_ parameters: [String: Parameter], only: Set<String>? = nil) throws -> Adagrad {
        let groups = try groupSpecs.map { spec in
            let names = (spec["names"] as? [String] ?? []).filter { only?.contains($0) ?? true }
            var options = OrderedMap<String, StateValue>()
            for (key, value) in (spec["options"] as? [String: Any] ?? [:]).sorted(by: { $0.key < $1.key }) {
                options[key] = .float(try #require((value as? NSNumber)?.doubleValue))
            }
            return ParamGroup(params: try names.map { try #require(parameters[$0]) }, options: options)
        }
        let iav = try #require(expected["initial_accumulator_value"] as? Double)
        return try Adagrad(groups: groups, lr: 0.1, initialAccumulatorValue: iav)
    }

    /// The v1 state dict's parameter names, in saved order.
    var v1ParamNames: [String] { (expected["v1_param_names"] as? [[String]] ?? []).flatMap { $0 } }
}

@Suite struct RenameLoadingTests {
    /// Compares each parameter's state with torch's record (`after_load` or `final_state`).
    static func expectState(_ optimizer: Optimizer, _ parameters: [String: Parameter], _ record: Any?, _ label: String)
        throws
    {
        let expected = try #require(record as? [String: Any])
        #expect(Set(expected.keys) == Set(parameters.keys), "\(label): torch has state for \(expected.keys.sorted())")
        for (name, parameter) in parameters {
            var observed: Int64 = 0
            let ours = try #require(optimizer.state(for: parameter), "\(label): no state for \(name)")
            let difference = OptimFixtures.difference(
                ours, try OptimFixtures.stateValue(expected[name]), observedULP: &observed)
            #expect(difference == nil, "\(label) \(name): \(difference ?? "")")
        }
    }

    /// Against every recorded machine whose torch.sqrt this CPU reproduces, under its rounding.
    @Test(.enabled(if: !RenameFixture.reproducibleVariants.isEmpty,
                   "no rename fixture comes from a CPU whose torch.sqrt this one reproduces (\(TorchRounding.native))"),
          arguments: RenameFixture.reproducibleVariants)
    func survivingParametersGetTorchsStateAndContinueBitForBit(_ variant: RenameFixture.Variant) throws {
        try TorchRounding.$current.withValue(variant.machine.rounding) {
            try Self.expectSurvivorsContinueAsTorch(try RenameFixture(folder: variant.folder))
        }
    }

    static func expectSurvivorsContinueAsTorch(_ fixture: RenameFixture) throws {
        let parameters = try fixture.parameters()
        let optimizer = try fixture.optimizer(parameters)
        let report = try optimizer.loadStateDict(fixture.optimizer, renaming: fixture.map, strict: false)

        try Self.expectState(optimizer, parameters, fixture.expected["after_load"], "after load")
        guard case .dict(let root) = optimizer.stateDict(), case .list(let groups)? = root["param_groups"] else {
            Issue.record("no param_groups")
            return
        }
        let expectedGroups = try #require(fixture.expected["after_load_groups"] as? [Any])
        #expect(groups.count == expectedGroups.count)
        for (index, (group, expected)) in zip(groups, expectedGroups).enumerated() {
            guard case .dict(var options) = group else { continue }
            options["params"] = nil
            var observed: Int64 = 0
            let difference = OptimFixtures.difference(
                .dict(options), try OptimFixtures.stateValue(expected), observedULP: &observed)
            #expect(difference == nil, "group \(index) options: \(difference ?? "")")
        }

        for step in fixture.expected["steps"] as? [[String: Any]] ?? [] {
            for (name, parameter) in parameters {
                parameter.grad = step[name] is NSNull ? nil : .dense(try OptimFixtures.tensor(step[name]))
            }
            try optimizer.step()
        }
        try Self.expectState(optimizer, parameters, fixture.expected["final_state"], "after the steps")
        let finalParams = try #require(fixture.expected["final_params"] as? [String: Any])
        for (name, parameter) in parameters {
            #expect(try parameter.data.isBitwiseEqual(to: OptimFixtures.tensor(finalParams[name])), "final \(name)")
        }

        let survivors = fixture.v2Names.filter { fixture.v2FromV1[$0] != nil }
        #expect(report.matching == .byName)
        #expect(report.matched == survivors)
        #expect(report.missing == fixture.v2Names.filter { fixture.v2FromV1[$0] == nil })
        #expect(report.unexpected.isEmpty && report.reinitialized.isEmpty)
        let v1ToV2 = Dictionary(uniqueKeysWithValues: fixture.v2FromV1.map { ($1, $0) })
        #expect(
            report.renamed.map { "\($0.from)->\($0.to)" }
                == fixture.v1ParamNames.compactMap { old in
                    v1ToV2[old].flatMap { $0 == old ? nil : "\(old)->\($0)" }
                })
        #expect(report.dropped.map(\.name) == fixture.v1ParamNames.filter { v1ToV2[$0] == nil })
    }

    @Test func strictLoadFailsOnMissingNamesAndChangesNothing() throws {
        let fixture = try RenameFixture()
        let parameters = try fixture.parameters()
        let optimizer = try fixture.optimizer(parameters)
        let before = try Optimizer.deepCopy(optimizer.stateDict())
        let error = try #require(throws: RenameError.self) {
            try optimizer.loadStateDict(fixture.optimizer, renaming: fixture.map)
        }
        #expect(error.code == .missingNames)
        #expect(
            error.message
                == #"strict name-based loading: no saved state for "extra.weight", "extra.bias" (load with strict: false to skip them)"#
        )
        var observed: Int64 = 0
        #expect(OptimFixtures.difference(optimizer.stateDict(), before, observedULP: &observed) == nil)
    }

    @Test func strictLoadFailsOnUnexpectedNames() throws {
        let fixture = try RenameFixture()
        let parameters = try fixture.parameters()
        let optimizer = try fixture.optimizer(parameters, only: Set(fixture.v2FromV1.keys))
        let keepAux = try RenameMap(Array(fixture.map.rules[0].dropLast()))
        let error = try #require(throws: RenameError.self) {
            try optimizer.loadStateDict(fixture.optimizer, renaming: keepAux)
        }
        #expect(error.code == .unexpectedNames)
        #expect(
            error.message
                == #"strict name-based loading: saved state for unknown names "aux.weight", "aux.bias" (load with strict: false to skip them)"#
        )
        let report = try optimizer.loadStateDict(fixture.optimizer, renaming: keepAux, strict: false)
        #expect(report.unexpected == ["aux.weight", "aux.bias"] && report.missing.isEmpty)
        // With the drop rule the same optimizer loads strictly.
        #expect(
            try optimizer.loadStateDict(fixture.optimizer, renaming: fixture.map).dropped.map(\.name) == [
                "aux.weight", "aux.bias",
            ])
    }

    /// (replacement for head.weight, message) — v1's fc.weight (id 12) has shape [3, 6], float32.
    static let mismatches: [(DType, [Int], String)] = [
        (
            .float32, [4, 6],
            #"the saved state of parameter "head.weight" does not fit it: sum has shape [3, 6], the parameter [4, 6]"#
        ),
        (
            .float64, [3, 6],
            #"the saved state of parameter "head.weight" does not fit it: sum has dtype float32, the parameter float64"#
        ),
    ]

    @Test(arguments: mismatches)
    func mismatchIsAnErrorOrReinitializes(_ dtype: DType, _ shape: [Int], _ message: String) throws {
        let fixture = try RenameFixture()
        let parameters = try fixture.parameters(replacing: ["head.weight": Tensor(zeros: dtype, shape: shape)])
        let optimizer = try fixture.optimizer(parameters)
        let error = try #require(throws: RenameError.self) {
            try optimizer.loadStateDict(fixture.optimizer, renaming: fixture.map, strict: false)
        }
        #expect(error.code == .stateMismatch)
        #expect(error.message == message)
        #expect(error.path == "state/12")

        let report = try optimizer.loadStateDict(
            fixture.optimizer, renaming: fixture.map, strict: false, onMismatch: .reinitialize)
        #expect(report.reinitialized == ["head.weight"])
        #expect(!report.matched.contains("head.weight") && report.matched.contains("head.bias"))
        let head = try #require(parameters["head.weight"])
        guard case .dict(let state)? = optimizer.state(for: head), case .tensor(let step)? = state["step"],
            case .tensor(let sum)? = state["sum"]
        else {
            Issue.record("no fresh state for head.weight")
            return
        }
        #expect(try step.singleValue() == 0)
        #expect(sum.dtype == dtype && sum.shape == shape)
        let initial = dtype == .float32 ? Double(Float(0.1)) : 0.1
        #expect(try sum.cast(to: .float64).scalars(as: Double.self).allSatisfy { $0 == initial })
    }

    @Test func withoutNamesLoadingIsPositionalAndSaysSo() throws {
        let unnamed = [
            Parameter(try Tensor([Float(1), 2], shape: [2])), Parameter(try Tensor([Float(3)], shape: [1])),
        ]
        let source = try Adagrad(unnamed, lr: 0.5)
        let target = try Adagrad([
            Parameter(try Tensor([Float(0), 0], shape: [2])), Parameter(try Tensor([Float(0)], shape: [1])),
        ])
        let report = try target.loadStateDict(source.stateDict(), renaming: .identity)
        #expect(report.matching == .positional(reason: "the saved parameter groups carry no param_names"))
        #expect(target.paramGroups[0]["lr"] == .float(0.5))

        let named = try Adagrad([
            Parameter(try Tensor([Float(0), 0], shape: [2]), name: "a"),
            Parameter(try Tensor([Float(0)], shape: [1]), name: "b"),
        ])
        let positional = try target.loadStateDict(named.stateDict(), renaming: .identity)
        #expect(positional.matching == .positional(reason: "the optimizer's parameters have no names"))
    }

    @Test func renameCollisionDuringLoadNamesTheRule() throws {
        let fixture = try RenameFixture()
        let optimizer = try fixture.optimizer(try fixture.parameters())
        let map = try RenameMap([.exact("fc.weight", to: "fc.bias")])
        let error = try #require(throws: RenameError.self) {
            try optimizer.loadStateDict(fixture.optimizer, renaming: map)
        }
        #expect(error.code == .collision)
        #expect(
            error.message
                == #"two names would be renamed to "fc.bias": "fc.bias" keeps its name, but rule 0 {"exact": "fc.weight", "to": "fc.bias"} sends "fc.weight" to "fc.bias""#
        )
        #expect(error.path == "param_groups")
    }

    @Test func duplicateSavedNameIsAnError() throws {
        let a = Parameter(try Tensor([Float(1)], shape: [1]), name: "w")
        let optimizer = try Adagrad([a])
        var saved = optimizer.stateDict()
        guard case .dict(var root) = saved, case .list(var groups)? = root["param_groups"],
            case .dict(var group) = groups[0]
        else {
            Issue.record("unexpected layout")
            return
        }
        group["params"] = .list([.int(0), .int(1)])
        group["param_names"] = .list([.string("w"), .string("w")])
        groups[0] = .dict(group)
        root["param_groups"] = .list(groups)
        saved = .dict(root)
        let error = try #require(throws: RenameError.self) { try optimizer.loadStateDict(saved, renaming: .identity) }
        #expect(error.code == .duplicateName)
        #expect(error.message == #"the name "w" occurs twice"#)

        // The name hook on its own checks too.
        let handle = optimizer.registerNameBasedLoadPreHook()
        defer { handle.remove() }
        let alone = try #require(throws: RenameError.self) { try optimizer.loadStateDict(saved) }
        #expect(alone.code == .duplicateName)
        #expect(alone.message == #"the saved parameter name "w" occurs twice"#)
        #expect(alone.path == "param_groups/0/param_names")
    }

    @Test func duplicateCurrentNameIsAnError() throws {
        let first = Parameter(try Tensor([Float(1)], shape: [1]), name: "w")
        let second = Parameter(try Tensor([Float(2)], shape: [1]), name: "w")
        let optimizer = try Adagrad([first, second])
        let saved = try Adagrad([Parameter(try Tensor([Float(1)], shape: [1]), name: "w")]).stateDict()
        let error = try #require(throws: RenameError.self) { try optimizer.loadStateDict(saved, renaming: .identity) }
        #expect(error.code == .duplicateName)
        #expect(error.message == #"the optimizer has two parameters named "w""#)
    }

    @Test func malformedOptimizerStateDictIsAnError() throws {
        let optimizer = try Adagrad([Parameter(try Tensor([Float(1)], shape: [1]), name: "w")])
        let cases: [(StateValue, String, String)] = [
            (.dict(["state": .dict([:])]), "param_groups", "missing or not a list"),
            (
                .dict([
                    "state": .dict([:]),
                    "param_groups": .list([.dict(["params": .list([.int(0)]), "param_names": .list([])])]),
                ]),
                "param_groups/0/param_names", "0 param_names for 1 params"
            ),
            (
                .dict([
                    "state": .dict([:]),
                    "param_groups": .list([.dict(["params": .list([.int(0)]), "param_names": .list([.int(3)])])]),
                ]),
                "param_groups/0/param_names", "a parameter name must be a str, found int"
            ),
        ]
        for (value, path, message) in cases {
            let error = try #require(throws: RenameError.self) {
                try optimizer.loadStateDict(value, renaming: .identity)
            }
            #expect(error.code == .malformedStateDict)
            #expect(error.path == path && error.message == message, "\(error)")
        }
    }

    /// Seeded corruptions of torch's v1 optimizer dict (a value somewhere replaced by another kind):
    /// loading by name reads or throws a typed error, never traps.
    @Test func corruptedOptimizerDictsLoadOrThrow() throws {
        let fixture = try RenameFixture()
        var generator = SplitMix64(seed: 1489)
        let replacements: [StateValue] = [
            .none, .int(-1), .int(Int64.max), .string("x"), .list([]), .list([.int(0), .int(0)]), .dict([:]),
            .tensor(try Tensor([Float(1)], shape: [1])), .list([.string("fc.weight"), .string("fc.weight")]),
        ]
        var outcomes = (loaded: 0, rejected: 0)
        for _ in 0..<400 {
            let corrupted = Self.corrupt(try fixture.optimizer, replacements, &generator)
            let optimizer = try fixture.optimizer(try fixture.parameters())
            do {
                try optimizer.loadStateDict(corrupted, renaming: fixture.map, strict: false, onMismatch: .reinitialize)
                outcomes.loaded += 1
            } catch is RenameError {
                outcomes.rejected += 1
            } catch is OptimizerError {
                outcomes.rejected += 1
            } catch is CheckpointError {
                outcomes.rejected += 1
            }
        }
        #expect(outcomes.loaded > 0 && outcomes.rejected > 0, "\(outcomes)")
    }

    /// The tree with one randomly chosen node (at any depth) replaced.
    static func corrupt(_ value: StateValue, _ replacements: [StateValue], _ generator: inout SplitMix64)
        -> StateValue
    {
        let stop = Int.random(in: 0..<4, using: &generator) == 0
        switch value {
        case .dict(var dict) where !dict.items.isEmpty && !stop:
            let index = Int.random(in: 0..<dict.items.count, using: &generator)
            let key = dict.items.keys[index]
            dict.items[key] = corrupt(dict.items.values[index], replacements, &generator)
            return .dict(dict)
        case .list(var items) where !items.isEmpty && !stop:
            let index = Int.random(in: 0..<items.count, using: &generator)
            items[index] = corrupt(items[index], replacements, &generator)
            return .list(items)
        default:
            return replacements.randomElement(using: &generator) ?? .none
        }
    }

    @Test func hooksStackWithTheUsersOwn() throws {
        let fixture = try RenameFixture()
        let parameters = try fixture.parameters()
        let optimizer = try fixture.optimizer(parameters)
        var order: [String] = []
        var matchReport = RenameReport()
        optimizer.registerLoadStateDictPreHook { _, _ in
            order.append("user before")
            return nil
        }
        optimizer.registerRenamePreHook(fixture.map) { _ in order.append("rename") }
        // A user hook between the two sees v2's names already.
        optimizer.registerLoadStateDictPreHook { _, dict in
            if case .list(let groups)? = dict["param_groups"], case .list(let names)? = groups.first?["param_names"],
                case .string(let first)? = names.first
            {
                order.append("user sees \(first)")
            }
            return nil
        }
        optimizer.registerNameBasedLoadPreHook(strict: false) {
            order.append("match")
            matchReport = $0
        }
        try optimizer.loadStateDict(fixture.optimizer)
        #expect(order == ["user before", "rename", "user sees model.encoder.0.weight", "match"])
        #expect(matchReport.missing == ["extra.weight", "extra.bias"])
        try Self.expectState(optimizer, parameters, fixture.expected["after_load"], "stacked hooks")
    }

    @Test func checkpointRenamesModelAndOptimizerConsistently() throws {
        let fixture = try RenameFixture()
        let renamed = try fixture.map.renameCheckpoint(fixture.v1)
        let v1ToV2 = Dictionary(uniqueKeysWithValues: fixture.v2FromV1.map { ($1, $0) })
        guard case .dict(let model)? = renamed.value["model"], case .dict(let original) = try fixture.model else {
            Issue.record("no model dict")
            return
        }
        let v1Keys = fixture.expected["v1_model_keys"] as? [String] ?? []
        #expect(model.items.keys.map(\.description) == v1Keys.compactMap { v1ToV2[$0] })
        #expect(model.isOrderedDict)
        for (old, new) in v1ToV2 {
            #expect(model[.string(new)] == original[.string(old)], "\(old) -> \(new)")
        }
        // torch's own v2 module tree has every renamed _metadata prefix; only v2's new modules lack one.
        guard case .dict(let metadata)? = model.attributes["_metadata"] else {
            Issue.record("no _metadata")
            return
        }
        let v2Prefixes = Set(fixture.expected["v2_metadata_prefixes"] as? [String] ?? [])
        #expect(Set(metadata.items.keys.map(\.description)) == v2Prefixes.subtracting(["model", "extra"]))

        let optimizerReport = try #require(renamed.optimizer)
        #expect(optimizerReport.dropped.map(\.name) == ["aux.weight", "aux.bias"])
        guard case .list(let groups)? = renamed.value["optimizer"]?["param_groups"] else {
            Issue.record("no param_groups")
            return
        }
        let names = groups.flatMap { group -> [String] in
            guard case .list(let names)? = group["param_names"] else { return [] }
            return names.compactMap { if case .string(let name) = $0 { name } else { nil } }
        }
        #expect(names == fixture.v1ParamNames.compactMap { v1ToV2[$0] })
        let ids = groups.flatMap { group -> [Int64] in
            guard case .list(let ids)? = group["params"] else { return [] }
            return ids.compactMap { if case .int(let id) = $0 { id } else { nil } }
        }
        #expect(ids == Array(0..<12))
        #expect(renamed.model?.renamed.count == 10)

        // The renamed optimizer dict loads by name with no map and gives torch's state.
        let parameters = try fixture.parameters()
        let optimizer = try fixture.optimizer(parameters)
        let report = try optimizer.loadStateDict(
            try #require(renamed.value["optimizer"]), renaming: .identity, strict: false)
        #expect(report.renamed.isEmpty && report.missing == ["extra.weight", "extra.bias"])
        try Self.expectState(optimizer, parameters, fixture.expected["after_load"], "renamed file")
    }

    @Test func strictMapCountsRulesUsedByTheModelOrTheOptimizer() throws {
        let fixture = try RenameFixture()
        // running_mean is a model key, never an optimizer name: strict still passes for the checkpoint...
        let map = try RenameMap([.exact("bn.running_mean", to: "bn.mean")], strict: true)
        let renamed = try map.renameCheckpoint(fixture.v1)
        #expect(renamed.model?.renamed.map(\.to) == ["bn.mean"])
        // ...but not for the optimizer alone.
        let error = try #require(throws: RenameError.self) { try map.renameOptimizerStateDict(fixture.optimizer) }
        #expect(error.code == .unmatchedRule)
        #expect(
            error.message
                == #"rule 0 {"exact": "bn.running_mean", "to": "bn.mean"} matches no name (the map is strict)"#)
    }

    @Test func modelMetadataFollowsItsKeys() throws {
        var metadata = StateDict(isOrderedDict: true)
        for prefix in ["", "enc", "enc.0", "enc.act", "mixed", "gone"] {
            metadata[.string(prefix)] = .dict(["version": .int(1)])
        }
        var model = StateDict(isOrderedDict: true, attributes: ["_metadata": .dict(metadata)])
        for key in ["enc.0.weight", "mixed.a", "mixed.b", "gone.w"] { model[.string(key)] = .int(0) }
        let map = try RenameMap([.prefix("enc.", to: "encoder."), .exact("mixed.a", to: "x.a"), .drop("gone\\..*")])
        let (value, report) = try map.renameModelStateDict(.dict(model))
        guard case .dict(let renamed) = value, case .dict(let newMetadata)? = renamed.attributes["_metadata"] else {
            Issue.record("no _metadata")
            return
        }
        #expect(newMetadata.items.keys.map(\.description) == ["", "encoder", "encoder.0", "encoder.act", "mixed"])
        #expect(
            report.notes.contains(#"_metadata: kept the module prefix "mixed": its keys moved to different modules"#))
        #expect(report.notes.contains(#"_metadata: dropped the module prefix "gone" with its keys"#))
        #expect(renamed.items.keys.map(\.description) == ["encoder.0.weight", "x.a", "mixed.b"])
    }

    @Test func modelStateDictWithIntKeysIsAnError() throws {
        let error = try #require(throws: RenameError.self) {
            try RenameMap.identity.renameModelStateDict(.dict(StateDict([.int(3): .int(0)])))
        }
        #expect(error.code == .malformedStateDict)
        #expect(error.message == "a model state dict key must be a string, found the int 3")
    }
}
