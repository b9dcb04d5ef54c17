import Checkpoint
import Foundation
import Testing
@testable import Optim

@Suite struct ConversionTests {
    /// torch's `.to(dtype)` of float64 values (Tests/Fixtures/optim/conversions.json): what
    /// load_state_dict does to floating state, and the rounding every half-precision op ends with.
    @Test(arguments: [DType.float32, .float16, .bfloat16])
    func castsRoundAsTorch(_ target: DType) throws {
        let json = try JSONSerialization.jsonObject(
            with: Data(contentsOf: OptimFixtures.directory.appendingPathComponent("conversions.json"))) as? [String: Any]
        func tensor(_ key: String, _ dtype: DType) throws -> Tensor {
            let bytes = try OptimFixtures.bytes(hex: json?[key] as? String ?? "")
            return try Tensor(storage: Storage(bytes: bytes), dtype: dtype, shape: [bytes.count / dtype.itemSize])
        }
        let source = try tensor("float64_hex", .float64)
        let expected = try tensor("\(target.rawValue)_hex", target)
        #expect(source.numel > 200)
        #expect(try source.cast(to: target).contiguousBytes() == expected.contiguousBytes())
        if target != .float32 {
            let fromFloat = try tensor("\(target.rawValue)_from_float32_hex", target)
            #expect(try source.cast(to: .float32).cast(to: target).contiguousBytes() == fromFloat.contiguousBytes())
        }
    }
}

@Suite struct SparseTensorTests {
    func sparse(_ rows: [[Int64]], _ values: [Float], shape: [Int]) throws -> SparseTensor {
        try SparseTensor(indices: Tensor(rows.flatMap { $0 }, shape: [rows.count, rows.first?.count ?? 0]),
                         values: Tensor(values), shape: shape)
    }

    @Test func invalidIndicesThrowInsteadOfCorruptingMemory() throws {
        #expect(throws: OptimizerError.self) { try sparse([[0, 5]], [1, 2], shape: [5]) }
        #expect(throws: OptimizerError.self) { try sparse([[0, -1]], [1, 2], shape: [5]) }
        #expect(throws: OptimizerError.self) { try sparse([[0, 1]], [1, 2, 3], shape: [5]) }
        #expect(throws: OptimizerError.self) { try sparse([[0], [1]], [1], shape: [5]) }
        #expect(throws: OptimizerError.self) {
            try SparseTensor(indices: Tensor([Int32(0)], shape: [1, 1]), values: Tensor([Float(1)]), shape: [2])
        }
        #expect(throws: OptimizerError.self) {
            try SparseTensor(indices: Tensor([Int64(1), 0], shape: [1, 2]), values: Tensor([Float(1), 2]), shape: [2], isCoalesced: true)
        }
    }

    @Test func coalesceSortsAndSumsRepeatsInOrder() throws {
        // 1e8 + 1 + 1 rounds to 1e8 when added left to right in float32, but to 1e8 + 2 the other way.
        let tensor = try sparse([[3, 1, 3, 3]], [1e8, 5, 1, 1], shape: [4])
        let coalesced = try tensor.coalesced()
        #expect(try coalesced.indices.scalars(as: Int64.self) == [1, 3])
        #expect(try coalesced.values.scalars(as: Float.self) == [5, 1e8])
        #expect(try tensor.dense().scalars(as: Float.self) == [0, 5, 0, 1e8])
    }

    @Test func sparseGradientOfTheWrongShapeIsRejected() throws {
        let parameter = try floatParameter([1, 2, 3])
        let optimizer = try Adagrad([parameter])
        parameter.grad = .sparse(try sparse([[0]], [1], shape: [4]))
        #expect(throws: CheckpointError.self) { try optimizer.step() }
    }

    @Test func complexSparseGradientsAreReportedUnsupported() throws {
        let parameter = Parameter(try Tensor(zeros: .complex64, shape: [2]))
        let optimizer = try Adagrad([parameter])
        parameter.grad = .sparse(try SparseTensor(
            indices: Tensor([Int64(0)], shape: [1, 1]), values: Tensor(zeros: .complex64, shape: [1]), shape: [2]))
        let error = #expect(throws: OptimizerError.self) { try optimizer.step() }
        #expect(error?.code == .unsupported)
    }
}
