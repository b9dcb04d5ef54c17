import Checkpoint
import Foundation
import Testing
@testable import Optim

// Scenarios written by real torch (scripts/make_optim_fixtures.py): the same data drives torch and
// ckpt, and ckpt's outcome must equal what torch recorded, bit for bit.

/// A JSON fixture file decoded, with helpers to turn its encodings into ckpt values.
enum OptimFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/optim", isDirectory: true)

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
    }

    /// The scenarios of `<file>.json` in `folder` (Tests/Fixtures/optim by default); a missing
    /// file is an error, not a skip.
    static func scenarios(_ file: String, in folder: URL = directory) throws -> [[String: Any]] {
        let url = folder.appendingPathComponent("\(file).json")
        let data = try Data(contentsOf: url)
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let scenarios = root["scenarios"] as? [[String: Any]] else {
            throw FixtureError(description: "\(url.path): no scenarios")
        }
        return scenarios
    }

    /// The names of a file's scenarios, for parameterized tests (empty if the file is missing,
    /// which `scenariosArePresent` reports as a failure).
    static func names(_ file: String) -> [String] {
        ((try? scenarios(file)) ?? []).compactMap { $0["name"] as? String }
    }

    static func scenario(_ file: String, _ name: String, in folder: URL = directory) throws -> [String: Any] {
        guard let found = try scenarios(file, in: folder).first(where: { $0["name"] as? String == name }) else {
            throw FixtureError(description: "no scenario \(name) in \(file).json")
        }
        return found
    }

    /// One scenario of a machine-dependent file, as one machine's torch recorded it.
    struct MachineScenario: Sendable, CustomTestStringConvertible {
        let name: String
        let machine: TorchMachine
        let folder: URL
        var testDescription: String { "\(name) on \(machine)" }
    }

    /// Every scenario of `file` in every recorded machine's variant whose torch.sqrt this CPU reproduces.
    static func reproducibleScenarios(_ file: String) -> [MachineScenario] {
        TorchMachine.variants(in: directory, factsFile: "\(file).json")
            .filter { $0.machine.sqrtIsReproducible }
            .flatMap { variant in
                ((try? scenarios(file, in: variant.directory)) ?? []).compactMap { $0["name"] as? String }
                    .map { MachineScenario(name: $0, machine: variant.machine, folder: variant.directory) }
            }
    }

    static func bytes(hex: String) throws -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(hex.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { throw FixtureError(description: "bad hex") }
            result.append(byte)
            index = next
        }
        return result
    }

    static func tensor(_ spec: Any?) throws -> Tensor {
        guard let spec = spec as? [String: Any], let dtypeName = spec["dtype"] as? String,
              let dtype = DType(rawValue: dtypeName), let shape = spec["shape"] as? [Int], let hex = spec["hex"] as? String else {
            throw FixtureError(description: "bad tensor spec \(String(describing: spec))")
        }
        return try Tensor(storage: Storage(bytes: bytes(hex: hex)), dtype: dtype, shape: shape)
    }

    /// A state tree from the fixture encoding (`{"t": "dict", "items": [[key, value], ...]}`, ...).
    static func stateValue(_ json: Any?) throws -> StateValue {
        guard let node = json as? [String: Any], let kind = node["t"] as? String else {
            throw FixtureError(description: "bad state value \(String(describing: json))")
        }
        switch kind {
        case "tensor": return .tensor(try tensor(node))
        case "bool": return .bool(node["v"] as? Bool ?? false)
        case "int": return .int((node["v"] as? NSNumber)?.int64Value ?? 0)
        case "float":
            let raw = try bytes(hex: node["hex"] as? String ?? "")
            guard raw.count == 8 else { throw FixtureError(description: "bad float") }
            return .float(Double(bitPattern: raw.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian))
        case "none": return .none
        case "str": return .string(node["v"] as? String ?? "")
        case "list": return .list(try (node["items"] as? [Any] ?? []).map(stateValue))
        case "tuple": return .tuple(try (node["items"] as? [Any] ?? []).map(stateValue))
        case "counter":
            // `collections.Counter` as ckpt reads one from a pickle: Counter(dict) through REDUCE.
            var counts = StateDict()
            for pair in node["items"] as? [[NSNumber]] ?? [] where pair.count == 2 {
                counts[.int(pair[0].int64Value)] = .int(pair[1].int64Value)
            }
            return .object(PickledObject(module: "collections", name: "Counter", construction: .reduce, args: [.dict(counts)]))
        case "dict":
            var dict = StateDict()
            for pair in node["items"] as? [[Any]] ?? [] {
                guard pair.count == 2, let key = pair[0] as? [String: Any] else { throw FixtureError(description: "bad dict item") }
                let stateKey: StateKey
                if let text = key["str"] as? String {
                    stateKey = .string(text)
                } else if let number = key["int"] as? NSNumber {
                    stateKey = .int(number.int64Value)
                } else {
                    throw FixtureError(description: "bad dict key")
                }
                dict[stateKey] = try stateValue(pair[1])
            }
            return .dict(dict)
        default:
            throw FixtureError(description: "unknown state value kind \(kind)")
        }
    }

    /// A gradient spec: nil, `{"dense": tensor}` or `{"sparse": {indices, values, shape}}`.
    static func gradient(_ json: Any?) throws -> Gradient? {
        guard let node = json as? [String: Any] else { return nil }
        if let dense = node["dense"] { return .dense(try tensor(dense)) }
        guard let sparse = node["sparse"] as? [String: Any], let rows = sparse["indices"] as? [[Int]],
              let shape = sparse["shape"] as? [Int] else {
            throw FixtureError(description: "bad gradient spec")
        }
        let flat = rows.flatMap { $0.map(Int64.init) }
        let indices = try Tensor(flat, shape: [rows.count, rows.first?.count ?? 0])
        return .sparse(try SparseTensor(indices: indices, values: tensor(sparse["values"]), shape: shape))
    }

    /// Where ckpt deliberately differs from torch 2.15 (fresh state for a parameter added later
    /// or missing from a loaded dict, which torch creates only at its first step): checks that
    /// ckpt's state for `ids` is fresh (`step` 0, `sum` all `initialValue`) and removes it, so the
    /// rest can be compared with torch's dict.
    static func removingFreshState(_ stateDict: StateValue, ids: [Int], initialValue: Double) throws -> StateValue {
        guard case .dict(var root) = stateDict, case .dict(var state)? = root["state"] else { return stateDict }
        for id in ids {
            guard case .dict(let entry)? = state[.int(Int64(id))], case .tensor(let step)? = entry["step"],
                  case .tensor(let sum)? = entry["sum"] else {
                Issue.record("no fresh state for id \(id)")
                continue
            }
            #expect(try step.dtype == .float32 && step.singleValue() == 0, "fresh step of id \(id)")
            let values = try sum.cast(to: .float64).scalars(as: Double.self)
            #expect(values.allSatisfy { $0 == initialValue }, "fresh sum of id \(id): \(values)")
            state[.int(Int64(id))] = nil
        }
        root["state"] = .dict(state)
        return .dict(root)
    }

    /// The largest distance in units in the last place between corresponding elements of two
    /// float32, float64 or complex tensors of one dtype and shape (NaN equals NaN), or nil when
    /// they cannot be compared that way.
    static func maxULPDistance(_ a: Tensor, _ b: Tensor) -> Int64? {
        guard a.dtype == b.dtype, a.shape == b.shape, let x = try? a.contiguousBytes(), let y = try? b.contiguousBytes() else {
            return nil
        }
        switch a.dtype {
        case .float32, .complex64:
            let (fx, fy) = (x.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, y.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) })
            return zip(fx, fy).map { $0.isNaN && $1.isNaN ? 0 : (orderedKey($0) - orderedKey($1)).magnitude }.map(Int64.init).max() ?? 0
        case .float64, .complex128:
            let (dx, dy) = (x.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }, y.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) })
            return zip(dx, dy).map { $0.isNaN && $1.isNaN ? 0 : Int64(clamping: (orderedKey($0) - orderedKey($1)).magnitude) }.max() ?? 0
        default:
            return nil
        }
    }

    /// Consecutive floats map to consecutive integers (±0 both to 0).
    private static func orderedKey(_ value: Float) -> Int64 {
        let magnitude = Int64(value.magnitude.bitPattern)
        return value.sign == .minus ? -magnitude : magnitude
    }

    private static func orderedKey(_ value: Double) -> Int64 {
        let magnitude = Int64(value.magnitude.bitPattern)
        return value.sign == .minus ? -magnitude : magnitude
    }

    /// The first place two trees differ, as a key path and both values, or nil when equal.
    /// Float32 and float64 tensors may differ by up to `ulpTolerance` units in the last place;
    /// `observedULP` collects the largest distance accepted.
    static func difference(
        _ a: StateValue, _ b: StateValue, path: String = "", ulpTolerance: Int64 = 0, observedULP: inout Int64
    ) -> String? {
        switch (a, b) {
        case let (.dict(x), .dict(y)):
            if x.items.keys.elements != y.items.keys.elements {
                return "\(path): keys \(x.items.keys.elements) vs \(y.items.keys.elements)"
            }
            for (key, value) in x.items {
                if let found = difference(value, y.items[key]!, path: "\(path)/\(key)", ulpTolerance: ulpTolerance,
                                          observedULP: &observedULP) { return found }
            }
            return nil
        case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)):
            if x.count != y.count { return "\(path): \(x.count) vs \(y.count) items" }
            for (index, pair) in zip(x, y).enumerated() {
                if let found = difference(pair.0, pair.1, path: "\(path)/\(index)", ulpTolerance: ulpTolerance,
                                          observedULP: &observedULP) { return found }
            }
            return nil
        case let (.tensor(x), .tensor(y)):
            if (try? x.isBitwiseEqual(to: y)) == true { return nil }
            if ulpTolerance > 0, let distance = maxULPDistance(x, y), distance <= ulpTolerance {
                observedULP = max(observedULP, distance)
                return nil
            }
            return "\(path): tensor \(x.dtype) \(x.shape) \(describe(x)) vs \(y.dtype) \(y.shape) \(describe(y))"
        default:
            return a == b ? nil : "\(path): \(a) vs \(b)"
        }
    }

    static func describe(_ tensor: Tensor) -> String {
        guard let converted = try? tensor.cast(to: .float64), let values = try? converted.scalars(as: Double.self) else {
            return "?"
        }
        return "\(values.prefix(6))"
    }
}

