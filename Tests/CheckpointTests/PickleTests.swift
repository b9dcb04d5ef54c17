import Checkpoint
import Foundation
import Testing
import TestSupport

// The restricted unpickler against pickles written by real Python and torch
// (scripts/make_pickle_fixtures.py; the sidecars describe the Python objects, never our output),
// the pickler against torch.load itself, and both against hostile input built here.

// MARK: - Fixtures

private enum PickleFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pickle", isDirectory: true)

    /// Every fixture the generator writes; a missing file fails its test.
    static let names = [
        "torch_model_state_dict", "torch_adagrad_state_dict", "torch_shared_and_views", "torch_all_dtypes",
        "torch_zero_dim_and_empty", "torch_parameters", "torch_python_values", "torch_batching",
        "torch_protocol3", "torch_protocol4", "torch_protocol5",
        "plain_protocol2", "plain_protocol3", "plain_protocol4", "plain_protocol5",
    ] + objectNames

    /// Pickles holding objects outside the weights-only allow-list, read as placeholders.
    static let objectNames = [
        "object_namespace", "object_numpy", "object_whole_model", "object_python_values", "object_python_values_p4",
        "object_os_system", "object_os_system_p4",
    ]

    /// Pickles Python and torch wrote that must not load: values a state tree cannot represent
    /// (which torch loads).
    static let rejectedNames = [
        "rejected_tensor_attributes", "rejected_frozenset", "rejected_big_int", "rejected_tuple_key",
    ]

    static func pickle(_ name: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: directory.appendingPathComponent("\(name).pkl")))
    }

    static func sidecar(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent("\(name).json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(root["tree"] as? [String: Any])
    }
}

/// A storage callback that hands out zero-filled storages and remembers what it was asked.
private final class StorageRecorder {
    var references: [StorageReference] = []
    var storages: [String: Storage] = [:]

    func resolve(_ reference: StorageReference) throws -> Storage {
        references.append(reference)
        let storage = Storage(byteCount: reference.byteCount)
        storages[reference.key] = storage
        return storage
    }

    func load(_ bytes: [UInt8], file: String? = nil) throws -> StateValue {
        try Unpickler.load(bytes, file: file, storage: resolve)
    }
}

/// Compares a loaded tree with a sidecar description, collecting every difference.
private struct SidecarComparison {
    let recorder: StorageRecorder
    var mismatches: [String] = []

    mutating func fail(_ path: String, _ message: String) {
        mismatches.append("\(path.isEmpty ? "(root)" : path): \(message)")
    }

    static func bits(_ text: Any?) -> UInt64? { (text as? String).flatMap { UInt64($0) } }

    mutating func compare(_ actual: StateValue, _ expected: [String: Any], path: String) {
        let type = expected["type"] as? String ?? "?"
        if type == "object" {
            guard case .object(let object) = actual else { return fail(path, "\(actual.pythonTypeName), expected an object") }
            return compareObject(object, expected, path: path)
        }
        guard actual.pythonTypeName == type else {
            return fail(path, "type \(actual.pythonTypeName), expected \(type)")
        }
        switch actual {
        case .dict(let dict):
            let items = expected["items"] as? [[Any]] ?? []
            compareItems(Array(dict.items.elements), items, path: path)
            let attributes = (expected["attributes"] as? [[Any]] ?? []).map { pair -> [Any] in
                [["type": "str", "value": pair[0]], pair[1]]
            }
            compareItems(
                dict.attributes.map { (key: StateKey.string($0.key), value: $0.value) }, attributes, path: path
            )
        case .list(let elements), .tuple(let elements), .set(let elements):
            let items = expected["items"] as? [[String: Any]] ?? []
            guard elements.count == items.count else {
                return fail(path, "\(elements.count) elements, expected \(items.count)")
            }
            for (index, (element, item)) in zip(elements, items).enumerated() {
                compare(element, item, path: "\(path)/\(index)")
            }
        case .string(let text):
            if text != expected["value"] as? String {
                fail(path, "string \(text.prefix(40)), expected \(expected["value"] ?? "?")")
            }
        case .int(let number):
            if String(number) != expected["value"] as? String {
                fail(path, "int \(number), expected \(expected["value"] ?? "?")")
            }
        case .float(let number):
            if number.bitPattern != Self.bits(expected["bits"]) {
                fail(path, "float \(number) has other bits than expected")
            }
        case .bool(let flag):
            if flag != expected["value"] as? Bool { fail(path, "bool \(flag)") }
        case .none:
            break
        case .bytes(let raw), .bytearray(let raw):
            let hex = raw.map { String(format: "%02x", $0) }.joined()
            if hex != expected["hex"] as? String {
                fail(path, "bytes \(hex.prefix(40)), expected \(expected["hex"] ?? "?")")
            }
        case .complex(let real, let imaginary):
            if real.bitPattern != Self.bits(expected["real_bits"])
                || imaginary.bitPattern != Self.bits(expected["imag_bits"])
            {
                fail(path, "complex \(real)+\(imaginary)j differs")
            }
        case .size(let dims):
            if dims.map(String.init) != expected["value"] as? [String] { fail(path, "Size \(dims)") }
        case .device(let name):
            if name != expected["value"] as? String {
                fail(path, "device \(name), expected \(expected["value"] ?? "?")")
            }
        case .dtype(let dtype):
            if dtype.torchName != expected["value"] as? String { fail(path, "dtype \(dtype)") }
        case .tensor(let tensor):
            compareTensor(tensor, expected, path: path)
        case .object, .record:
            fail(path, "\(actual.pythonTypeName) where the sidecar has \(type)")
        }
    }

    mutating func compareObject(_ object: PickledObject, _ expected: [String: Any], path: String) {
        if object.module != expected["module"] as? String || object.name != expected["name"] as? String {
            return fail(path, "object \(object.qualifiedName), expected \(expected["module"] ?? "?").\(expected["name"] ?? "?")")
        }
        if object.construction.rawValue != expected["construction"] as? String {
            fail(path, "construction \(object.construction), expected \(expected["construction"] ?? "?")")
        }
        // Each part as the container it is, at the key path forEachTensor gives it.
        func part(_ name: String, _ type: String) -> [String: Any]? {
            expected[name].map { ["type": type, "items": $0] }
        }
        let parts = Dictionary(uniqueKeysWithValues: object.parts.map { ($0.key, $0.value) })
        for (name, type) in [("args", "tuple"), ("listitems", "list")] {
            switch (parts[name], part(name, type)) {
            case (nil, nil): break
            case let (value?, spec?): compare(value, spec, path: "\(path)/\(name)")
            default: fail(path, "\(name) present on one side only")
            }
        }
        for name in ["kwargs", "dictitems"] {
            switch (parts[name], expected[name] as? [[Any]]) {
            case (nil, nil): break
            case let (.dict(dict)?, items?): compareItems(Array(dict.items.elements), items.map { pair in
                    name == "kwargs" ? [["type": "str", "value": pair[0]], pair[1]] : pair
                }, path: "\(path)/\(name)")
            default: fail(path, "\(name) present on one side only")
            }
        }
        switch (object.state, expected["state"] as? [String: Any]) {
        case (nil, nil): break
        case let (state?, spec?): compare(state, spec, path: "\(path)/state")
        default: fail(path, "state present on one side only")
        }
    }

    mutating func compareItems(_ actual: [(key: StateKey, value: StateValue)], _ expected: [[Any]], path: String) {
        guard actual.count == expected.count else {
            return fail(path, "\(actual.count) items, expected \(expected.count)")
        }
        for ((key, value), pair) in zip(actual, expected) {
            guard pair.count == 2, let keySpec = pair[0] as? [String: Any], let valueSpec = pair[1] as? [String: Any]
            else {
                return fail(path, "bad sidecar item")
            }
            let keyMatches: Bool
            switch key {
            case .string(let text):
                keyMatches = keySpec["type"] as? String == "str" && keySpec["value"] as? String == text
            case .int(let number):
                keyMatches = keySpec["type"] as? String == "int" && keySpec["value"] as? String == String(number)
            }
            guard keyMatches else { return fail(path, "key \(key) (\(key)), expected \(keySpec)") }
            compare(value, valueSpec, path: path.isEmpty ? key.description : "\(path)/\(key)")
        }
    }

