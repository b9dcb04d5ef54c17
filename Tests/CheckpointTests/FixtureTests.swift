import Checkpoint
import Foundation
import Testing

// Files written by real PyTorch (scripts/make_fixtures.py) must load into exactly the tree their
// sidecar describes. The sidecars come from the Python objects that were saved, so these tests
// compare ckpt's reader against torch, never against itself.

/// The fixtures directory and its sidecars (schema documented in scripts/make_fixtures.py).
private enum FixtureCatalog {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pt", isDirectory: true)

    /// Every fixture the generator is meant to write; a missing one is a failure, not a skip.
    static let required = [
        "adagrad_groups", "adagrad_named", "model_tied", "dtypes", "shapes", "nested",
        "protocol2", "protocol4", "protocol5",
        "archive_deflated", "archive_renamed", "archive_minimal", "legacy_format",
        // scripts/make_legacy_fixtures.py
        "legacy_views_shared", "legacy_dtypes", "legacy_training", "legacy_protocol4", "legacy_untyped_dtypes",
        "legacy_storage_views", "legacy_bad_truncated", "legacy_bad_count_past_end", "legacy_bad_count_mismatch",
        "legacy_bad_duplicate_key", "legacy_bad_missing_key", "legacy_bad_unknown_key", "legacy_bad_protocol_version",
        "legacy_bad_magic_only", "legacy_bad_view_past_root", "legacy_bad_tensor_past_view",
        // scripts/make_foreign_fixtures.py: weight files shipped inside pip packages
        "foreign_lpips_v0_0_alex", "foreign_lpips_v0_1_squeeze", "foreign_facenet_pnet",
    ]

    /// The fixtures present on disk, named by their sidecars.
    static var names: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".expected.json") }
            .map { String($0.dropLast(".expected.json".count)) }
            .sorted()
    }

    static func checkpoint(_ name: String) -> URL { directory.appendingPathComponent("\(name).pt") }

    static func sidecar(_ name: String) throws -> Sidecar {
        let data = try Data(contentsOf: directory.appendingPathComponent("\(name).expected.json"))
        return try JSONDecoder().decode(Sidecar.self, from: data)
    }
}

/// One `<name>.expected.json`.
private struct Sidecar: Decodable {
    var schemaVersion: Int
    var fixture: String
    var expect: String
    var rejectCodes: [String]?
    var root: ExpectedNode?

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", fixture, expect, rejectCodes = "reject_codes", root
    }
}

/// A float as the sidecar writes it: `float.hex()` for people, the bit pattern for comparison.
private struct ExpectedFloat: Decodable {
    var value: String
    var bits: String

    var bitPattern: UInt64? { UInt64(bits, radix: 16) }
}

private struct ExpectedTensor: Decodable {
    var dtype: String
    var shape: [Int]
    var stride: [Int]
    var storageOffset: Int
    var requiresGrad: Bool
    var storage: Int
    var storageNbytes: Int
    var hex: String

    enum CodingKeys: String, CodingKey {
        case dtype, shape, stride, storageOffset = "storage_offset", requiresGrad = "requires_grad", storage
        case storageNbytes = "storage_nbytes", hex
    }
}

/// A dict key: Python `str` or `int` (the int as a decimal string).
private struct ExpectedKey: Decodable {
    var type: String
    var value: String
}