/// A scenario run through ckpt: its parameters, optimizer, and what happened.
struct ScenarioRun {
    var params: [Parameter] = []
    var optimizer: Optimizer?
    var error: Error?
    var afterLoad: StateValue?

    /// Mirrors `run` in make_optim_fixtures.py.
    init(_ scenario: [String: Any]) throws {
        do {
            try execute(scenario)
        } catch let error as OptimizerError {
            self.error = error
        } catch let error as CheckpointError {
            self.error = error
        }
    }

    private static func parameter(_ spec: [String: Any]) throws -> Parameter {
        Parameter(try OptimFixtures.tensor(spec), name: spec["name"] as? String)
    }

    private static func options(_ json: Any?) -> OrderedMap<String, StateValue> {
        var options = OrderedMap<String, StateValue>()
        for pair in json as? [[Any]] ?? [] {
            guard pair.count == 2, let key = pair[0] as? String, let number = pair[1] as? NSNumber else { continue }
            options[key] = .float(number.doubleValue)
        }
        return options
    }

    private mutating func execute(_ scenario: [String: Any]) throws {
        params = try (scenario["params"] as? [[String: Any]] ?? []).map(ScenarioRun.parameter)
        let kwargs = scenario["kwargs"] as? [String: Any] ?? [:]
        // Non-finite options travel as Python reprs ("nan", "-inf").
        func number(_ key: String) -> Double? {
            (kwargs[key] as? NSNumber)?.doubleValue ?? (kwargs[key] as? String).flatMap(Double.init)
        }
        func flag(_ key: String) -> Bool? { kwargs[key] as? Bool }
        let groups: [ParamGroup]
        if let groupSpecs = scenario["groups"] as? [[String: Any]] {
            groups = groupSpecs.map { spec in
                ParamGroup(params: (spec["params"] as? [Int] ?? []).map { params[$0] }, options: ScenarioRun.options(spec["options"]))
            }
        } else {
            groups = [ParamGroup(params: params)]
        }
        let optimizer: Optimizer = if scenario["optimizer"] as? String == "SGD" {
            try ScenarioRun.sgd(groups, lrTensor: kwargs["lr_tensor"], number: number, flag: flag)
        } else {
            try ScenarioRun.adagrad(groups, singleGroup: scenario["groups"] as? [[String: Any]] == nil,
                                    lrTensor: kwargs["lr_tensor"], number: number, flag: flag)
        }
        self.optimizer = optimizer
        for added in scenario["add_groups"] as? [[String: Any]] ?? [] {
            let extra = try (added["new_params"] as? [[String: Any]] ?? []).map(ScenarioRun.parameter)
            params.append(contentsOf: extra)
            let existing = (added["existing"] as? [Int] ?? []).map { params[$0] }
            try optimizer.addParamGroup(ParamGroup(params: extra + existing, options: ScenarioRun.options(added["options"])))
        }
        if let load = scenario["load"] {
            try optimizer.loadStateDict(OptimFixtures.stateValue(load))
            // A snapshot: the dict's tensors share storage with the state the next steps update.
            afterLoad = try Optimizer.deepCopy(optimizer.stateDict())
        }
        for step in scenario["steps"] as? [[String: Any]] ?? [] {
            for change in step["set"] as? [[Any]] ?? [] {
                guard change.count == 3, let group = change[0] as? Int, let key = change[1] as? String,
                      let value = change[2] as? NSNumber else { continue }
                try optimizer.setOption(key, to: .float(value.doubleValue), inGroup: group)
            }
            for (parameter, grad) in zip(params, step["grads"] as? [Any] ?? []) {
                parameter.grad = try OptimFixtures.gradient(grad)
            }
            try optimizer.step()
        }
    }