    mutating func compareTensor(_ tensor: Tensor, _ expected: [String: Any], path: String) {
        if tensor.dtype.torchName != expected["dtype"] as? String { fail(path, "dtype \(tensor.dtype)") }
        if tensor.shape != expected["shape"] as? [Int] { fail(path, "shape \(tensor.shape)") }
        if tensor.strides != expected["stride"] as? [Int] { fail(path, "strides \(tensor.strides)") }
        if tensor.storageOffset != expected["offset"] as? Int { fail(path, "offset \(tensor.storageOffset)") }
        if tensor.requiresGrad != expected["requires_grad"] as? Bool {
            fail(path, "requires_grad \(tensor.requiresGrad)")
        }
        guard let storage = expected["storage"] as? [String: Any], let key = storage["key"] as? String,
            let numel = storage["numel"] as? Int
        else { return fail(path, "sidecar lacks the storage") }
        guard let shared = recorder.storages[key], shared === tensor.storage else {
            return fail(path, "tensor does not view the storage of key \(key)")
        }
        guard let reference = recorder.references.first(where: { $0.key == key }) else {
            return fail(path, "no reference")
        }
        let dtype = (storage["dtype"] as? String).flatMap { DType(torchName: $0) }
        if reference.dtype != dtype { fail(path, "storage dtype \(String(describing: reference.dtype))") }
        if reference.byteCount != numel * (dtype?.itemSize ?? 1) { fail(path, "storage bytes \(reference.byteCount)") }
        if reference.location != storage["location"] as? String { fail(path, "location \(reference.location)") }
    }
}

@Suite("Unpickler on pickles written by Python and torch")
struct UnpicklerFixtureTests {
    @Test(arguments: PickleFixtures.names)
    func loadsAsTheSidecarDescribes(name: String) throws {
        let recorder = StorageRecorder()
        let tree = try recorder.load(try PickleFixtures.pickle(name), file: "\(name).pkl")
        var comparison = SidecarComparison(recorder: recorder)
        comparison.compare(tree, try PickleFixtures.sidecar(name), path: "")
        #expect(
            comparison.mismatches.isEmpty,
            "\(name): \(comparison.mismatches.count) differences:\n\(comparison.mismatches.prefix(20).joined(separator: "\n"))"
        )
        // One callback per distinct key, however many tensors share it.
        #expect(Set(recorder.references.map(\.key)).count == recorder.references.count)
    }

    @Test(arguments: PickleFixtures.rejectedNames)
    func refusesForbiddenOrUnrepresentablePickles(name: String) throws {
        let data = try Data(contentsOf: PickleFixtures.directory.appendingPathComponent("\(name).json"))
        let sidecar = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rejected = try #require(sidecar["rejected"] as? [String: String])
        let error = try #require(throws: CheckpointError.self) {
            try StorageRecorder().load(try PickleFixtures.pickle(name), file: "\(name).pkl")
        }
        #expect(error.code.rawValue == rejected["code"], "\(error)")
        #expect(error.description.contains(rejected["mentions"] ?? "?"), "\(error)")
    }

    @Test func modelStateDictKeepsMetadataAsAttributes() throws {
        let tree = try StorageRecorder().load(try PickleFixtures.pickle("torch_model_state_dict"))
        guard case .dict(let dict) = tree else {
            Issue.record("not a dict")
            return
        }
        #expect(dict.isOrderedDict)
        guard case .dict(let metadata)? = dict.attributes["_metadata"] else {
            Issue.record("no _metadata")
            return
        }
        #expect(metadata.isOrderedDict)
        #expect(metadata[""] == .dict(["version": .int(1)]))
    }

    @Test func tiedWeightsShareOneStorageObject() throws {
        let tree = try StorageRecorder().load(try PickleFixtures.pickle("torch_shared_and_views"))
        guard case .tensor(let w)? = tree["w"], case .tensor(let tied)? = tree["tied"],
            case .tensor(let transposed)? = tree["transposed"], case .tensor(let flat)? = tree["flat"]
        else {
            Issue.record("missing tensors")
            return
        }
        #expect(w.storage === tied.storage && w.storage === transposed.storage)
        #expect(w.storage !== flat.storage)
    }
}

// MARK: - Hostile input

/// Builds pickles opcode by opcode.
private enum Op {
    static let proto: [UInt8] = [0x80, 0x02]
    static let stop: [UInt8] = [0x2E]
    static let mark: [UInt8] = [0x28]
    static let tuple: [UInt8] = [0x74]
    static let emptyTuple: [UInt8] = [0x29]
    static let emptyList: [UInt8] = [0x5D]
    static let emptyDict: [UInt8] = [0x7D]
    static let reduce: [UInt8] = [0x52]
    static let newFalse: [UInt8] = [0x89]
    static let none: [UInt8] = [0x4E]

    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }

    static func string(_ text: String) -> [UInt8] {
        let utf8 = Array(text.utf8)
        return [0x58] + withUnsafeBytes(of: UInt32(utf8.count).littleEndian, Array.init) + utf8
    }

    static func int(_ value: Int64) -> [UInt8] {
        if let small = Int32(exactly: value) { return [0x4A] + withUnsafeBytes(of: small.littleEndian, Array.init) }
        return [0x8A, 8] + withUnsafeBytes(of: value.littleEndian, Array.init)
    }

    static func ints(_ values: [Int64]) -> [UInt8] { mark + values.flatMap(int) + tuple }

    static let hooks = global("collections", "OrderedDict") + emptyTuple + reduce

    static func storage(_ className: String = "FloatStorage", key: String = "0", numel: Int64) -> [UInt8] {
        let module = className == "UntypedStorage" ? "torch.storage" : "torch"
        return mark + string("storage") + global(module, className) + string(key) + string("cpu") + int(numel) + tuple
            + [0x51]
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    static func tensor(
        numel: Int64, offset: Int64 = 0, size: [Int64], stride: [Int64], className: String = "FloatStorage"
    )
        -> [UInt8]
    {
        global("torch._utils", "_rebuild_tensor_v2") + mark + storage(className, numel: numel) + int(offset)
            + ints(size)
            + ints(stride) + newFalse + hooks + tuple + reduce
    }

    static func pickle(_ parts: [UInt8]...) -> [UInt8] { proto + parts.flatMap { $0 } + stop }
}

struct HostileCase: CustomTestStringConvertible, Sendable {
    let name: String
    let bytes: [UInt8]
    let code: CheckpointError.Code
    /// Text the message must contain (the offending global, the opcode, ...).
    let mentions: String?
    var testDescription: String { name }

    init(_ name: String, _ bytes: [UInt8], _ code: CheckpointError.Code, mentions: String? = nil) {
        self.name = name
        self.bytes = bytes
        self.code = code
        self.mentions = mentions
    }
}

private func nestedLists(_ depth: Int) -> [UInt8] {
    // ] ] ... ] then APPEND depth-1 times: each list appended into the one below it.
    Op.proto + [UInt8](repeating: 0x5D, count: depth) + [UInt8](repeating: 0x61, count: depth - 1) + Op.stop
}

