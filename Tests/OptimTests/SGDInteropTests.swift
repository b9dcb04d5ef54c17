import Checkpoint
import Foundation
import Testing
import TestSupport

@testable import Optim

/// SGD state dicts between torch and ckpt, with live torch (scripts/sgd_state_interop.py): torch's
/// state dict (torch.save) loads into ckpt's SGD, which continues bit for bit as torch does; the
/// state dict ckpt then writes (.pt) loads into torch (`weights_only=True`), which continues bit
/// for bit as from its own. The optimizers on both sides are built with torch's default options:
/// the loaded groups' options must take over.
struct SGDInteropTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../scripts/sgd_state_interop.py").standardizedFileURL

    /// Runs the script; returns what follows `prefix` on the lines of its output that start with it.
    static func python(_ arguments: [String], prefix: String) throws -> [String] {
        let run = try TorchVenv.run([script.path] + arguments)
        try #require(run.status == 0, "sgd_state_interop.py \(arguments[0]): \(run.output)")
        return run.output.split(separator: "\n").compactMap { line in
            line.hasPrefix(prefix) ? String(line.dropFirst(prefix.count)) : nil
        }
    }

    static func list(_ value: StateValue?, _ key: String) throws -> [StateValue] {
        guard case .list(let items)? = value else { throw OptimFixtures.FixtureError(description: "`\(key)` is not a list") }
        return items
    }

    static func tensor(_ value: StateValue) throws -> Tensor {
        guard case .tensor(let tensor) = value else { throw OptimFixtures.FixtureError(description: "not a tensor: \(value)") }
        return tensor
    }

    /// ckpt's side for one configuration: load torch's state, take the N steps, compare with
    /// torch's run, write `<name>_ours.pt`.
    static func resume(_ name: String, in directory: TemporaryDirectory) throws {
        let input = try StateValue(contentsOf: URL(fileURLWithPath: directory.path("\(name)_in.pt")))
        let named = input["named"] == .bool(true)
        // Owned copies: the loaded tensors view the file, and steps write into parameters.
        let params = try list(input["params"], "params").enumerated().map { index, value in
            Parameter(try tensor(value).contiguousCopy(), name: named ? "layer\(index).weight" : nil)
        }
        var groups: [ParamGroup] = []
        var start = 0
        for size in try list(input["group_sizes"], "group_sizes") {
            guard case .int(let count) = size else { throw OptimFixtures.FixtureError(description: "bad group size") }
            groups.append(ParamGroup(params: Array(params[start..<(start + Int(count))])))
            start += Int(count)
        }
        let optimizer = try SGD(groups: groups)
        try optimizer.loadStateDict(try #require(input["optimizer"]))
        for step in try list(input["grads_n"], "grads_n") {
            for (parameter, grad) in zip(params, try list(step, "grads_n")) { parameter.grad = .dense(try tensor(grad)) }
            try optimizer.step()
        }
        let expected = try StateValue(contentsOf: URL(fileURLWithPath: directory.path("\(name)_expected.pt")))
        var ulp: Int64 = 0
        let stateDifference = OptimFixtures.difference(optimizer.stateDict(), try #require(expected["optimizer"]), observedULP: &ulp)
        #expect(stateDifference == nil, "\(name): state after the resumed steps: \(stateDifference ?? "")")
        for (index, (parameter, value)) in zip(params, try list(expected["params"], "params")).enumerated() {
            #expect(try parameter.data.isBitwiseEqual(to: tensor(value)), "\(name): param \(index) after the resumed steps")
        }
        let ours: StateValue = .dict(["params": .list(params.map { .tensor($0.data) }), "optimizer": optimizer.stateDict()])
        try ours.write(to: URL(fileURLWithPath: directory.path("\(name)_ours.pt")))
    }

    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason))
    func torchStateResumesInCkptAndCkptStateResumesInTorch() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-sgd-interop")
        let names = try Self.python(["make", directory.url.path], prefix: "case ")
        #expect(names.count >= 6)
        for name in names { try Self.resume(name, in: directory) }
        let reports = try Self.python(["check", directory.url.path], prefix: "result ").map { line in
            try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        #expect(reports.count == names.count)
        for report in reports {
            #expect((report["ulp"] as? NSNumber)?.intValue == 0,
                    "torch continued from ckpt's \(report["name"] ?? "?") differently from its own run: \(report)")
        }
    }
}