    private static func adagrad(
        _ groups: [ParamGroup], singleGroup: Bool, lrTensor: Any?, number: (String) -> Double?, flag: (String) -> Bool?
    ) throws -> Adagrad {
        if singleGroup, lrTensor == nil {
            return try Adagrad(
                groups[0].params, lr: number("lr") ?? 1e-2, lrDecay: number("lr_decay"), weightDecay: number("weight_decay"),
                initialAccumulatorValue: number("initial_accumulator_value"), eps: number("eps") ?? 1e-10,
                foreach: flag("foreach"), maximize: flag("maximize") ?? false,
                differentiable: flag("differentiable") ?? false, fused: flag("fused"))
        } else if let lrTensor {
            return try Adagrad(
                groups[0].params, lr: OptimFixtures.tensor(lrTensor), lrDecay: number("lr_decay"),
                weightDecay: number("weight_decay"), initialAccumulatorValue: number("initial_accumulator_value"),
                eps: number("eps") ?? 1e-10, foreach: flag("foreach"), maximize: flag("maximize") ?? false,
                differentiable: flag("differentiable") ?? false, fused: flag("fused"))
        }
        return try Adagrad(
            groups: groups, lr: number("lr") ?? 1e-2, lrDecay: number("lr_decay"), weightDecay: number("weight_decay"),
            initialAccumulatorValue: number("initial_accumulator_value"), eps: number("eps") ?? 1e-10,
            foreach: flag("foreach"), maximize: flag("maximize") ?? false,
            differentiable: flag("differentiable") ?? false, fused: flag("fused"))
    }