private let hostileCases: [HostileCase] = [
    HostileCase("empty input", [], .truncated),
    HostileCase("no STOP", Op.proto + Op.none, .truncated, mentions: "STOP"),
    HostileCase("STOP on an empty stack", Op.pickle(), .malformedPickle, mentions: "underflow"),
    HostileCase("unknown opcode", Op.pickle([0xFF]), .malformedPickle, mentions: "0xff"),
    HostileCase("APPEND on a dict", Op.pickle(Op.emptyDict, Op.none, [0x61]), .malformedPickle, mentions: "APPEND"),
    HostileCase(
        "APPENDS on a tuple", Op.pickle(Op.emptyTuple, Op.mark, Op.none, [0x65]), .malformedPickle, mentions: "non-list"
    ),
    HostileCase(
        "SETITEMS on a list", Op.pickle(Op.emptyList, Op.mark, Op.none, Op.none, [0x75]), .malformedPickle,
        mentions: "non-dict"),
    HostileCase(
        "SETITEM on a string", Op.pickle(Op.string("x"), Op.none, Op.none, [0x73]), .malformedPickle,
        mentions: "SETITEM"),
    HostileCase(
        "SETITEMS without MARK", Op.pickle(Op.emptyDict, Op.none, Op.none, [0x75]), .malformedPickle, mentions: "MARK"),
    HostileCase(
        "SETITEMS with an odd count", Op.pickle(Op.emptyDict, Op.mark, Op.none, [0x75]), .malformedPickle,
        mentions: "odd"),
    HostileCase("TUPLE3 on two values", Op.pickle(Op.none, Op.none, [0x87]), .malformedPickle, mentions: "TUPLE3"),
    HostileCase("BINGET of an unset index", Op.pickle([0x68, 7]), .malformedPickle, mentions: "memo"),
    HostileCase(
        "LONG_BINGET of an unset index", Op.pickle(Op.none, [0x71, 0], [0x6A, 1, 0, 0, 0]), .malformedPickle,
        mentions: "memo"),
    HostileCase("BINPUT on an empty stack", Op.pickle([0x71, 0]), .malformedPickle, mentions: "BINPUT"),
    HostileCase(
        "BINUNICODE length past the end", Op.proto + [0x58, 0xFF, 0xFF, 0xFF, 0xFF, 0x41], .truncated,
        mentions: "BINUNICODE"),
    HostileCase("BINUNICODE8 length 2^63", Op.proto + [0x8D] + [0, 0, 0, 0, 0, 0, 0, 0x80], .truncated),
    HostileCase(
        "BINBYTES8 length past the end", Op.proto + [0x8E] + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        .truncated),
    HostileCase("FRAME length past the end", Op.proto + [0x95] + [0, 0, 0, 0, 0, 0, 0, 1], .truncated),
    HostileCase("truncated BININT", Op.proto + [0x4A, 1, 2], .truncated, mentions: "BININT"),
    HostileCase("GLOBAL without newline", Op.proto + [0x63] + Array("os".utf8), .truncated),
    HostileCase(
        "LONG4 with a negative length", Op.pickle([0x8B, 0xFF, 0xFF, 0xFF, 0xFF]), .malformedPickle,
        mentions: "negative"),
    HostileCase(
        "LONG1 wider than 64 bits", Op.pickle([0x8A, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1]), .unsupported, mentions: "64 bits"),
    HostileCase(
        "LONG4 wider than 64 bits", Op.pickle([0x8B, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]), .unsupported,
        mentions: "64 bits"),
    HostileCase(
        "size and stride of different ranks", Op.pickle(Op.tensor(numel: 4, size: [2, 2], stride: [1])),
        .malformedPickle, mentions: "stride"),
    HostileCase(
        "INT wider than 64 bits", Op.pickle([0x49] + Array("123456789012345678901234\n".utf8)), .unsupported,
        mentions: "64 bits"),
    HostileCase(
        "requires_grad on an int tensor",
        Op.pickle(
            Op.global("torch._utils", "_rebuild_tensor_v2"), Op.mark, Op.storage("LongStorage", numel: 1), Op.int(0),
            Op.ints([1]), Op.ints([1]), [0x88], Op.hooks, Op.tuple, Op.reduce), .malformedPickle, mentions: "gradients"),
    HostileCase("invalid UTF-8", Op.pickle([0x8C, 2, 0xC3, 0x28]), .malformedPickle, mentions: "UTF-8"),
    HostileCase(
        "STACK_GLOBAL with a newline in the name",
        Op.pickle([0x8C, 10] + Array("subprocess".utf8) + [0x8C, 6] + Array("Po\npen".utf8) + [0x93]), .malformedPickle,
        mentions: "global"),
    HostileCase(
        "STACK_GLOBAL with an empty module", Op.pickle([0x8C, 0, 0x8C, 5] + Array("Popen".utf8) + [0x93]),
        .malformedPickle, mentions: "global"),
    HostileCase(
        "BUILD on a class", Op.pickle(Op.global("argparse", "Namespace"), Op.emptyDict, [0x62]), .malformedPickle,
        mentions: "BUILD"),
    HostileCase(
        "a second BUILD on an object",
        Op.pickle(Op.global("argparse", "Namespace"), Op.emptyTuple, [0x81], Op.emptyDict, [0x62], Op.emptyDict, [0x62]),
        .unsupported, mentions: "second BUILD"),
    HostileCase(
        "an object whose state holds it",
        Op.pickle(Op.global("argparse", "Namespace"), Op.emptyTuple, [0x81], [0x71, 0], [0x68, 0], [0x62]), .unsupported,
        mentions: "itself"),
    HostileCase(
        "calling an object the pickle built",
        Op.pickle(Op.global("functools", "partial"), Op.emptyTuple, Op.reduce, Op.emptyTuple, Op.reduce), .unsupported,
        mentions: "calling an object"),
    HostileCase(
        "NEWOBJ on an object the pickle built",
        Op.pickle(Op.global("functools", "partial"), Op.emptyTuple, Op.reduce, Op.emptyTuple, [0x81]), .malformedPickle,
        mentions: "NEWOBJ"),
    HostileCase(
        "NEWOBJ_EX with an int keyword",
        Op.pickle(Op.global("argparse", "Namespace"), Op.emptyTuple, Op.emptyDict, Op.int(1), Op.none, [0x73], [0x92]),
        .malformedPickle, mentions: "keyword"),
    HostileCase(
        "set() of an object's items",
        Op.pickle(Op.global("builtins", "set"), Op.global("argparse", "Namespace"), Op.emptyTuple, [0x81], [0x85], Op.reduce),
        .malformedPickle, mentions: "set()"),
    HostileCase(
        "an object's dict items with a tuple key",
        Op.pickle(Op.global("collections", "defaultdict"), Op.emptyTuple, Op.reduce, Op.ints([1, 2]), Op.none, [0x73]),
        .unsupported, mentions: "str or int"),
    HostileCase(
        "an object as a dict key",
        Op.pickle(Op.emptyDict, Op.global("argparse", "Namespace"), Op.emptyTuple, [0x81], Op.none, [0x73]), .unsupported,
        mentions: "str or int"),
    HostileCase(
        "objects nested 1001 deep",
        Op.proto + Array(repeating: Op.global("argparse", "Namespace") + Op.emptyTuple + [0x81], count: 1001).flatMap { $0 }
            + Array(repeating: [0x62], count: 1000).flatMap { $0 } + Op.stop, .limitExceeded, mentions: "maximumNestingDepth"),
    HostileCase(
        "STACK_GLOBAL on ints", Op.pickle(Op.int(1), Op.int(2), [0x93]), .malformedPickle, mentions: "STACK_GLOBAL"),
    HostileCase(
        "REDUCE on a string", Op.pickle(Op.string("f"), Op.emptyTuple, Op.reduce), .malformedPickle,
        mentions: "non-callable"),
    HostileCase(
        "REDUCE on a dtype", Op.pickle(Op.global("torch", "float32"), Op.emptyTuple, Op.reduce), .malformedPickle,
        mentions: "non-callable"),
    HostileCase(
        "REDUCE with a list of arguments", Op.pickle(Op.global("collections", "OrderedDict"), Op.emptyList, Op.reduce),
        .malformedPickle, mentions: "tuple"),
    HostileCase("BUILD on a list", Op.pickle(Op.emptyList, Op.emptyDict, [0x62]), .malformedPickle, mentions: "BUILD"),
    HostileCase(
        "unknown torch dtype", Op.pickle(Op.global("torch", "float8_e5m2fnuz")), .unknownDType,
        mentions: "float8_e5m2fnuz"),
    HostileCase(
        "quantized storage", Op.pickle(Op.global("torch", "QInt8Storage")), .unknownDType, mentions: "QInt8Storage"),
    HostileCase("frozenset", Op.pickle(Op.mark, [0x91]), .unsupported, mentions: "frozenset"),
    HostileCase("text STRING opcode", Op.pickle([0x53] + Array("'a'\n".utf8)), .unsupported, mentions: "STRING"),
    HostileCase(
        "_rebuild_tensor_v2 with 3 arguments",
        Op.pickle(Op.global("torch._utils", "_rebuild_tensor_v2"), Op.ints([1, 2, 3]), Op.reduce), .malformedPickle,
        mentions: "_rebuild_tensor_v2"),
    HostileCase(
        "tensor with a negative size", Op.pickle(Op.tensor(numel: 4, size: [-1], stride: [1])), .malformedPickle,
        mentions: "negative"),
    HostileCase(
        "tensor with a negative offset", Op.pickle(Op.tensor(numel: 4, offset: -1, size: [1], stride: [1])),
        .malformedPickle, mentions: "negative"),
    HostileCase(
        "tensor view past its storage", Op.pickle(Op.tensor(numel: 4, offset: 1, size: [4], stride: [1])), .outOfBounds,
        mentions: "REDUCE"),
    HostileCase(
        "strided view past its storage", Op.pickle(Op.tensor(numel: 6, size: [2, 3], stride: [3, 2])), .outOfBounds),
    HostileCase(
        "shape × item size overflows", Op.pickle(Op.tensor(numel: 4, size: [Int64.max / 2, 4], stride: [4, 1])),
        .outOfBounds),
    HostileCase(
        "storage numel × item size overflows", Op.pickle(Op.tensor(numel: Int64.max / 2, size: [1], stride: [1])),
        .outOfBounds, mentions: "overflow"),
    HostileCase(
        "negative storage numel", Op.pickle(Op.tensor(numel: -4, size: [1], stride: [1])), .malformedPickle,
        mentions: "numel"),
    HostileCase(
        "persistent id that is not a storage", Op.pickle(Op.mark, Op.string("module"), Op.int(1), Op.tuple, [0x51]),
        .malformedPickle, mentions: "storage"),
    HostileCase(
        "persistent id with 4 fields",
        Op.pickle(
            Op.mark, Op.string("storage"), Op.global("torch", "FloatStorage"), Op.string("0"), Op.string("cpu"),
            Op.tuple, [0x51]), .malformedPickle, mentions: "length"),
    HostileCase(
        "persistent id with a dtype as storage type",
        Op.pickle(
            Op.mark, Op.string("storage"), Op.global("torch", "float32"), Op.string("0"), Op.string("cpu"), Op.int(1),
            Op.tuple, [0x51]), .malformedPickle, mentions: "storage class"),
    HostileCase(
        "tensor rebuilt from a string",
        Op.pickle(
            Op.global("torch._utils", "_rebuild_tensor_v2"), Op.mark, Op.string("x"), Op.int(0), Op.ints([1]),
            Op.ints([1]), Op.newFalse, Op.hooks, Op.tuple, Op.reduce), .malformedPickle, mentions: "storage"),
    HostileCase(
        "tensor with backward hooks",
        Op.pickle(
            Op.global("torch._utils", "_rebuild_tensor_v2"), Op.mark, Op.storage(numel: 1), Op.int(0), Op.ints([1]),
            Op.ints([1]), Op.newFalse, Op.emptyDict, Op.int(1), Op.none, [0x73], Op.tuple, Op.reduce), .unsupported,
        mentions: "hooks"),
    HostileCase(
        "tensor subclass",
        Op.pickle(
            Op.global("torch._tensor", "_rebuild_from_type_v2"), Op.mark,
            Op.global("torch._utils", "_rebuild_tensor_v2"), Op.global("torch", "Size"), Op.emptyTuple, Op.none,
            Op.tuple, Op.reduce), .unsupported, mentions: "subclass"),
    HostileCase("tar-format integer persistent id", Op.pickle(Op.int(3), [0x51]), .unsupported, mentions: "tar format"),
    HostileCase(
        "dict with a tuple key",
        Op.pickle(Op.emptyDict, Op.string("a"), Op.emptyDict, Op.ints([1, 2]), Op.none, [0x73], [0x73]), .unsupported,
        mentions: "str or int"),
    HostileCase(
        "dict with a float key", Op.pickle(Op.emptyDict, [0x47] + [0x3F, 0xF0, 0, 0, 0, 0, 0, 0], Op.none, [0x73]),
        .unsupported),
    HostileCase(
        "a list that contains itself", Op.pickle(Op.emptyList, [0x71, 0], [0x68, 0], [0x61]), .unsupported,
        mentions: "itself"),
    HostileCase("containers nested 1001 deep", nestedLists(1001), .limitExceeded, mentions: "maximumNestingDepth"),
    HostileCase("a bare storage", Op.pickle(Op.storage(numel: 1)), .unsupported, mentions: "storage"),
    HostileCase("protocol 6", [0x80, 6] + Op.none + Op.stop, .unsupported, mentions: "protocol"),
    HostileCase(
        "NEWOBJ_EX with keywords",
        Op.pickle(
            Op.global("collections", "OrderedDict"), Op.emptyTuple, Op.emptyDict, Op.string("a"), Op.none, [0x73],
            [0x92]), .unsupported, mentions: "keyword"),
]