/// A sidecar tree node, decoded by its Python type name.
private indirect enum ExpectedNode: Decodable {
    case dict(typeName: String, items: [(ExpectedKey, ExpectedNode)], attributes: [(String, ExpectedNode)])
    case sequence(typeName: String, items: [ExpectedNode])
    case string(String)
    case int(String)
    case float(ExpectedFloat)
    case bool(Bool)
    case none
    case bytes(typeName: String, hex: String)
    case size([Int64])
    case device(String)
    case dtype(String)
    case complex(real: ExpectedFloat, imag: ExpectedFloat)
    case tensor(typeName: String, ExpectedTensor)

    private enum Field: String, CodingKey {
        case type, items, attributes, value, hex, real, imag
    }

    private struct Item: Decodable {
        var key: ExpectedKey
        var value: ExpectedNode
    }

    private struct Attribute: Decodable {
        var name: String
        var value: ExpectedNode
    }

    init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: Field.self)
        let typeName = try fields.decode(String.self, forKey: .type)
        switch typeName {
        case "dict", "OrderedDict":
            let items = try fields.decode([Item].self, forKey: .items).map { ($0.key, $0.value) }
            let attributes = try fields.decodeIfPresent([Attribute].self, forKey: .attributes) ?? []
            self = .dict(typeName: typeName, items: items, attributes: attributes.map { ($0.name, $0.value) })
        case "list", "tuple", "set":
            self = .sequence(typeName: typeName, items: try fields.decode([ExpectedNode].self, forKey: .items))
        case "str": self = .string(try fields.decode(String.self, forKey: .value))
        case "int": self = .int(try fields.decode(String.self, forKey: .value))
        case "float": self = .float(try ExpectedFloat(from: decoder))
        case "bool": self = .bool(try fields.decode(Bool.self, forKey: .value))
        case "NoneType": self = .none
        case "bytes", "bytearray": self = .bytes(typeName: typeName, hex: try fields.decode(String.self, forKey: .hex))
        case "Size": self = .size(try fields.decode([Int64].self, forKey: .value))
        case "device": self = .device(try fields.decode(String.self, forKey: .value))
        case "dtype": self = .dtype(try fields.decode(String.self, forKey: .value))
        case "complex":
            self = .complex(
                real: try fields.decode(ExpectedFloat.self, forKey: .real),
                imag: try fields.decode(ExpectedFloat.self, forKey: .imag))
        case "Tensor", "Parameter": self = .tensor(typeName: typeName, try ExpectedTensor(from: decoder))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: fields, debugDescription: "unknown sidecar node type \(typeName)")
        }
    }

    var typeName: String {
        switch self {
        case .dict(let name, _, _), .sequence(let name, _), .bytes(let name, _), .tensor(let name, _): return name
        case .string: return "str"
        case .int: return "int"
        case .float: return "float"
        case .bool: return "bool"
        case .none: return "NoneType"
        case .size: return "Size"
        case .device: return "device"
        case .dtype: return "dtype"
        case .complex: return "complex"
        }
    }
}

/// Walks a loaded tree beside its sidecar and lists every difference with its key path.
private struct TreeComparison {
    private(set) var mismatches: [String] = []
    /// Sidecar storage id → the loaded `Storage` first seen with it, and the reverse, so that
    /// sharing must match in both directions.
    private var storageForId: [Int: ObjectIdentifier] = [:]
    private var idForStorage: [ObjectIdentifier: Int] = [:]

    private mutating func fail(_ path: String, _ message: String) {
        mismatches.append("\(path.isEmpty ? "<root>" : path): \(message)")
    }

    mutating func compare(_ actual: StateValue, _ expected: ExpectedNode, path: String = "") {
        guard actual.pythonTypeName == expected.typeName else {
            fail(path, "type \(actual.pythonTypeName), expected \(expected.typeName)")
            return
        }
        switch (actual, expected) {
        case let (.dict(dict), .dict(_, items, attributes)):
            compareDict(dict, items: items, attributes: attributes, path: path)
        case let (.list(values), .sequence(_, items)), let (.tuple(values), .sequence(_, items)),
            let (.set(values), .sequence(_, items)):
            guard values.count == items.count else {
                fail(path, "\(values.count) items, expected \(items.count)")
                return
            }
            for (index, (value, item)) in zip(values, items).enumerated() {
                compare(value, item, path: join(path, String(index)))
            }
        case let (.string(value), .string(text)):
            if value != text { fail(path, "string \(value.debugDescription), expected \(text.debugDescription)") }
        case let (.int(value), .int(text)):
            if String(value) != text { fail(path, "int \(value), expected \(text)") }
        case let (.float(value), .float(float)):
            compareFloat(value, float, path: path)
        case let (.bool(value), .bool(flag)):
            if value != flag { fail(path, "bool \(value), expected \(flag)") }
        case (.none, .none):
            break
        case let (.bytes(value), .bytes(_, hex)), let (.bytearray(value), .bytes(_, hex)):
            if hexString(value) != hex { fail(path, "bytes \(hexString(value)), expected \(hex)") }
        case let (.size(value), .size(dims)):
            if value != dims { fail(path, "Size \(value), expected \(dims)") }
        case let (.device(value), .device(name)):
            if value != name { fail(path, "device \(value), expected \(name)") }
        case let (.dtype(value), .dtype(name)):
            if value.torchName != name { fail(path, "dtype \(value.torchName), expected \(name)") }
        case let (.complex(real, imaginary), .complex(expectedReal, expectedImaginary)):
            compareFloat(real, expectedReal, path: join(path, "real"))
            compareFloat(imaginary, expectedImaginary, path: join(path, "imag"))
        case let (.tensor(tensor), .tensor(_, spec)):
            compareTensor(tensor, spec, path: path)
        default:
            fail(path, "\(actual.pythonTypeName) cannot be compared with sidecar \(expected.typeName)")
        }
    }

