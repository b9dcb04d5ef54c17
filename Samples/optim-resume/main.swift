// Resumes a PyTorch Adagrad run in ckpt: the driver of scripts/interop_optim.py.
//
//     optim-resume <input.pt> <output.ckpt|.pt> [<output> ...]
//
// The input, written by torch.save, holds `names` (parameter names), `params` (their values),
// `options` (Adagrad's constructor arguments), `optimizer` (torch's `state_dict()`) and `grads`
// (one list of gradients per step to take). The driver builds the parameters, loads the optimizer
// state, takes the steps and saves `{"names", "params", "optimizer"}` to every output path, the
// format chosen by its extension.

import Checkpoint
import Foundation
import Optim

struct DriverError: Error, CustomStringConvertible {
    var description: String
}

func list(_ value: StateValue?, _ key: String) throws -> [StateValue] {
    guard case .list(let items)? = value else { throw DriverError(description: "`\(key)` is missing or not a list") }
    return items
}

func tensor(_ value: StateValue, _ key: String) throws -> Tensor {
    guard case .tensor(let tensor) = value else { throw DriverError(description: "`\(key)` holds a non-tensor") }
    return tensor
}

func number(_ options: StateValue?, _ key: String) -> Double? {
    switch options?[.string(key)] {
    case .float(let value)?: return value
    case .int(let value)?: return Double(value)
    default: return nil
    }
}

func flag(_ options: StateValue?, _ key: String) -> Bool? {
    if case .bool(let value)? = options?[.string(key)] { return value }
    return nil
}

func run(_ arguments: [String]) throws {
    guard arguments.count >= 3 else {
        throw DriverError(description: "usage: optim-resume <input.pt> <output.ckpt|.pt> [<output> ...]")
    }
    let input = try StateValue(contentsOf: URL(fileURLWithPath: arguments[1]))
    let names = try list(input["names"], "names").map { value -> String in
        guard case .string(let name) = value else { throw DriverError(description: "`names` holds a non-string") }
        return name
    }
    // Owned copies: the loaded tensors view the input file, and steps write into parameters.
    let values = try list(input["params"], "params").map { try tensor($0, "params").contiguousCopy() }
    guard names.count == values.count else { throw DriverError(description: "`names` and `params` differ in length") }
    let params = zip(values, names).map { Parameter($0, name: $1) }
    let options = input["options"]
    let optimizer = try Adagrad(
        params, lr: number(options, "lr") ?? 1e-2, lrDecay: number(options, "lr_decay"),
        weightDecay: number(options, "weight_decay"), initialAccumulatorValue: number(options, "initial_accumulator_value"),
        eps: number(options, "eps") ?? 1e-10, foreach: flag(options, "foreach"), maximize: flag(options, "maximize") ?? false,
        fused: flag(options, "fused"))
    guard let saved = input["optimizer"] else { throw DriverError(description: "`optimizer` is missing") }
    try optimizer.loadStateDict(saved)
    for (index, step) in try list(input["grads"], "grads").enumerated() {
        let grads = try list(step, "grads/\(index)")
        guard grads.count == params.count else { throw DriverError(description: "step \(index) has \(grads.count) gradients") }
        for (parameter, grad) in zip(params, grads) {
            parameter.grad = grad == .none ? nil : .dense(try tensor(grad, "grads/\(index)"))
        }
        try optimizer.step()
    }
    let output: StateValue = .dict([
        "names": .list(names.map { .string($0) }),
        "params": .list(params.map { .tensor($0.data) }),
        "optimizer": optimizer.stateDict(),
    ])
    for path in arguments.dropFirst(2) {
        try output.write(to: URL(fileURLWithPath: path))
    }
}

do {
    try run(CommandLine.arguments)
} catch {
    FileHandle.standardError.write(Data("optim-resume: \(error)\n".utf8))
    exit(1)
}