@Suite("Unpickler on hostile input")
struct UnpicklerHostileTests {
    @Test(arguments: hostileCases)
    func isRejectedWithATypedError(_ hostile: HostileCase) {
        do {
            let value = try Unpickler.load(hostile.bytes, file: "evil.pkl") { Storage(byteCount: $0.byteCount) }
            Issue.record("loaded as \(value.pythonTypeName) but must be rejected with \(hostile.code)")
        } catch let error as CheckpointError {
            #expect(error.code == hostile.code, "\(error)")
            #expect(error.file == "evil.pkl", "\(error)")
            if let mentions = hostile.mentions {
                #expect(error.description.contains(mentions), "\(error)")
            }
        } catch {
            Issue.record("threw \(type(of: error)), not CheckpointError: \(error)")
        }
    }

    @Test func aBadDictKeyIsReportedAtItsKeyPath() throws {
        let bytes = Op.pickle(
            Op.emptyDict, Op.string("state"), Op.emptyDict, Op.int(0), Op.emptyDict,
            Op.ints([1, 2]), Op.none, [0x73], [0x73], [0x73])
        let error = try #require(throws: CheckpointError.self) {
            try Unpickler.load(bytes) { _ in Storage(byteCount: 0) }
        }
        #expect(error.code == .unsupported)
        #expect(error.path == "state/0", "\(error)")
        #expect(error.found?.contains("tuple") == true, "\(error)")
    }

    /// Reading and writing the deepest allowed tree must fit in a small thread stack (512 KiB, the
    /// size of a secondary thread on macOS), so a tree that loads can be saved from anywhere.
    /// (Comparing two such trees with `==` recurses per level and is not checked here.)
    @Test func theDeepestAllowedTreeFitsInASmallStack() async throws {
        let bytes = nestedLists(Unpickler.maximumNestingDepth)
        let depth = await withCheckedContinuation { continuation in
            let thread = Thread {
                let tree = try? Unpickler.load(bytes) { _ in Storage(byteCount: 0) }
                let written = tree.flatMap { try? Pickler.dump($0, storageKeys: [:]) }
                var value = written.flatMap { try? Unpickler.load($0) { _ in Storage(byteCount: 0) } }
                var depth = 0
                while case .list(let inner)? = value {
                    depth += 1
                    value = inner.first
                }
                continuation.resume(returning: depth)
            }
            thread.stackSize = 512 * 1024
            thread.start()
        }
        #expect(depth == Unpickler.maximumNestingDepth)
    }

    @Test func nestingOfExactlyTheLimitLoads() throws {
        var value = try Unpickler.load(nestedLists(Unpickler.maximumNestingDepth)) { _ in Storage(byteCount: 0) }
        var depth = 0
        while case .list(let inner) = value {
            depth += 1
            guard let first = inner.first else { break }
            value = first
        }
        #expect(depth == Unpickler.maximumNestingDepth)
    }

    @Test func errorsNameTheByteOffsetAndOpcode() throws {
        let bytes = Op.pickle(Op.none, Op.global("torch", "qint8"))
        let error = try #require(throws: CheckpointError.self) {
            try Unpickler.load(bytes) { _ in Storage(byteCount: 0) }
        }
        #expect(error.message.contains("pickle byte 3 (GLOBAL)"), "\(error)")
        #expect(error.found == "torch.qint8")
    }

    @Test func sharedContainersThatExpandExponentiallyAreRejectedQuickly() throws {
        // l0 = [], l(n) = [l(n-1), l(n-1)]: 60 levels make 2^60 values for whoever walks the tree.
        var laughs = Op.proto + Op.emptyList + [0x71, 0]  // memo 0 = l0
        for level in 1...60 {
            laughs += Op.emptyList + [0x72] + withUnsafeBytes(of: UInt32(level).littleEndian, Array.init)
            let previous = [0x6A] + withUnsafeBytes(of: UInt32(level - 1).littleEndian, Array.init)
            laughs += Op.mark + previous + previous + [0x65]
        }
        laughs += Op.stop
        let start = ContinuousClock.now
        let error = try #require(throws: CheckpointError.self) {
            try Unpickler.load(laughs) { _ in Storage(byteCount: 0) }
        }
        #expect(error.code == .limitExceeded, "\(error)")
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func farMemoIndicesWorkWithoutAllocatingForThem() throws {
        let bytes = Op.pickle(
            Op.string("far"), [0x72, 0xFF, 0xFF, 0xFF, 0xFF], [0x30], [0x6A, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(try Unpickler.load(bytes) { _ in Storage(byteCount: 0) } == .string("far"))
    }

    /// A large flat pickle loads in time linear in its size (a quadratic step once made a
    /// 60,000-tensor pickle take 15 s): ten times the items take well under a hundred times as
    /// long. A ratio in one run, not a time limit, so that a slow machine or a sanitizer build
    /// (3–10x slower) passes as long as the growth is linear.
    @Test func largeFlatTreesLoadInLinearTime() throws {
        func pickle(_ count: Int) throws -> (StateDict, [UInt8]) {
            var items = StateDict()
            for index in 0..<count { items.items[.int(Int64(index))] = .list([.string("v"), .int(Int64(index))]) }
            return (items, try Pickler.dump(.dict(items), storageKeys: [:]))
        }
        func loadTime(_ bytes: [UInt8]) throws -> (StateValue, Duration) {
            let start = ContinuousClock.now
            // 100,000 items of a 2-element list push ~900,000 values: past the default cap.
            let back = try Unpickler.load(bytes, limits: .unlimited) { _ in Storage(byteCount: 0) }
            return (back, ContinuousClock.now - start)
        }
        let (_, small) = try pickle(10_000)
        let (items, large) = try pickle(100_000)
        // The smaller load's best of three: one slowed by other tests would flatter the ratio.
        let smallTime = try (0..<3).map { _ in try loadTime(small).1 }.min()!
        let (back, largeTime) = try loadTime(large)
        #expect(largeTime < smallTime * 30, "10,000 items: \(smallTime), 100,000: \(largeTime)")
        #expect(back == .dict(items))
    }

    @Test func longOneWithRedundantSignBytesStillFits() throws {
        // -1 written in 10 bytes, and 2^63-1 in 9: valid pickles, values that fit.
        let minusOne = try Unpickler.load(Op.pickle([0x8A, 10] + [UInt8](repeating: 0xFF, count: 10))) { _ in
            Storage(byteCount: 0)
        }
        #expect(minusOne == .int(-1))
        let max = try Unpickler.load(Op.pickle([0x8A, 9] + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x00])) {
            _ in
            Storage(byteCount: 0)
        }
        #expect(max == .int(Int64.max))
    }

    @Test func everyTruncationOfARealPickleFailsCleanly() throws {
        let bytes = try PickleFixtures.pickle("torch_model_state_dict")
        for length in 0..<bytes.count {
            #expect(throws: CheckpointError.self, "prefix of \(length) bytes") {
                try Unpickler.load(Array(bytes[..<length])) { Storage(byteCount: $0.byteCount) }
            }
        }
    }

    @Test func everyByteFlipOfARealPickleLoadsOrFailsCleanly() throws {
        let bytes = try PickleFixtures.pickle("torch_adagrad_state_dict")
        for position in bytes.indices {
            for mask: UInt8 in [0xFF, 0x01, 0x80] {
                var mutated = bytes
                mutated[position] ^= mask
                do {
                    _ = try Unpickler.load(mutated) { Storage(byteCount: min($0.byteCount, 1 << 20)) }
                } catch is CheckpointError {
                } catch {
                    Issue.record("byte \(position) ^ \(mask): \(type(of: error)) \(error)")
                }
            }
        }
    }

    /// Random opcode soup built from real fragments (globals, storages, tensors, containers) and
    /// random bytes: every input must load or throw a CheckpointError, never trap.
    @Test func randomOpcodeSoupLoadsOrFailsCleanly() throws {
        var random = SplitMix64(seed: 0x5EED_C0DE)
        let fragments: [[UInt8]] = [
            Op.mark, Op.tuple, Op.emptyTuple, Op.emptyList, Op.emptyDict, Op.reduce, Op.newFalse, Op.none, Op.hooks,
            [0x85], [0x86], [0x87], [0x61], [0x65], [0x73], [0x75], [0x62], [0x51], [0x81], [0x8F], [0x90], [0x94],
            [0x30], [0x31], [0x32], [0x71, 0], [0x71, 1], [0x68, 0], [0x68, 1], [0x93],
            Op.int(0), Op.int(3), Op.int(-1), Op.string("storage"), Op.string("0"), Op.string("cpu"),
            Op.global("collections", "OrderedDict"), Op.global("torch._utils", "_rebuild_tensor_v2"),
            Op.global("torch._utils", "_rebuild_tensor_v3"), Op.global("torch._utils", "_rebuild_parameter"),
            Op.global("torch", "FloatStorage"), Op.global("torch.storage", "UntypedStorage"),
            Op.global("torch", "Size"),
            Op.global("torch", "device"), Op.global("builtins", "set"), Op.global("_codecs", "encode"),
            Op.global("torch", "float16"), Op.global("torch._tensor", "_rebuild_from_type_v2"),
            Op.global("argparse", "Namespace"), [0x92], Op.global("torch", "qint8"),
            Op.storage(numel: 4), Op.tensor(numel: 4, size: [2], stride: [1]), Op.ints([2, 2]), Op.ints([]),
        ]
        var outcomes: [String: Int] = [:]
        for _ in 0..<20_000 {
            var bytes = Op.proto
            for _ in 0..<Int(random.next() % 24) {
                if random.next() % 5 == 0 {
                    bytes += (0..<Int(random.next() % 6)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                } else {
                    bytes += fragments[Int(random.next() % UInt64(fragments.count))]
                }
            }
            bytes += Op.stop
            do {
                _ = try Unpickler.load(bytes) { Storage(byteCount: min($0.byteCount, 1 << 16)) }
                outcomes["loaded", default: 0] += 1
            } catch let error as CheckpointError {
                outcomes[error.code.rawValue, default: 0] += 1
            } catch {
                Issue.record("\(bytes): \(type(of: error)) \(error)")
            }
        }
        // The soup must reach past the first few opcodes, or it tests nothing.
        #expect(outcomes["loaded", default: 0] > 100, "\(outcomes)")
        #expect(outcomes.count >= 5, "\(outcomes)")
    }

    @Test func storageCallbackErrorsPropagate() throws {
        struct Refused: Error {}
        #expect(throws: Refused.self) {
            try Unpickler.load(Op.pickle(Op.tensor(numel: 1, size: [1], stride: [1]))) { _ in throw Refused() }
        }
    }
}