    private mutating func compareDict(
        _ dict: StateDict, items: [(ExpectedKey, ExpectedNode)], attributes: [(String, ExpectedNode)], path: String
    ) {
        let actualKeys = dict.items.keys.map(describe)
        let expectedKeys = items.map { "\($0.0.type):\($0.0.value)" }
        guard actualKeys == expectedKeys else {
            let index = zip(actualKeys, expectedKeys).enumerated().first { $1.0 != $1.1 }?.offset
                ?? min(actualKeys.count, expectedKeys.count)
            let found = index < actualKeys.count ? actualKeys[index] : "nothing"
            let wanted = index < expectedKeys.count ? expectedKeys[index] : "nothing"
            fail(path, "key #\(index) is \(found), expected \(wanted) (\(actualKeys.count) keys, expected \(expectedKeys.count))")
            return
        }
        for ((_, value), (key, node)) in zip(dict.items, items) {
            compare(value, node, path: join(path, key.value))
        }
        let actualNames = Array(dict.attributes.keys)
        let expectedNames = attributes.map(\.0)
        guard actualNames == expectedNames else {
            fail(path, "attributes \(actualNames), expected \(expectedNames)")
            return
        }
        for ((name, value), (_, node)) in zip(dict.attributes, attributes) {
            compare(value, node, path: join(path, "@" + name))
        }
    }

    private mutating func compareFloat(_ value: Double, _ expected: ExpectedFloat, path: String) {
        guard let bits = expected.bitPattern else {
            fail(path, "sidecar float bits \(expected.bits) are not hex")
            return
        }
        if value.bitPattern != bits {
            fail(path, "float \(value) (bits \(String(value.bitPattern, radix: 16))), expected \(expected.value) (bits \(expected.bits))")
        }
    }

    private mutating func compareTensor(_ tensor: Tensor, _ spec: ExpectedTensor, path: String) {
        if tensor.dtype.torchName != spec.dtype { fail(path, "dtype \(tensor.dtype.torchName), expected \(spec.dtype)") }
        if tensor.shape != spec.shape { fail(path, "shape \(tensor.shape), expected \(spec.shape)") }
        if tensor.strides != spec.stride { fail(path, "strides \(tensor.strides), expected \(spec.stride)") }
        if tensor.storageOffset != spec.storageOffset {
            fail(path, "storage offset \(tensor.storageOffset), expected \(spec.storageOffset)")
        }
        if tensor.requiresGrad != spec.requiresGrad {
            fail(path, "requires_grad \(tensor.requiresGrad), expected \(spec.requiresGrad)")
        }
        if tensor.storage.byteCount != spec.storageNbytes {
            fail(path, "storage of \(tensor.storage.byteCount) bytes, expected \(spec.storageNbytes)")
        }
        let identity = ObjectIdentifier(tensor.storage)
        switch (storageForId[spec.storage], idForStorage[identity]) {
        case (nil, nil):
            storageForId[spec.storage] = identity
            idForStorage[identity] = spec.storage
        case (identity?, spec.storage?):
            break
        case (_, let seenId?) where seenId != spec.storage:
            fail(path, "shares a Storage with sidecar storage \(seenId), expected its own storage \(spec.storage)")
        default:
            fail(path, "does not share the Storage of the earlier tensors with sidecar storage \(spec.storage)")
        }
        do {
            let bytes = try hexString(tensor.contiguousBytes())
            if bytes != spec.hex { fail(path, "elements \(bytes), expected \(spec.hex)") }
        } catch {
            fail(path, "reading elements threw \(error)")
        }
    }

