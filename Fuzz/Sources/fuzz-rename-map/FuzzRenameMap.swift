import Checkpoint
import Foundation
import Optim

/// The rename map: the input as the JSON of `RenameMap(json:)`, then the map applied to names and
/// to a small checkpoint tree (regex rules compile and run only then).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let map = try? RenameMap(json: Data(bytes: data, count: size)) else { return 0 }
    _ = try? map.apply(to: ["encoder.layer.0.weight", "encoder.layer.0.bias", "head.weight", "", "a..b", "é"])
    // Built per execution: LeakSanitizer reports the boxes of a lazily initialized global as leaks.
    let sample: StateValue = [
        "model": ["encoder.layer.0.weight": .int(1), "encoder.layer.0.bias": .int(2), "head.weight": .int(3)],
        "optimizer": ["param_groups": .list([["params": .list([.int(0), .int(1)])]]), "state": [:]],
    ]
    _ = try? map.renameCheckpoint(sample)
    return 0
}