// MARK: - Placeholders

@Suite("Unpickler keeps objects outside the allow-list as placeholders")
struct UnpicklerPlaceholderTests {
    private func load(_ bytes: [UInt8]) throws -> StateValue {
        try Unpickler.load(bytes, file: "objects.pkl") { Storage(byteCount: $0.byteCount) }
    }

    /// What torch's weights-only load refuses: named and called, never imported or run.
    @Test func globalsOutsideTheAllowListAreDataNotCode() throws {
        #expect(
            try load(Op.pickle(Op.global("os", "system"), Op.string("echo hi"), [0x85], Op.reduce))
                == .object(PickledObject(module: "os", name: "system", construction: .reduce, args: ["echo hi"])))
        #expect(try load(Op.pickle(Op.global("builtins", "eval"))) == .object(PickledObject(module: "builtins", name: "eval")))
        #expect(
            try load(Op.pickle(Op.global("__builtin__", "getattr")))
                == .object(PickledObject(module: "__builtin__", name: "getattr")), "spelled as the pickle spells it")
        #expect(try load(Op.pickle(Op.global("torch", "load"))) == .object(PickledObject(module: "torch", name: "load")))
        #expect(
            try load(Op.pickle([0x8C, 10] + Array("subprocess".utf8) + [0x8C, 5] + Array("Popen".utf8) + [0x93]))
                == .object(PickledObject(module: "subprocess", name: "Popen")))
    }

    @Test func aBareAllowListedGlobalIsAReferenceUnderItsCanonicalName() throws {
        let tree = try load(Op.pickle(Op.emptyList, Op.global("collections", "OrderedDict"), [0x61]))
        #expect(tree == .list([.object(PickledObject(module: "collections", name: "OrderedDict"))]))
        #expect(try load(Op.pickle(Op.global("torch", "float16"))) == .dtype(.float16), "a dtype stays a dtype")
    }

    @Test func newobjAndBuildKeepTheArgumentsAndState() throws {
        let bytes = Op.pickle(
            Op.global("argparse", "Namespace"), Op.emptyTuple, [0x81], Op.emptyDict, Op.string("lr"),
            [0x47, 0x3F, 0xB9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A], [0x73], [0x62])
        let namespace = PickledObject(
            module: "argparse", name: "Namespace", construction: .newObject, state: ["lr": 0.1])
        #expect(try load(bytes) == .object(namespace))
        #expect(namespace.parts.map(\.key) == ["state"], "empty args are no part")
        #expect(try load(bytes).value(atPath: "state/lr") == .float(0.1))
        #expect(StateValue.object(namespace).pythonTypeName == "argparse.Namespace")
    }

    @Test func appendedAndSetItemsAndKeywordsAreKept() throws {
        let bytes = Op.pickle(
            Op.emptyList,
            Op.global("collections", "defaultdict"), Op.global("builtins", "list"), [0x85], Op.reduce,
            Op.mark, Op.string("a"), Op.int(1), Op.string("b"), Op.int(2), [0x75], [0x61],
            Op.global("mylib", "Bag"), Op.emptyTuple, [0x81], Op.mark, Op.int(1), Op.int(2), [0x65], [0x61],
            Op.global("mylib", "Config"), Op.ints([1]), Op.emptyDict, Op.string("debug"), [0x88], [0x73], [0x92], [0x61])
        let expected: StateValue = [
            .object(PickledObject(
                module: "collections", name: "defaultdict", construction: .reduce,
                args: [.object(PickledObject(module: "builtins", name: "list"))], dictItems: ["a": 1, "b": 2])),
            .object(PickledObject(module: "mylib", name: "Bag", construction: .newObject, listItems: [1, 2])),
            .object(PickledObject(module: "mylib", name: "Config", construction: .newObject, args: [1], kwargs: ["debug": true])),
        ]
        let tree = try load(bytes)
        #expect(tree == expected)
        #expect(tree.value(atPath: "0/dictitems/b") == .int(2))
        #expect(tree.value(atPath: "1/listitems/1") == .int(2))
        #expect(tree.value(atPath: "2/kwargs/debug") == .bool(true))
    }

    @Test func tensorsInsideAWholeModuleAreRealTensors() throws {
        let data = try PickleFixtures.pickle("object_whole_model")
        let tree = try Unpickler.load(data) { Storage(byteCount: $0.byteCount) }
        var paths: [String] = []
        tree.forEachTensor { path, tensor in
            paths.append(path.pathString)
            #expect(tensor.isParameter && tensor.requiresGrad)
        }
        #expect(paths == [
            "state/_modules/0/state/_parameters/weight", "state/_modules/0/state/_parameters/bias",
            "state/_modules/2/state/_parameters/weight", "state/_modules/2/state/_parameters/bias",
        ])
        var globals: [String] = []
        tree.forEachObject { _, object in globals.append(object.qualifiedName) }
        #expect(globals == [
            "torch.nn.modules.container.Sequential", "torch.nn.modules.linear.Linear",
            "torch.nn.modules.activation.ReLU", "torch.nn.modules.linear.Linear",
        ])
    }

    @Test func hugeArgumentsLoadWithinTheLimitsAndExplodingOnesAreRefused() throws {
        // 200,000 arguments: read, counted, and no trouble.
        let many = Op.proto + Op.global("mylib", "f") + Op.mark
            + [UInt8](repeating: 0x4E, count: 200_000) + Op.tuple + Op.reduce + Op.stop
        guard case .object(let object) = try load(many) else {
            Issue.record("not an object")
            return
        }
        #expect(object.args.count == 200_000)
        // Arguments that share a tuple through the memo, doubling at each of 40 levels: 2^40 values.
        var laughs = Op.proto + Op.emptyTuple + [0x71, 0]
        for level in 1...40 {
            let previous = [0x6A] + withUnsafeBytes(of: UInt32(level - 1).littleEndian, Array.init)
            laughs += Op.global("mylib", "f") + previous + previous + [0x86] + Op.reduce
            laughs += [0x72] + withUnsafeBytes(of: UInt32(level).littleEndian, Array.init)
        }
        laughs += Op.stop
        let start = ContinuousClock.now
        let error = try #require(throws: CheckpointError.self) { try load(laughs) }
        #expect(error.code == .limitExceeded, "\(error)")
        #expect(error.message.contains("LoadOptions.limits.maximumTreeValues"), "\(error)")
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func objectsNestedToTheLimitLoad() throws {
        let depth = Unpickler.maximumNestingDepth
        let bytes = Op.proto
            + Array(repeating: Op.global("argparse", "Namespace") + Op.emptyTuple + [0x81], count: depth).flatMap { $0 }
            + Array(repeating: [0x62], count: depth - 1).flatMap { $0 } + Op.stop
        var value: StateValue? = try load(bytes)
        var levels = 0
        while case .object(let object)? = value {
            levels += 1
            value = object.state
        }
        #expect(levels == depth)
    }
}