    private func describe(_ key: StateKey) -> String {
        switch key {
        case .string(let text): return "str:\(text)"
        case .int(let value): return "int:\(value)"
        }
    }

    private func join(_ path: String, _ component: String) -> String {
        path.isEmpty ? component : "\(path)/\(component)"
    }
}

private func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text = [UInt8]()
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0xF)])
    }
    return String(decoding: text, as: UTF8.self)
}

@Suite("Fixtures written by PyTorch")
struct FixtureTests {
    @Test func everyRequiredFixtureIsPresent() {
        let present = Set(FixtureCatalog.names)
        let missing = FixtureCatalog.required.filter { !present.contains($0) }
        #expect(missing.isEmpty, "missing fixtures (run `make fixtures`): \(missing)")
        for name in present {
            #expect(
                FileManager.default.fileExists(atPath: FixtureCatalog.checkpoint(name).path),
                "\(name).expected.json has no \(name).pt")
        }
    }

    @Test(arguments: FixtureCatalog.names, [true, false])
    func fixtureLoadsAsTorchSavedIt(name: String, verifyChecksums: Bool) throws {
        let sidecar = try FixtureCatalog.sidecar(name)
        try #require(sidecar.schemaVersion == 1, "sidecar schema \(sidecar.schemaVersion) is not the one this test reads")
        let url = FixtureCatalog.checkpoint(name)
        let options = LoadOptions(verifyChecksums: verifyChecksums)

        if sidecar.expect == "reject" {
            let codes = sidecar.rejectCodes ?? []
            do {
                let value = try StateValue(contentsOf: url, options: options)
                Issue.record("\(name) loaded (as \(value.pythonTypeName)) but must be rejected with one of \(codes)")
            } catch let error as CheckpointError {
                #expect(codes.contains(error.code.rawValue), "\(name): rejected with \(error)")
                #expect(error.file != nil, "\(name): the error does not name the file: \(error)")
            }
            return
        }

        let root = try #require(sidecar.root, "\(name): sidecar has no root")
        let loaded = try StateValue(contentsOf: url, options: options)
        expectMatches(loaded, root, "\(name).pt")
    }

    /// ckpt's own writer and reader keep everything torch put in the file: what comes back from a
    /// save still matches the sidecar, sharing and views included.
    @Test(arguments: FixtureCatalog.names, [CheckpointFormat.ckpt, .pt])
    func fixtureSurvivesSaveAndLoad(name: String, format: CheckpointFormat) throws {
        let sidecar = try FixtureCatalog.sidecar(name)
        guard sidecar.expect == "load" else { return }  // nothing to save from a file that must be rejected
        let root = try #require(sidecar.root, "\(name): sidecar has no root")
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ckpt-fixture-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("\(name).\(format.rawValue)")

        try StateValue(contentsOf: FixtureCatalog.checkpoint(name)).write(to: copy, format: format)
        expectMatches(try StateValue(contentsOf: copy), root, "\(name) saved as .\(format.rawValue)")
    }

    private func expectMatches(_ loaded: StateValue, _ root: ExpectedNode, _ what: String) {
        var comparison = TreeComparison()
        comparison.compare(loaded, root)
        if !comparison.mismatches.isEmpty {
            let listed = comparison.mismatches.prefix(25).joined(separator: "\n")
            Issue.record("\(what): \(comparison.mismatches.count) differences from torch's tree:\n\(listed)")
        }
    }
}
