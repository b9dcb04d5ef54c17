import Foundation
import OrderedCollections

/// The JSON description of a ckpt archive (`<name>/manifest.json`): the whole state tree and every
/// storage blob, so a reader needs only a zip library and a JSON parser. Specified in docs/FORMAT.md.
struct Manifest: Equatable {
    static let formatName = "ckpt"
    static let formatVersion = 1

    /// One storage blob, `data/<key>` in the archive.
    struct StorageRecord: Equatable {
        var key: String
        /// The zip entry name (`archive/data/0`).
        var record: String
        var dtype: DType
        var byteCount: Int
        var crc32: UInt32
        /// File offset of the blob's first byte (64-byte aligned).
        var dataOffset: Int
    }

    var storages: [StorageRecord]
    var root: StateValue
}

// MARK: - Encoding

extension Manifest {
    /// The manifest as deterministic JSON text.
    ///
    /// - Parameter storageIndex: The index in ``storages`` of each storage object in `root`.
    func encoded(storageIndex: [ObjectIdentifier: Int]) throws -> String {
        var json = JSONText()
        try json.object { object in
            object.field("format") { $0.string(Manifest.formatName) }
            object.field("format_version") { $0.int(Manifest.formatVersion) }
            object.field("byteorder") { $0.string("little") }
            object.field("storages") { json in
                json.array(storages) { json, storage in
                    json.object { field in
                        field.field("key") { $0.string(storage.key) }
                        field.field("record") { $0.string(storage.record) }
                        field.field("dtype") { $0.string(storage.dtype.rawValue) }
                        field.field("nbytes") { $0.int(storage.byteCount) }
                        field.field("crc32") { $0.int(storage.crc32) }
                        field.field("offset") { $0.int(storage.dataOffset) }
                    }
                }
            }
            try object.field("root") { json in try Manifest.encode(root, into: &json, storageIndex: storageIndex) }
        }
        return json.text + "\n"
    }

    private static func encode(_ value: StateValue, into json: inout JSONText, storageIndex: [ObjectIdentifier: Int]) throws {
        func items(_ values: [StateValue], _ json: inout JSONText) throws {
            try json.array(values) { json, item in try encode(item, into: &json, storageIndex: storageIndex) }
        }
        try json.object { node in
            node.field("type") { $0.string(value.pythonTypeName) }
            switch value {
            case .dict(let dict):
                try node.field("items") { json in
                    try json.array(dict.items.elements) { json, pair in
                        try json.array([0, 1]) { json, slot in
                            if slot == 0 {
                                switch pair.key {
                                case .string(let s): json.string(s)
                                case .int(let i): json.int(i)
                                }
                            } else {
                                try encode(pair.value, into: &json, storageIndex: storageIndex)
                            }
                        }
                    }
                }
                if dict.isOrderedDict {
                    try node.field("attributes") { json in
                        try json.array(dict.attributes.elements) { json, pair in
                            try json.array([0, 1]) { json, slot in
                                if slot == 0 { json.string(pair.key) } else {
                                    try encode(pair.value, into: &json, storageIndex: storageIndex)
                                }
                            }
                        }
                    }
                }
            case .list(let xs), .tuple(let xs), .set(let xs):
                try node.field("items") { try items(xs, &$0) }
            case .string(let s): node.field("value") { $0.string(s) }
            case .int(let i): node.field("value") { $0.int(i) }
            case .float(let d): node.field("value") { $0.double(d) }
            case .bool(let b): node.field("value") { $0.bool(b) }
            case .none: break
            case .bytes(let b), .bytearray(let b): node.field("base64") { $0.string(Data(b).base64EncodedString()) }
            case .tensor(let t):
                guard let index = storageIndex[ObjectIdentifier(t.storage)] else {
                    throw CheckpointError(.invalidArgument, "tensor storage missing from the storage table")
                }
                node.field("dtype") { $0.string(t.dtype.rawValue) }
                node.field("shape") { $0.array(t.shape) { $0.int($1) } }
                node.field("strides") { $0.array(t.strides) { $0.int($1) } }
                node.field("storage_offset") { $0.int(t.storageOffset) }
                node.field("storage") { $0.int(index) }
                node.field("requires_grad") { $0.bool(t.requiresGrad) }
            case .size(let dims): node.field("value") { $0.array(dims) { $0.int($1) } }
            case .device(let d): node.field("value") { $0.string(d) }
            case .dtype(let d): node.field("value") { $0.string(d.rawValue) }
            case .complex(let re, let im):
                node.field("real") { $0.double(re) }
                node.field("imag") { $0.double(im) }
            }
        }
    }
}

// MARK: - Decoding

