import Checkpoint
import Foundation
import FuzzSupport

/// A structured round trip: the input drives the construction of a tree of values and tensors
/// (every dtype, shared storages, offsets, parameters), which is written as `.ckpt` or `.pt` and
/// read back; the result must equal the tree. A write may refuse a tree with a typed error; a file
/// ckpt wrote that it cannot read back, or reads back different, is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = InputBytes(UnsafeBufferPointer(start: data, count: size))
    let format: CheckpointFormat = input.byte() % 2 == 0 ? .ckpt : .pt
    var storages: [Storage] = []
    let tree = StateValue.dict(input.dict(depth: 0, storages: &storages))
    let url = ScratchFile.directory.appendingPathComponent("roundtrip.\(format.rawValue)")
    do {
        try tree.write(to: url, format: format, options: SaveOptions(durable: false))
    } catch {
        return 0
    }
    let back: StateValue
    do {
        back = try StateValue(contentsOf: url)
    } catch {
        fatalError("round trip: ckpt cannot read the \(format) file it wrote: \(error)")
    }
    if back != tree { fatalError("round trip: \(format) read back differs:\n\(tree)\n---\n\(back)") }
    return 0
}

/// The fuzzer's bytes consumed as choices; zeros once they run out.
struct InputBytes {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func word() -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(byte()) << (8 * UInt64($1)) } }

    mutating func small(_ limit: Int) -> Int { Int(byte()) % limit }

    mutating func raw(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }

    mutating func text() -> String { String(decoding: raw(small(9)), as: UTF8.self) }

    mutating func dict(depth: Int, storages: inout [Storage]) -> StateDict {
        let pairs: [(StateKey, StateValue)] = (0..<small(5)).map { _ in
            (small(4) == 0 ? .int(Int64(bitPattern: word())) : .string(text()), value(depth: depth + 1, storages: &storages))
        }
        return StateDict(pairs, isOrderedDict: small(2) == 0)
    }

    mutating func value(depth: Int, storages: inout [Storage]) -> StateValue {
        switch small(depth > 3 ? 12 : 16) {
        case 0: return .int(Int64(bitPattern: word()))
        case 1: return .float(Double(bitPattern: word()))
        case 2: return .bool(small(2) == 0)
        case 3: return .none
        case 4: return .string(text())
        case 5: return .bytes(raw(small(9)))
        case 6: return .bytearray(raw(small(9)))
        case 7: return .size((0..<small(4)).map { _ in Int64(small(64)) })
        case 8: return .dtype(DType.allCases[small(DType.allCases.count)])
        case 9: return .device(["cpu", "cuda:0", "cuda:1", "mps", "meta"][small(5)])
        case 10: return .complex(real: Double(bitPattern: word()), imaginary: Double(bitPattern: word()))
        case 11: return tensor(storages: &storages).map(StateValue.tensor) ?? .none
        case 12: return .list((0..<small(4)).map { _ in value(depth: depth + 1, storages: &storages) })
        case 13: return .tuple((0..<small(4)).map { _ in value(depth: depth + 1, storages: &storages) })
        case 14: return .set((0..<small(4)).map { _ in .int(Int64(small(256))) })
        default: return .dict(dict(depth: depth, storages: &storages))
        }
    }

    /// A tensor over a new storage or, sometimes, one already used (tied weights, views).
    mutating func tensor(storages: inout [Storage]) -> Tensor? {
        let dtype = DType.allCases[small(DType.allCases.count)]
        let shape = (0..<small(4)).map { _ in small(5) }
        let offset = small(3)
        let needed = (shape.reduce(1, *) + offset) * dtype.itemSize
        let storage: Storage
        if let shared = storages.last, small(3) == 0, shared.byteCount >= needed {
            storage = shared
        } else {
            var bytes = raw(needed + small(2) * dtype.itemSize)
            // torch stores a bool as 0 or 1; other bytes are not a bool tensor ckpt must keep.
            if dtype == .bool { bytes = bytes.map { $0 & 1 } }
            storage = Storage(bytes: bytes)
            storages.append(storage)
        }
        return try? Tensor(
            storage: storage, dtype: dtype, shape: shape, storageOffset: offset,
            requiresGrad: small(4) == 0, isParameter: small(4) == 0)
    }
}