// MARK: - Pickler

/// Trees built in Swift; scripts/check_pickle_interop.py builds the same objects in Python.
private enum InteropCases {
    static func raw(_ bytes: [UInt8], _ dtype: DType, _ shape: [Int]) throws -> Tensor {
        try Tensor(storage: Storage(bytes: bytes), dtype: dtype, shape: shape)
    }

    static func bytes<T: BitwiseCopyable>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    /// `torch.tensor([0., 1., 2.]).to(dtype)`.
    static func zeroOneTwo(_ dtype: DType) throws -> Tensor {
        let data: [UInt8]
        switch dtype {
        case .float64: data = bytes([0, 1, 2] as [Double])
        case .float32: data = bytes([0, 1, 2] as [Float])
        case .float16: data = bytes([0x0000, 0x3C00, 0x4000] as [UInt16])
        case .bfloat16: data = bytes([0x0000, 0x3F80, 0x4000] as [UInt16])
        case .complex64: data = bytes([0, 0, 1, 0, 2, 0] as [Float])
        case .complex128: data = bytes([0, 0, 1, 0, 2, 0] as [Double])
        case .int64: data = bytes([0, 1, 2] as [Int64])
        case .int32: data = bytes([0, 1, 2] as [Int32])
        case .int16: data = bytes([0, 1, 2] as [Int16])
        case .int8, .uint8: data = [0, 1, 2]
        case .bool: data = [0, 1, 1]
        case .uint16: data = bytes([0, 1, 2] as [UInt16])
        case .uint32: data = bytes([0, 1, 2] as [UInt32])
        case .uint64: data = bytes([0, 1, 2] as [UInt64])
        case .float8_e4m3fn: data = [0x00, 0x38, 0x40]
        case .float8_e5m2: data = [0x00, 0x3C, 0x40]
        }
        return try raw(data, dtype, [3])
    }

    static func ordered(_ pairs: [(StateKey, StateValue)], attributes: [(String, StateValue)] = []) -> StateValue {
        var dict = StateDict(isOrderedDict: true)
        for (key, value) in pairs { dict.items[key] = value }
        for (name, value) in attributes { dict.attributes[name] = value }
        return .dict(dict)
    }

    static func plain(_ pairs: [(StateKey, StateValue)]) -> StateValue {
        var dict = StateDict()
        for (key, value) in pairs { dict.items[key] = value }
        return .dict(dict)
    }