extension Manifest {
    /// Parses and validates a manifest.
    ///
    /// - Parameters:
    ///   - bytes: The JSON.
    ///   - file: For error messages.
    ///   - entry: The manifest's zip entry name, for error messages.
    ///   - storage: Resolves a storage record to its bytes; called once per record, in order.
    /// - Returns: The manifest and the storage of each record.
    /// - Throws: ``CheckpointError`` naming the JSON path of the first problem.
    static func decode(
        _ bytes: [UInt8], file: String, entry: String, storage resolve: (StorageRecord) throws -> Storage
    ) throws -> (manifest: Manifest, storages: [Storage]) {
        let top: ManifestJSON
        do {
            top = try JSONDecoder().decode(ManifestJSON.self, from: Data(bytes))
        } catch let error as CheckpointError {
            throw error.inFile(file)
        } catch let DecodingError.dataCorrupted(context), let DecodingError.keyNotFound(_, context),
            let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context)
        {
            throw CheckpointError(
                .corrupt, "manifest: \(context.debugDescription)", file: file,
                path: "\(entry)#\(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch {
            throw CheckpointError(.corrupt, "manifest is not valid JSON", file: file, path: entry, found: "\(error)")
        }
        guard top.format == formatName else {
            throw CheckpointError(.corrupt, "not a ckpt manifest", file: file, path: entry, expected: formatName, found: top.format)
        }
        guard top.formatVersion == formatVersion else {
            throw CheckpointError(
                .unsupported, "manifest format version not supported", file: file, path: entry,
                expected: "\(formatVersion)", found: "\(top.formatVersion)")
        }
        guard top.byteorder == nil || top.byteorder == "little" else {
            throw CheckpointError(
                .unsupported, "big-endian checkpoints are not supported", file: file, path: entry,
                expected: "little", found: top.byteorder)
        }
        var records: [StorageRecord] = []
        var storages: [Storage] = []
        for (index, json) in top.storages.enumerated() {
            guard let dtype = DType(rawValue: json.dtype) else {
                throw CheckpointError(
                    .unknownDType, "manifest: unknown dtype", file: file, path: "\(entry)#storages.\(index).dtype",
                    found: json.dtype)
            }
            guard json.nbytes >= 0, json.offset >= 0 else {
                throw CheckpointError(
                    .corrupt, "manifest: negative size or offset", file: file, path: "\(entry)#storages.\(index)",
                    found: "nbytes \(json.nbytes), offset \(json.offset)")
            }
            let record = StorageRecord(
                key: json.key, record: json.record, dtype: dtype, byteCount: json.nbytes, crc32: json.crc32,
                dataOffset: json.offset)
            records.append(record)
            storages.append(try resolve(record))
        }
        var builder = TreeBuilder(file: file, entry: entry, storages: storages)
        let root = try builder.value(top.root, path: "root")
        return (Manifest(storages: records, root: root), storages)
    }
}

/// The manifest's top level as JSON.
private struct ManifestJSON: Decodable {
    var format: String
    var formatVersion: Int
    var byteorder: String?
    var storages: [StorageJSON]
    var root: NodeJSON

    enum CodingKeys: String, CodingKey {
        case format, byteorder, storages, root
        case formatVersion = "format_version"
    }

    struct StorageJSON: Decodable {
        var key: String
        var record: String
        var dtype: String
        var nbytes: Int
        var crc32: UInt32
        var offset: Int
    }
}