    private static func sgd(_ groups: [ParamGroup], lrTensor: Any?, number: (String) -> Double?, flag: (String) -> Bool?) throws -> SGD {
        // An empty parameter list is one group of nothing, which SGD rejects as torch does.
        let groups = groups.count == 1 && groups[0].params.isEmpty ? [] : groups
        if let lrTensor {
            return try SGD(
                groups: groups, lr: OptimFixtures.tensor(lrTensor), momentum: number("momentum"), dampening: number("dampening"),
                weightDecay: number("weight_decay"), nesterov: flag("nesterov") ?? false, maximize: flag("maximize") ?? false,
                foreach: flag("foreach"), differentiable: flag("differentiable") ?? false, fused: flag("fused"))
        }
        return try SGD(
            groups: groups, lr: number("lr") ?? 1e-3, momentum: number("momentum"), dampening: number("dampening"),
            weightDecay: number("weight_decay"), nesterov: flag("nesterov") ?? false, maximize: flag("maximize") ?? false,
            foreach: flag("foreach"), differentiable: flag("differentiable") ?? false, fused: flag("fused"))
    }

    /// Fresh Adagrad state starts at the optimizer's initial accumulator value (only Adagrad's
    /// scenarios name fresh state).
    private static func initialAccumulatorValue(_ optimizer: Optimizer) throws -> Double {
        try #require(optimizer as? Adagrad).initialAccumulatorValue
    }

