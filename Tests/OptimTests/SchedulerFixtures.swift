import Checkpoint
import Foundation
import Testing
@testable import Optim

// The scheduler scenarios torch ran in scripts/make_scheduler_fixtures.py, rebuilt in ckpt: the same
// optimizer options, the same scheduler arguments, the same functions, the same operations.

/// An optimizer with torch's SGD or Adam options that never changes a parameter: a scheduler only
/// reads and writes group options, so this is all the scheduler fixtures need.
final class OptionsOnlyOptimizer: Optimizer {
    override func performStep() throws {}
}

enum SchedulerFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/schedulers", isDirectory: true)

    /// The functions of the script's LAMBDAS, in Swift, operation for operation.
    static let lambdas: [String: @Sendable (Int) -> Double] = [
        "pow095": { pow(0.95, Double($0)) },
        "warmup10": { epoch in
            let ramp = Double(epoch + 1) / 10
            return ramp < 1.0 ? ramp : 1.0  // Python's min(1.0, ramp) keeps 1.0 unless ramp is smaller
        },
        "div30": { Double((try? PythonArithmetic.floorDivide($0, 30)) ?? 0) },
        "const095": { _ in 0.95 },
        "alternate": { ((try? PythonArithmetic.modulo($0, 2)) ?? 0) != 0 ? 0.9 : 1.05 },
        "inverse": { 1 / (1.0 + 0.01 * Double($0)) },
        "halfpow": { pow(0.5, Double($0)) },
    ]

    /// One operation of a scenario.
    enum Operation {
        case plain
        case epoch(Int)
        case fractionalEpoch(Double)
        case metric(Double)
    }

    struct Scenario {
        let name: String
        let json: [String: Any]
        let operations: [Operation]
        /// Per group: the rate after construction, then after each operation torch completed.
        let lrs: [[Double]]
        let momenta: [[Double]]?
        let error: String?
        let saveAt: [Int]
        let finalState: StateValue
        let optimizerGroups: StateValue

        func makeOptimizer() throws -> OptionsOnlyOptimizer { try SchedulerFixtures.makeOptimizer(json) }

        func makeScheduler(on optimizer: Optimizer, loadOrderCheck: LoadOrderCheck = .error) throws -> LRScheduler {
            try SchedulerFixtures.build(json["scheduler"], on: optimizer, loadOrderCheck: loadOrderCheck)
        }

        /// The rates torch recorded after `count` operations, one per group.
        func lrs(after count: Int) -> [Double] { lrs.map { $0[count] } }
    }

    /// The optimizer a fixture entry describes, as torch built it: one two-element parameter and
    /// one `lr` per group, torch's defaults for its kind.
    static func makeOptimizer(_ json: [String: Any]) throws -> OptionsOnlyOptimizer {
        guard let spec = json["optimizer"] as? [String: Any], let lrs = spec["lrs"] as? [Double],
              case .dict(let torchDefaults) = try OptimFixtures.stateValue(json["defaults"]) else {
            throw OptimFixtures.FixtureError(description: "bad optimizer spec in \(json["name"] ?? "?")")
        }
        var defaults = OrderedMap<String, Optimizer.OptionDefault>()
        for (key, value) in torchDefaults { defaults[key.description] = .value(value) }
        let groups = try lrs.map { ParamGroup(params: [Parameter(try Tensor(zeros: .float32, shape: [2]))], options: ["lr": .float($0)]) }
        return try OptionsOnlyOptimizer(groups: groups, defaults: defaults)
    }

    /// sequences.json, parsed once (read-only after initialization, hence nonisolated(unsafe)).
    nonisolated(unsafe) static let file: Result<[String: Any], Error> = Result {
        let url = directory.appendingPathComponent("sequences.json")
        guard let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw OptimFixtures.FixtureError(description: "\(url.path): not a JSON object")
        }
        return root
    }

    static func scenarioJSONs() throws -> [[String: Any]] {
        guard let scenarios = try file.get()["scenarios"] as? [[String: Any]] else {
            throw OptimFixtures.FixtureError(description: "sequences.json: no scenarios")
        }
        return scenarios
    }

    /// Every scenario's name (empty when the file is missing, which `fixturesArePresent` reports).
    static let names: [String] = ((try? scenarioJSONs()) ?? []).compactMap { $0["name"] as? String }
    static let savedNames: [String] = ((try? scenarioJSONs()) ?? []).filter { !(($0["save_at"] as? [Int]) ?? []).isEmpty }
        .compactMap { $0["name"] as? String }

    static func scenario(_ name: String) throws -> Scenario {
        guard let json = try scenarioJSONs().first(where: { $0["name"] as? String == name }) else {
            throw OptimFixtures.FixtureError(description: "no scenario \(name)")
        }
        let momenta = try (json["momenta"] as? [Any])?.map(sequence)
        return Scenario(
            name: name, json: json, operations: try operations(json["ops"]), lrs: try (json["lrs"] as? [Any] ?? []).map(sequence),
            momenta: momenta, error: json["error"] as? String, saveAt: json["save_at"] as? [Int] ?? [],
            finalState: try OptimFixtures.stateValue(json["final_state"]),
            optimizerGroups: try OptimFixtures.stateValue(json["optimizer_groups"]))
    }

    /// A float sequence: `{"values": base64 float64, "runs": [lengths]}` (runs absent when none repeat).
    static func sequence(_ json: Any?) throws -> [Double] {
        guard let node = json as? [String: Any], let text = node["values"] as? String, let data = Data(base64Encoded: text),
              data.count % 8 == 0 else {
            throw OptimFixtures.FixtureError(description: "bad sequence \(String(describing: json))")
        }
        let values = data.withUnsafeBytes { raw in
            (0..<data.count / 8).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
        guard let runs = node["runs"] as? [Int] else { return values }
        return zip(values, runs).flatMap { Array(repeating: $0, count: $1) }
    }

    static func double(hex: String) throws -> Double {
        let raw = try OptimFixtures.bytes(hex: hex)
        guard raw.count == 8 else { throw OptimFixtures.FixtureError(description: "bad float \(hex)") }
        return Double(bitPattern: raw.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
    }

    static func operations(_ json: Any?) throws -> [Operation] {
        guard let node = json as? [String: Any] else { throw OptimFixtures.FixtureError(description: "bad ops") }
        if let count = node["plain"] as? Int { return Array(repeating: .plain, count: count) }
        if let metrics = node["metrics"] { return try sequence(metrics).map(Operation.metric) }
        if let epochs = node["float_epochs"] { return try sequence(epochs).map(Operation.fractionalEpoch) }
        guard let items = node["epochs"] as? [Any] else { throw OptimFixtures.FixtureError(description: "bad ops \(node)") }
        return try items.map { item in
            if item is NSNull { return .plain }
            if let epoch = item as? Int { return .epoch(epoch) }
            if let float = (item as? [String: Any])?["f"] as? String { return .fractionalEpoch(try double(hex: float)) }
            throw OptimFixtures.FixtureError(description: "bad op \(item)")
        }
    }

    static func apply(_ operation: Operation, to scheduler: LRScheduler) throws {
        switch operation {
        case .plain: try scheduler.step()
        case .epoch(let epoch): try scheduler.step(epoch: epoch)
        case .fractionalEpoch(let epoch):
            guard let warm = scheduler as? CosineAnnealingWarmRestarts else {
                throw OptimFixtures.FixtureError(description: "a fractional epoch for \(type(of: scheduler))")
            }
            try warm.step(epoch: epoch)
        case .metric(let metric):
            guard let plateau = scheduler as? ReduceLROnPlateau else {
                throw OptimFixtures.FixtureError(description: "a metric for \(type(of: scheduler))")
            }
            try plateau.step(metric: metric)
        }
    }

    /// The momentum a cycling scheduler sets in a group: `momentum` or `betas[0]`.
    static func momentum(of group: ParamGroup) -> Double? {
        switch group.options["betas"] ?? group.options["momentum"] {
        case .tuple(let betas)?: if case .float(let beta)? = betas.first { return beta }
        case .float(let value)?: return value
        case .int(let value)?: return Double(value)
        default: break
        }
        return nil
    }

    /// The scheduler a spec describes: torch's keyword arguments mapped to ckpt's initializers.
    /// Specs with no arguments use ckpt's defaults, so those are checked against torch's too.
    static func build(_ json: Any?, on optimizer: Optimizer, loadOrderCheck: LoadOrderCheck) throws -> LRScheduler {
        guard let spec = json as? [String: Any], let type = spec["type"] as? String else {
            throw OptimFixtures.FixtureError(description: "bad scheduler spec")
        }
        let args = spec["args"] as? [String: Any] ?? [:]
        func double(_ key: String) -> Double? { (args[key] as? NSNumber)?.doubleValue }
        func int(_ key: String) -> Int? { (args[key] as? NSNumber)?.intValue }
        func perGroup(_ key: String) -> PerGroup? {
            if let values = args[key] as? [NSNumber] { return .each(values.map(\.doubleValue)) }
            return double(key).map(PerGroup.all)
        }
        func function(_ key: String) throws -> [(Int) -> Double]? {
            let names = (args[key] as? [String]) ?? (args[key] as? String).map { [$0] }
            return try names?.map { name in
                guard let function = lambdas[name] else { throw OptimFixtures.FixtureError(description: "no lambda \(name)") }
                return function
            }
        }
        func need<T>(_ value: T?, _ key: String) throws -> T {
            guard let value else { throw OptimFixtures.FixtureError(description: "\(type) needs \(key)") }
            return value
        }
        let check = loadOrderCheck
        switch type {
        case "LambdaLR":
            let functions = try function("lr_lambda") ?? []
            return args["lr_lambda"] is String
                ? try LambdaLR(optimizer, lrLambda: functions[0], loadOrderCheck: check)
                : try LambdaLR(optimizer, lrLambdas: functions, loadOrderCheck: check)
        case "MultiplicativeLR":
            let functions = try function("lr_lambda") ?? []
            return args["lr_lambda"] is String
                ? try MultiplicativeLR(optimizer, lrLambda: functions[0], loadOrderCheck: check)
                : try MultiplicativeLR(optimizer, lrLambdas: functions, loadOrderCheck: check)
        case "StepLR":
            return try StepLR(
                optimizer, stepSize: try need(int("step_size"), "step_size"), gamma: double("gamma") ?? 0.1, lastEpoch: int("last_epoch") ?? -1,
                loadOrderCheck: check)
        case "MultiStepLR":
            return try MultiStepLR(optimizer, milestones: try need(args["milestones"] as? [Int], "milestones"), gamma: double("gamma") ?? 0.1, loadOrderCheck: check)
        case "ConstantLR":
            if args.isEmpty { return try ConstantLR(optimizer, loadOrderCheck: check) }
            return try ConstantLR(optimizer, factor: double("factor") ?? 1.0 / 3, totalIters: int("total_iters") ?? 5, loadOrderCheck: check)
        case "LinearLR":
            if args.isEmpty { return try LinearLR(optimizer, loadOrderCheck: check) }
            return try LinearLR(
                optimizer, startFactor: double("start_factor") ?? 1.0 / 3, endFactor: double("end_factor") ?? 1.0,
                totalIters: int("total_iters") ?? 5,
                loadOrderCheck: check)
        case "ExponentialLR":
            return try ExponentialLR(optimizer, gamma: try need(double("gamma"), "gamma"), loadOrderCheck: check)
        case "PolynomialLR":
            return try PolynomialLR(optimizer, totalIters: int("total_iters") ?? 5, power: double("power") ?? 1.0, loadOrderCheck: check)
        case "CosineAnnealingLR":
            return try CosineAnnealingLR(optimizer, tMax: try need(int("T_max"), "T_max"), etaMin: double("eta_min") ?? 0.0, loadOrderCheck: check)
        case "CosineAnnealingWarmRestarts":
            return try CosineAnnealingWarmRestarts(
                optimizer, t0: try need(int("T_0"), "T_0"), tMult: int("T_mult") ?? 1, etaMin: double("eta_min") ?? 0.0, loadOrderCheck: check)
        case "CyclicLR":
            return try CyclicLR(
                optimizer, baseLR: try need(perGroup("base_lr"), "base_lr"), maxLR: try need(perGroup("max_lr"), "max_lr"), stepSizeUp: int("step_size_up") ?? 2000,
                stepSizeDown: int("step_size_down"), mode: try need(CyclicLR.Mode(rawValue: args["mode"] as? String ?? "triangular"), "mode"),
                gamma: double("gamma") ?? 1.0, scaleFn: try function("scale_fn")?.first,
                scaleMode: try need(CyclicLR.ScaleMode(rawValue: args["scale_mode"] as? String ?? "cycle"), "scale_mode"),
                cycleMomentum: args["cycle_momentum"] as? Bool ?? true, baseMomentum: perGroup("base_momentum") ?? 0.8,
                maxMomentum: perGroup("max_momentum") ?? 0.9, loadOrderCheck: check)
        case "OneCycleLR":
            return try OneCycleLR(
                optimizer, maxLR: try need(perGroup("max_lr"), "max_lr"), totalSteps: int("total_steps"), epochs: int("epochs"),
                stepsPerEpoch: int("steps_per_epoch"), pctStart: double("pct_start") ?? 0.3,
                annealStrategy: try need(OneCycleLR.AnnealStrategy(rawValue: args["anneal_strategy"] as? String ?? "cos"), "anneal_strategy"),
                cycleMomentum: args["cycle_momentum"] as? Bool ?? true, baseMomentum: perGroup("base_momentum") ?? 0.85,
                maxMomentum: perGroup("max_momentum") ?? 0.95, divFactor: double("div_factor") ?? 25.0,
                finalDivFactor: double("final_div_factor") ?? 1e4, threePhase: args["three_phase"] as? Bool ?? false,
                loadOrderCheck: check)
        case "ReduceLROnPlateau":
            if args.isEmpty { return try ReduceLROnPlateau(optimizer) }
            return try ReduceLROnPlateau(
                optimizer, mode: try need(ReduceLROnPlateau.Mode(rawValue: args["mode"] as? String ?? "min"), "mode"), factor: double("factor") ?? 0.1,
                patience: int("patience") ?? 10, threshold: double("threshold") ?? 1e-4,
                thresholdMode: try need(ReduceLROnPlateau.ThresholdMode(rawValue: args["threshold_mode"] as? String ?? "rel"), "threshold_mode"),
                cooldown: int("cooldown") ?? 0, minLR: perGroup("min_lr") ?? 0, eps: double("eps") ?? 1e-8)
        case "SequentialLR":
            let inner = try (spec["schedulers"] as? [Any] ?? []).map { try build($0, on: optimizer, loadOrderCheck: check) }
            return try SequentialLR(optimizer, schedulers: inner, milestones: spec["milestones"] as? [Int] ?? [], loadOrderCheck: check)
        case "ChainedScheduler":
            let inner = try (spec["schedulers"] as? [Any] ?? []).map { try build($0, on: optimizer, loadOrderCheck: check) }
            return try ChainedScheduler(inner, optimizer: optimizer)
        default:
            throw OptimFixtures.FixtureError(description: "unknown scheduler \(type)")
        }
    }
}

extension SchedulerFixtures {
    /// Python's `==` on two state trees, plus the same key order: an int equals a float of the same
    /// value (torch's `end_factor=1` against ckpt's `1.0`), floats compare exactly (NaN equals NaN).
    /// Returns the first difference as a key path and both values, or nil.
    static func pythonDifference(_ a: StateValue, _ b: StateValue, path: String = "") -> String? {
        func number(_ value: StateValue) -> Double? {
            switch value {
            case .int(let number): return Double(number)
            case .float(let number): return number
            case .bool(let flag): return flag ? 1 : 0
            default: return nil
            }
        }
        switch (a, b) {
        case let (.dict(x), .dict(y)):
            let (xKeys, yKeys) = (x.map(\.key), y.map(\.key))
            guard xKeys == yKeys else { return "\(path): keys \(xKeys) vs \(yKeys)" }
            for (key, value) in x {
                if let found = pythonDifference(value, y[key]!, path: "\(path)/\(key)") { return found }
            }
            return nil
        case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)):
            guard x.count == y.count else { return "\(path): \(x.count) vs \(y.count) items" }
            for (index, pair) in zip(x, y).enumerated() {
                if let found = pythonDifference(pair.0, pair.1, path: "\(path)/\(index)") { return found }
            }
            return nil
        case let (.object(x), .object(y)):
            guard x.qualifiedName == y.qualifiedName, x.construction == y.construction else { return "\(path): \(x.summary) vs \(y.summary)" }
            return pythonDifference(.list(x.args), .list(y.args), path: "\(path)/args")
        default:
            if let x = number(a), let y = number(b) {
                return x == y || (x.isNaN && y.isNaN) ? nil : "\(path): \(a) vs \(b)"
            }
            return a == b ? nil : "\(path): \(a) vs \(b)"
        }
    }

    /// The first step at which two rate sequences differ, with both values and their distance in ulps.
    static func firstMismatch(_ observed: [Double], _ expected: [Double]) -> String? {
        for (index, pair) in zip(observed, expected).enumerated() where pair.0.bitPattern != pair.1.bitPattern {
            let ulps = Int64(bitPattern: pair.0.bitPattern &- pair.1.bitPattern)
            return "step \(index): \(pair.0) vs torch \(pair.1) (\(ulps) ulp)"
        }
        return observed.count == expected.count ? nil : "\(observed.count) rates vs torch's \(expected.count)"
    }
}