/// One tree node as JSON, before storages are attached.
private indirect enum NodeJSON: Decodable {
    case dict(ordered: Bool, items: [(StateKey, NodeJSON)], attributes: [(String, NodeJSON)])
    case sequence(type: String, [NodeJSON])
    case scalar(StateValue)
    case tensor(isParameter: Bool, dtype: String, shape: [Int], strides: [Int], offset: Int, storage: Int, requiresGrad: Bool)

    enum Key: String, CodingKey {
        case type, items, attributes, value, base64, dtype, shape, strides, storage, real, imag
        case storageOffset = "storage_offset"
        case requiresGrad = "requires_grad"
    }

    /// JSON has no NaN or infinity: the manifest writes them as strings.
    private static func float<K>(_ container: KeyedDecodingContainer<K>, _ key: K) throws -> Double {
        if let number = try? container.decode(Double.self, forKey: key) { return number }
        let text = try container.decode(String.self, forKey: key)
        switch text {
        case "nan": return .nan
        case "inf": return .infinity
        case "-inf": return -.infinity
        default:
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "not a float: \(text)")
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "dict", "OrderedDict":
            var items: [(StateKey, NodeJSON)] = []
            var list = try container.nestedUnkeyedContainer(forKey: .items)
            while !list.isAtEnd {
                var pair = try list.nestedUnkeyedContainer()
                let key: StateKey
                if let name = try? pair.decode(String.self) {
                    key = .string(name)
                } else {
                    key = .int(try pair.decode(Int64.self))
                }
                items.append((key, try pair.decode(NodeJSON.self)))
            }
            var attributes: [(String, NodeJSON)] = []
            if container.contains(.attributes) {
                var list = try container.nestedUnkeyedContainer(forKey: .attributes)
                while !list.isAtEnd {
                    var pair = try list.nestedUnkeyedContainer()
                    attributes.append((try pair.decode(String.self), try pair.decode(NodeJSON.self)))
                }
            }
            self = .dict(ordered: type == "OrderedDict", items: items, attributes: attributes)
        case "list", "tuple", "set":
            self = .sequence(type: type, try container.decode([NodeJSON].self, forKey: .items))
        case "str": self = .scalar(.string(try container.decode(String.self, forKey: .value)))
        case "int": self = .scalar(.int(try container.decode(Int64.self, forKey: .value)))
        case "float": self = .scalar(.float(try NodeJSON.float(container, .value)))
        case "bool": self = .scalar(.bool(try container.decode(Bool.self, forKey: .value)))
        case "NoneType": self = .scalar(.none)
        case "bytes", "bytearray":
            let text = try container.decode(String.self, forKey: .base64)
            guard let data = Data(base64Encoded: text) else {
                throw DecodingError.dataCorruptedError(forKey: .base64, in: container, debugDescription: "not base64")
            }
            self = .scalar(type == "bytes" ? .bytes([UInt8](data)) : .bytearray([UInt8](data)))
        case "Size": self = .scalar(.size(try container.decode([Int64].self, forKey: .value)))
        case "device": self = .scalar(.device(try container.decode(String.self, forKey: .value)))
        case "dtype":
            let name = try container.decode(String.self, forKey: .value)
            guard let dtype = DType(rawValue: name) else {
                throw DecodingError.dataCorruptedError(forKey: .value, in: container, debugDescription: "unknown dtype \(name)")
            }
            self = .scalar(.dtype(dtype))
        case "complex":
            self = .scalar(.complex(real: try NodeJSON.float(container, .real), imaginary: try NodeJSON.float(container, .imag)))
        case "Tensor", "Parameter":
            self = .tensor(
                isParameter: type == "Parameter", dtype: try container.decode(String.self, forKey: .dtype),
                shape: try container.decode([Int].self, forKey: .shape),
                strides: try container.decode([Int].self, forKey: .strides),
                offset: try container.decode(Int.self, forKey: .storageOffset),
                storage: try container.decode(Int.self, forKey: .storage),
                requiresGrad: try container.decode(Bool.self, forKey: .requiresGrad))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown node type \(type)")
        }
    }
}

/// Turns decoded nodes into a state tree, attaching storages and validating every tensor view.
private struct TreeBuilder {
    let file: String
    let entry: String
    let storages: [Storage]

    func fail(_ path: String, _ message: String, code: CheckpointError.Code = .corrupt, expected: String? = nil, found: String? = nil) -> CheckpointError {
        CheckpointError(code, "manifest: \(message)", file: file, path: "\(entry)#\(path)", expected: expected, found: found)
    }

    mutating func value(_ node: NodeJSON, path: String) throws -> StateValue {
        switch node {
        case .scalar(let value):
            return value
        case .sequence(let type, let nodes):
            let values = try nodes.enumerated().map { try value($1, path: "\(path)/\($0)") }
            return type == "list" ? .list(values) : type == "tuple" ? .tuple(values) : .set(values)
        case .dict(let ordered, let pairs, let attributePairs):
            var items = OrderedDictionary<StateKey, StateValue>()
            for (key, child) in pairs {
                guard items[key] == nil else { throw fail(path, "duplicate key", found: "\(key)") }
                items[key] = try value(child, path: "\(path)/\(key)")
            }
            var attributes = OrderedDictionary<String, StateValue>()
            for (name, child) in attributePairs {
                guard attributes[name] == nil else { throw fail(path, "duplicate attribute", found: name) }
                attributes[name] = try value(child, path: "\(path)@\(name)")
            }
            return .dict(StateDict(items, isOrderedDict: ordered, attributes: attributes))
        case let .tensor(isParameter, dtypeName, shape, strides, offset, index, requiresGrad):
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail(path, "unknown dtype", code: .unknownDType, found: dtypeName)
            }
            guard storages.indices.contains(index) else {
                throw fail(path, "storage index out of range", expected: "< \(storages.count)", found: "\(index)")
            }
            do {
                return .tensor(try Tensor(
                    storage: storages[index], dtype: dtype, shape: shape, strides: strides, storageOffset: offset,
                    requiresGrad: requiresGrad, isParameter: isParameter))
            } catch var error as CheckpointError {
                error.file = file
                error.path = "\(entry)#\(path)"
                throw error
            }
        }
    }
}