    static func values() -> StateValue {
        let ints: [Int64] = [
            0, 1, 255, 256, 65535, 65536, -1, -129, 2_147_483_647, -2_147_483_648, 2_147_483_648, .max, .min, 1 << 40,
            -(1 << 40),
        ]
        let floats: [Double] = [0.0, -0.0, 1.5, .infinity, -.infinity, .nan, Double(bitPattern: 0x0000_1268_8B70_E62B)]  // the subnormal 1e-310
        return plain([
            ("ints", .list(ints.map(StateValue.int))),
            ("floats", .list(floats.map(StateValue.float))),
            ("flags", .tuple([.bool(true), .bool(false), .none])),
            ("text", .string("héllo ✓ 𝄞")),
            ("long_text", .string(String(repeating: "x", count: 300))),
            ("bytes", .bytes([0x00, 0x01, 0xFE, 0xFF] + Array(" abc".utf8))),
            ("bytearray", .bytearray([0x00, 0xFF, 0x10])),
            ("empty_bytearray", .bytearray([])),
            ("set", .set([.int(1), .int(2), .int(3)])),
            ("complex", .complex(real: 1.5, imaginary: -2.0)),
            ("size", .size([2, 3, 4])),
            ("empty_size", .size([])),
            ("cpu", .device("cpu")),
            ("cuda", .device("cuda:1")),
            ("dtypes", .list([.dtype(.float32), .dtype(.bfloat16), .dtype(.uint16)])),
            (7, .string("int key")),
            (
                -3,
                plain([
                    (
                        "nested",
                        .list([
                            .list([]), .tuple([]), plain([]),
                            .list([.int(1), .list([.int(2), .tuple([3, 4, 5, 6].map(StateValue.int))])]),
                        ])
                    )
                ])
            ),
            (
                "tuples",
                .tuple([
                    .tuple([]), .tuple([.int(1)]), .tuple([1, 2].map(StateValue.int)),
                    .tuple([1, 2, 3].map(StateValue.int)), .tuple([1, 2, 3, 4].map(StateValue.int)),
                ])
            ),
            ("od", ordered([("b", .int(1)), ("a", .int(2))])),
        ])
    }

    static func views() throws -> StateValue {
        let base = try Tensor((0..<24).map(Float.init), shape: [4, 6])
        let flat = try Tensor((0..<10).map(Int64.init))
        func view(_ of: Tensor, _ shape: [Int], _ strides: [Int], _ offset: Int = 0) throws -> StateValue {
            .tensor(
                try Tensor(storage: of.storage, dtype: of.dtype, shape: shape, strides: strides, storageOffset: offset))
        }
        return plain([
            ("w", .tensor(base)), ("tied", .tensor(base)), ("row", try view(base, [6], [1], 6)),
            ("transposed", try view(base, [6, 4], [1, 6])), ("strided", try view(base, [4, 3], [6, 2])),
            ("window", try view(flat, [4], [1], 3)), ("flat", .tensor(flat)),
            ("in_list", .list([.tensor(base), try view(flat, [4], [3])])),
        ])
    }

    static func mixedDTypeStorage() throws -> StateValue {
        let f = try Tensor([0, 1, 2, 3] as [Float])
        return plain([
            ("f", .tensor(f)),
            ("i", .tensor(try Tensor(storage: f.storage, dtype: .int32, shape: [4]))),
            ("b", .tensor(try Tensor(storage: f.storage, dtype: .uint8, shape: [16]))),
            ("h", .tensor(try Tensor(storage: f.storage, dtype: .uint16, shape: [8]))),
        ])
    }

    static func parameters() throws -> StateValue {
        var weight = try Tensor((0..<6).map(Float.init), shape: [2, 3])
        weight.isParameter = true
        weight.requiresGrad = true
        var frozen = try Tensor([0, 1, 2] as [Double])
        frozen.isParameter = true
        var leaf = try Tensor([0, 1] as [Float])
        leaf.requiresGrad = true
        return plain([
            ("weight", .tensor(weight)), ("frozen", .tensor(frozen)), ("leaf", .tensor(leaf)),
            ("step", .tensor(try Tensor([5] as [Float], shape: []))),
            ("empty", .tensor(try Tensor(zeros: .float32, shape: [0]))),
            ("empty3d", .tensor(try Tensor(zeros: .float16, shape: [2, 0, 3]))),
        ])
    }

    static func modelLike() throws -> StateValue {
        let version = plain([("version", .int(1))])
        return ordered(
            [
                ("0.weight", .tensor(try Tensor((0..<6).map(Float.init), shape: [3, 2]))),
                ("0.bias", .tensor(try Tensor([0, 1, 2] as [Float]))),
                ("1.num_batches_tracked", .tensor(try Tensor([0] as [Int64], shape: []))),
            ],
            attributes: [("_metadata", ordered([("", version), ("0", version)]))])
    }

    static func batching() -> StateValue {
        plain([
            ("dict1000", plain((0..<1000).map { (StateKey.int(Int64($0)), StateValue.int(Int64($0))) })),
            ("dict1001", plain((0..<1001).map { (StateKey.int(Int64($0)), StateValue.int(-Int64($0))) })),
            ("list1001", .list((0..<1001).map { .int(Int64($0)) })),
            ("list2000", .list(Array(repeating: .float(0.5), count: 2000))),
            ("od1000", ordered((0..<1000).map { (StateKey.string(String($0)), StateValue.int(Int64($0))) })),
            ("od1001", ordered((0..<1001).map { (StateKey.string(String($0)), StateValue.int(Int64($0))) })),
            ("set1001", .set((0..<1001).map { .int(Int64($0)) })),
        ])
    }

    static func optimizer() throws -> StateValue {
        func entry(_ sum: Tensor) throws -> StateValue {
            plain([("step", .tensor(try Tensor([3] as [Float], shape: []))), ("sum", .tensor(sum))])
        }
        let group = plain([
            ("lr", .float(0.01)), ("lr_decay", .int(0)), ("weight_decay", .int(0)),
            ("initial_accumulator_value", .int(0)),
            ("eps", .float(1e-10)), ("foreach", .none), ("maximize", .bool(false)), ("differentiable", .bool(false)),
            ("fused", .none), ("params", .list([.int(0), .int(1)])),
            ("param_names", .list([.string("0.weight"), .string("0.bias")])),
        ])
        return plain([
            (
                "state",
                plain([
                    (0, try entry(try Tensor([Float](repeating: 0.25, count: 6), shape: [2, 3]))),
                    (1, try entry(try Tensor([Float](repeating: 0.5, count: 3)))),
                ])
            ),
            ("param_groups", .list([group])),
        ])
    }

    static func all() throws -> [(name: String, tree: StateValue)] {
        [
            ("values", values()),
            ("empty_bytes", plain([("empty", .bytes([]))])),
            (
                "tensors",
                plain(try DType.allCases.map { (StateKey.string($0.torchName), StateValue.tensor(try zeroOneTwo($0))) })
            ),
            ("views", try views()),
            ("mixed_dtype_storage", try mixedDTypeStorage()),
            // A float32 view of a 6-byte storage: no typed storage holds 6 bytes of floats.
            (
                "odd_storage",
                plain([
                    (
                        "t",
                        .tensor(try Tensor(storage: Storage(bytes: [0, 1, 2, 3, 4, 5]), dtype: .float32, shape: [1]))
                    )
                ])
            ),
            ("parameters", try parameters()),
            ("model_like", try modelLike()),
            ("batching", batching()),
            ("optimizer", try optimizer()),
        ]
    }
}

/// Keys `"0"`, `"1"`, ... in the order a writer meets the storages.
private func storageKeys(_ tree: StateValue) -> [ObjectIdentifier: String] {
    var keys: [ObjectIdentifier: String] = [:]
    for (index, storage) in tree.storagesInOrder.enumerated() { keys[ObjectIdentifier(storage)] = String(index) }
    return keys
}

/// Reads a pickle back with the given storages, by key.
private func reload(_ bytes: [UInt8], storages: [Storage]) throws -> StateValue {
    try Unpickler.load(bytes) { reference in
        guard let index = Int(reference.key), storages.indices.contains(index) else {
            throw CheckpointError(.missingEntry, "no storage \(reference.key)")
        }
        #expect(reference.byteCount == storages[index].byteCount, "key \(reference.key)")
        return storages[index]
    }
}

/// The tensors' storages, identified by first-met order, so sharing can be compared across trees.
private func sharingPattern(_ tree: StateValue) -> [Int] {
    var order: [ObjectIdentifier: Int] = [:]
    var pattern: [Int] = []
    tree.forEachTensor { _, tensor in
        let id = ObjectIdentifier(tensor.storage)
        if order[id] == nil { order[id] = order.count }
        pattern.append(order[id] ?? -1)
    }
    return pattern
}

@Suite("Pickler")
struct PicklerTests {
    @Test(arguments: try InteropCases.all().map(\.name))
    func roundTripsThroughTheUnpickler(name: String) throws {
        let tree = try #require(try InteropCases.all().first { $0.name == name }).tree
        let bytes = try Pickler.dump(tree, storageKeys: storageKeys(tree))
        let back = try reload(bytes, storages: tree.storagesInOrder)
        #expect(back == tree)
        #expect(sharingPattern(back) == sharingPattern(tree))
        #expect(try Pickler.dump(tree, storageKeys: storageKeys(tree)) == bytes, "same tree, same bytes")
    }

