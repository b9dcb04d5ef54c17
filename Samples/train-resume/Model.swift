import Checkpoint
import Foundation
import Optim

/// SplitMix64: the sample's only randomness, its state saved in every checkpoint so a resumed run
/// draws the same batches.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A float in [-1, 1).
    mutating func nextSigned() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
}

/// A synthetic regression task: 512 points of 8 features, target a fixed smooth function of them.
struct Dataset {
    static let features = 8
    let inputs: [[Float]]
    let targets: [Float]

    init(seed: UInt64) {
        var rng = SplitMix64(state: seed)
        var inputs: [[Float]] = []
        var targets: [Float] = []
        for _ in 0..<512 {
            let x = (0..<Self.features).map { _ in rng.nextSigned() }
            inputs.append(x)
            targets.append(0.8 * x[0] * x[1] - 0.5 * x[2] + 0.3 * (x[3] * x[3]) + 0.2 * x[4] - 0.1)
        }
        self.inputs = inputs
        self.targets = targets
    }
}

/// A two-layer perceptron, 8 → 16 (tanh) → 1, trained on mean squared error with gradients written
/// out by hand. All arithmetic is Float in a fixed order, so a run is bit-reproducible.
final class MLP {
    static let hidden = 16
    let w1: Parameter, b1: Parameter, w2: Parameter, b2: Parameter
    var parameters: [Parameter] { [w1, b1, w2, b2] }

    /// Fresh weights drawn from `rng`, scaled as torch's default init would (±1/√fan_in).
    init(rng: inout SplitMix64) throws {
        func uniform(_ count: Int, fanIn: Int) -> [Float] {
            let bound = 1 / Float(fanIn).squareRoot()
            return (0..<count).map { _ in rng.nextSigned() * bound }
        }
        let f = Dataset.features, h = Self.hidden
        w1 = Parameter(try Tensor(uniform(h * f, fanIn: f), shape: [h, f]), name: "fc1.weight")
        b1 = Parameter(try Tensor(uniform(h, fanIn: f), shape: [h]), name: "fc1.bias")
        w2 = Parameter(try Tensor(uniform(h, fanIn: h), shape: [1, h]), name: "fc2.weight")
        b2 = Parameter(try Tensor(uniform(1, fanIn: h), shape: [1]), name: "fc2.bias")
    }

    /// Mean squared error over a batch, and sets every parameter's gradient.
    func lossAndGradients(batch: [Int], data: Dataset) throws -> Float {
        let f = Dataset.features, h = Self.hidden
        let w1 = try self.w1.data.scalars(as: Float.self), b1 = try self.b1.data.scalars(as: Float.self)
        let w2 = try self.w2.data.scalars(as: Float.self), b2 = try self.b2.data.scalars(as: Float.self)
        var gw1 = [Float](repeating: 0, count: h * f), gb1 = [Float](repeating: 0, count: h)
        var gw2 = [Float](repeating: 0, count: h), gb2: Float = 0
        var loss: Float = 0
        let scale = 1 / Float(batch.count)
        for index in batch {
            let x = data.inputs[index]
            var a = [Float](repeating: 0, count: h)
            var output = b2[0]
            for j in 0..<h {
                var z = b1[j]
                for i in 0..<f { z += w1[j * f + i] * x[i] }
                a[j] = tanhf(z)
                output += w2[j] * a[j]
            }
            let error = output - data.targets[index]
            loss += error * error * scale
            let dOutput = 2 * error * scale
            gb2 += dOutput
            for j in 0..<h {
                gw2[j] += dOutput * a[j]
                let dz = dOutput * w2[j] * (1 - a[j] * a[j])
                gb1[j] += dz
                for i in 0..<f { gw1[j * f + i] += dz * x[i] }
            }
        }
        self.w1.grad = .dense(try Tensor(gw1, shape: [h, f]))
        self.b1.grad = .dense(try Tensor(gb1, shape: [h]))
        self.w2.grad = .dense(try Tensor(gw2, shape: [1, h]))
        self.b2.grad = .dense(try Tensor([gb2], shape: [1]))
        return loss
    }
}

struct SampleError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
