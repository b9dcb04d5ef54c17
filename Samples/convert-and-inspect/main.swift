// The demo behind `make demo`: open a real PyTorch training checkpoint (made by
// scripts/make_sample.py with torch), convert it to a .ckpt archive, and show what it holds.
import Checkpoint
import Foundation

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let source = root.appendingPathComponent("data/tiny-run.pt")
let output = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-run.ckpt")

func describe(_ value: StateValue, _ path: [StateKey] = [], depth: Int = 0) {
    let name = path.last.map { "\($0)" } ?? "(root)"
    let indent = String(repeating: "  ", count: depth)
    switch value {
    case .dict(let dict):
        print("\(indent)\(name): \(value.pythonTypeName) (\(dict.count) keys)")
        for (key, child) in dict { describe(child, path + [key], depth: depth + 1) }
    case .list(let items), .tuple(let items):
        print("\(indent)\(name): \(value.pythonTypeName) (\(items.count) items)")
        for (index, child) in items.enumerated() { describe(child, path + [.int(Int64(index))], depth: depth + 1) }
    case .tensor(let tensor):
        print("\(indent)\(name): \(value.pythonTypeName) \(tensor.dtype.rawValue) \(tensor.shape)")
    case .int(let i): print("\(indent)\(name): int = \(i)")
    case .float(let f): print("\(indent)\(name): float = \(f)")
    case .string(let s): print("\(indent)\(name): str = \(s)")
    case .bool(let b): print("\(indent)\(name): bool = \(b)")
    case .none: print("\(indent)\(name): None")
    default: print("\(indent)\(name): \(value.pythonTypeName)")
    }
}

do {
    let checkpoint = try StateValue(contentsOf: source)
    print("Loaded \(source.lastPathComponent) (written by torch.save):")
    describe(checkpoint)
    try checkpoint.write(to: output)
    let reloaded = try StateValue(contentsOf: output)
    let size = (try FileManager.default.attributesOfItem(atPath: output.path)[.size] as? Int) ?? 0
    print("\nConverted to \(output.path) (\(size) bytes; torch.load opens it as is).")
    print("Reloaded from the manifest, equal to the original: \(reloaded == checkpoint)")
    var tensors = 0
    var bytes = 0
    reloaded.forEachTensor { _, tensor in
        tensors += 1
        bytes += tensor.byteCount
    }
    print("\(tensors) tensors, \(bytes) bytes of tensor data, \(reloaded.storagesInOrder.count) storages.")
    if reloaded != checkpoint { exit(1) }
} catch {
    FileHandle.standardError.write(Data("convert-and-inspect: \(error)\n".utf8))
    exit(1)
}