    @Test(arguments: PickleFixtures.names)
    func reloadsEveryFixtureEqual(name: String) throws {
        let recorder = StorageRecorder()
        let tree = try recorder.load(try PickleFixtures.pickle(name))
        let bytes = try Pickler.dump(tree, storageKeys: storageKeys(tree), keepObjects: true)
        let back = try reload(bytes, storages: tree.storagesInOrder)
        #expect(back == tree)
        #expect(sharingPattern(back) == sharingPattern(tree))
    }

    /// For these torch.save wrote nothing that depends on Python object identity, so the pickle
    /// must be torch's own data.pkl byte for byte. (torch_shared_and_views repeats one tensor
    /// object, which Python writes once and fetches from the memo; torch_python_values repeats a
    /// list object and equal strings that are distinct objects. A value tree knows neither.)
    @Test(arguments: [
        "torch_model_state_dict", "torch_adagrad_state_dict", "torch_all_dtypes", "torch_zero_dim_and_empty",
        "torch_parameters", "torch_batching", "object_namespace", "object_whole_model", "object_os_system",
    ])
    func writesTorchSaveBytesExactly(name: String) throws {
        let original = try PickleFixtures.pickle(name)
        let recorder = StorageRecorder()
        let tree = try recorder.load(original)
        var keys: [ObjectIdentifier: String] = [:]
        for (key, storage) in recorder.storages { keys[ObjectIdentifier(storage)] = key }
        let ours = try Pickler.dump(tree, storageKeys: keys, keepObjects: true)
        #expect(ours == original, "\(ours.count) bytes vs torch's \(original.count)")
    }

    @Test func opcodesForScalarsMatchPython() throws {
        // pickle.dumps(x, 2) for each value, from CPython 3.11.
        let cases: [(StateValue, [UInt8])] = [
            (.int(255), [0x4B, 0xFF]),
            (.int(256), [0x4D, 0x00, 0x01]),
            (.int(65536), [0x4A, 0x00, 0x00, 0x01, 0x00]),
            (.int(-1), [0x4A, 0xFF, 0xFF, 0xFF, 0xFF]),
            (.int(2_147_483_648), [0x8A, 0x05, 0x00, 0x00, 0x00, 0x80, 0x00]),
            (.int(-2_147_483_649), [0x8A, 0x05, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF]),
            (.int(.min), [0x8A, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x80]),
            (.float(1.5), [0x47, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0]),
            (.bool(true), [0x88]),
            (.none, [0x4E]),
            (.string("é"), [0x58, 2, 0, 0, 0, 0xC3, 0xA9, 0x71, 0x00]),
        ]
        for (value, body) in cases {
            #expect(try Pickler.dump(value, storageKeys: [:]) == [0x80, 0x02] + body + [0x2E], "\(value)")
        }
    }

    @Test func tensorWithoutAStorageKeyIsAnError() throws {
        let tree = StateValue.tensor(try Tensor([1] as [Float]))
        let error = try #require(throws: CheckpointError.self) { try Pickler.dump(tree, storageKeys: [:]) }
        #expect(error.code == .invalidArgument)
    }

    @Test func gradientsOnAnIntegerTensorAreAnError() throws {
        var tensor = try Tensor([1, 2] as [Int64])
        tensor.requiresGrad = true
        let tree = StateValue.tensor(tensor)
        let error = try #require(throws: CheckpointError.self) {
            try Pickler.dump(tree, storageKeys: storageKeys(tree))
        }
        #expect(error.code == .invalidArgument)
    }

    @Test func attributesOnAPlainDictAreAnError() throws {
        let tree = StateValue.dict(StateDict(["a": .int(1)], isOrderedDict: false, attributes: ["x": .int(2)]))
        let error = try #require(throws: CheckpointError.self) { try Pickler.dump(tree, storageKeys: [:]) }
        #expect(error.code == .invalidArgument)
    }

    @Test func aTreeWithAnObjectIsRefusedUnlessKeepObjects() throws {
        let tree: StateValue = [
            "model": ["w": .tensor(try Tensor([1] as [Float]))],
            "args": .object(PickledObject(module: "argparse", name: "Namespace", construction: .newObject, state: ["lr": 0.1])),
        ]
        let error = try #require(throws: CheckpointError.self) { try Pickler.dump(tree, storageKeys: storageKeys(tree)) }
        #expect(error.code == .forbiddenGlobal)
        #expect(error.path == "args")
        #expect(error.found == "argparse.Namespace")
        #expect(error.description.contains("keepObjects"), "\(error)")
        let bytes = try Pickler.dump(tree, storageKeys: storageKeys(tree), keepObjects: true)
        #expect(try reload(bytes, storages: tree.storagesInOrder) == tree)
    }

    /// Every construction, with every part, written and read back equal: NEWOBJ_EX for keywords.
    @Test func objectsRoundTripWithEveryPart() throws {
        let weight = try Tensor([1, 2, 3] as [Float])
        let tree: StateValue = .list([
            .object(PickledObject(module: "numpy", name: "ndarray")),
            .object(PickledObject(
                module: "collections", name: "defaultdict", construction: .reduce,
                args: [.object(PickledObject(module: "builtins", name: "list"))], dictItems: ["a": [1], 2: "b"])),
            .object(PickledObject(
                module: "mylib", name: "Bag", construction: .newObject, args: [1, "x"], kwargs: ["k": .tensor(weight)],
                state: .tuple([.none, ["slot": 3]]), listItems: [.tensor(weight), .none])),
            .object(PickledObject(module: "mylib", name: "Empty", construction: .newObject)),
        ])
        let bytes = try Pickler.dump(tree, storageKeys: storageKeys(tree), keepObjects: true)
        #expect(bytes.contains(0x92), "NEWOBJ_EX")
        let back = try reload(bytes, storages: tree.storagesInOrder)
        #expect(back == tree)
        #expect(sharingPattern(back) == sharingPattern(tree))
    }

    @Test func placeholdersThatCannotBeWrittenAreRefused() throws {
        let cases: [PickledObject] = [
            PickledObject(module: "", name: "f"),
            PickledObject(module: "a\nb", name: "f", construction: .reduce),
            PickledObject(module: "m", name: "f", args: [1]),
            PickledObject(module: "m", name: "f", construction: .reduce, kwargs: ["k": 1]),
        ]
        for object in cases {
            let error = try #require(throws: CheckpointError.self) {
                try Pickler.dump(.object(object), storageKeys: [:], keepObjects: true)
            }
            #expect(error.code == .invalidArgument, "\(object)")
        }
    }

    @Test func treesDeeperThanTheReaderAcceptsAreRefused() throws {
        var tree = StateValue.none
        for _ in 0..<(Unpickler.maximumNestingDepth + 1) { tree = .list([tree]) }
        #expect(throws: CheckpointError.self) { try Pickler.dump(tree, storageKeys: [:]) }
        var ok = StateValue.none
        for _ in 0..<Unpickler.maximumNestingDepth { ok = .list([ok]) }
        let bytes = try Pickler.dump(ok, storageKeys: [:])
        #expect(try reload(bytes, storages: []) == ok)
    }

    /// Writes every case with its storage records and has real torch load it (weights_only=True,
    /// and mmap=True) and compare it with the same object built in Python, and compare the pickle's
    /// structure with torch.save's (scripts/check_pickle_interop.py).
    @Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason))
    func torchLoadsWhatWeWrite() throws {
        let python = try #require(TorchVenv.python).path
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ckpt-pickle-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, tree) in try InteropCases.all() {
            let caseDirectory = directory.appendingPathComponent(name)
            let dataDirectory = caseDirectory.appendingPathComponent("data")
            try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
            try Data(try Pickler.dump(tree, storageKeys: storageKeys(tree)))
                .write(to: caseDirectory.appendingPathComponent("data.pkl"))
            for (index, storage) in tree.storagesInOrder.enumerated() {
                try storage.withUnsafeBytes {
                    try Data($0).write(to: dataDirectory.appendingPathComponent(String(index)))
                }
            }
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/check_pickle_interop.py")
        let result = try ProcessOutput(running: URL(fileURLWithPath: python), [script.path, directory.path])
        print(result.output)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("0 failures"), "\(result.output)")
    }
}