    /// Checks this run against torch's record: the same error, or the same state dict and
    /// parameters (float32/float64 within `ulpTolerance` units in the last place).
    ///
    /// - Returns: The largest distance in ulps accepted (0 when bit-identical).
    @discardableResult
    func expectMatches(_ scenario: [String: Any], ulpTolerance: Int64 = 0, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int64 {
        var observed: Int64 = 0
        let name = scenario["name"] as? String ?? "?"
        if let expectedError = scenario["error"] as? [String: Any] {
            let message = expectedError["message"] as? String
            let code: OptimizerError.Code? = switch expectedError["type"] as? String {
            case "ValueError": .invalidValue
            case "RuntimeError": .unsupported
            case "TypeError": .invalidType
            default: nil
            }
            guard let error = error as? OptimizerError else {
                Issue.record("\(name): expected torch's error \(expectedError), got \(String(describing: error))", sourceLocation: sourceLocation)
                return 0
            }
            #expect(error.message == message, "\(name)", sourceLocation: sourceLocation)
            #expect(error.code == code, "\(name)", sourceLocation: sourceLocation)
            return 0
        }
        if let error {
            Issue.record("\(name): torch succeeded but ckpt threw \(error)", sourceLocation: sourceLocation)
            return 0
        }
        guard let optimizer else { return 0 }
        let warnings = scenario["warnings"] as? [String] ?? []
        #expect(optimizer.warnings == warnings, "\(name)", sourceLocation: sourceLocation)
        if let afterLoad = scenario["after_load"], var ours = self.afterLoad {
            if let fresh = scenario["fresh_state_ids_after_load"] as? [Int] {
                ours = try OptimFixtures.removingFreshState(ours, ids: fresh, initialValue: try Self.initialAccumulatorValue(optimizer))
            }
            let difference = OptimFixtures.difference(
                ours, try OptimFixtures.stateValue(afterLoad), ulpTolerance: ulpTolerance, observedULP: &observed)
            #expect(difference == nil, "\(name) after load: \(difference ?? "")", sourceLocation: sourceLocation)
        }
        let expected = try OptimFixtures.stateValue(scenario["expected"])
        var ours = optimizer.stateDict()
        if let fresh = scenario["fresh_state_ids"] as? [Int] {
            ours = try OptimFixtures.removingFreshState(ours, ids: fresh, initialValue: try Self.initialAccumulatorValue(optimizer))
        }
        let difference = OptimFixtures.difference(ours, expected, ulpTolerance: ulpTolerance, observedULP: &observed)
        #expect(difference == nil, "\(name): \(difference ?? "")", sourceLocation: sourceLocation)
        let finalParams = scenario["final_params"] as? [Any] ?? []
        #expect(finalParams.count == params.count, "\(name)", sourceLocation: sourceLocation)
        for (index, (parameter, spec)) in zip(params, finalParams).enumerated() {
            let difference = OptimFixtures.difference(
                .tensor(parameter.data), .tensor(try OptimFixtures.tensor(spec)), ulpTolerance: ulpTolerance, observedULP: &observed)
            #expect(difference == nil, "\(name) param \(index): \(difference ?? "")", sourceLocation: sourceLocation)
        }
        return observed
    }
}
