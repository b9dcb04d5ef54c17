import Checkpoint

/// `inspect --json` written as it is walked, not built as one `OrderedJSON` value and then one
/// string: a tree or tensor list can be large (a million dimensions in shapes, at the caps), and
/// the built document cost about 90 bytes a number on top of the tree. The small parts (sharding,
/// optimizers, totals) still go through ``OrderedJSONEncoder``; the text is the same either way,
/// members in code-point order as every indented document has them.
extension InspectDocument {
    /// Objects and arrays a document nests at most: three a container of the tree (its NODE, its
    /// `items`, an ITEM), whose nesting the pickle reader holds to ``ResourceLimits/nestingDepthCeiling``,
    /// plus the document's own.
    static let maximumJSONDepth = 3 * ResourceLimits.nestingDepthCeiling + 16

    /// Writes the documents of `inspect --json`: one, or an array of them for several files.
    ///
    /// - Parameters:
    ///   - documents: The documents.
    ///   - asArray: Whether to write an array (several files were given).
    ///   - stream: Where the text goes.
    /// - Throws: What encoding a small part throws.
    static func write(_ documents: [InspectDocument], asArray: Bool, to stream: Terminal.Stream) throws {
        var json = JSONStream(to: stream, maximumDepth: maximumJSONDepth)
        if asArray { json.beginArray() }
        for document in documents {
            if asArray { json.element() }
            try document.write(to: &json)
        }
        if asArray { json.endArray() }
        json.end()
    }

    private static func encoded(_ value: some Encodable) throws -> OrderedJSON {
        try OrderedJSONEncoder(sortsKeys: true).encode(value)
    }

    private func write(to json: inout JSONStream) throws {
        json.beginObject()
        json.field("devices")
        json.value(try Self.encoded(devices))
        json.field("extension_format", extensionFormat)
        json.field("file", file)
        json.field("file_bytes", fileBytes)
        if let filter { json.field("filter", filter) }
        json.field("format", format)
        if let matches {
            json.field("matches")
            json.beginArray()
            for match in matches {
                json.element()
                json.beginObject()
                json.field("key_path")
                Self.write(keyPath: match.keyPath, to: &json)
                json.field("node")
                Self.write(match.node, to: &json)
                json.field("path", match.path)
                json.endObject()
            }
            json.endArray()
        }
        json.field("metadata")
        if let metadata { json.value(try Self.encoded(metadata)) } else { json.null() }
        if let nodesOmitted { json.field("nodes_omitted", nodesOmitted) }
        json.field("optimizers")
        json.value(try Self.encoded(optimizers))
        json.field("root")
        if let root { Self.write(root, to: &json) } else { json.null() }
        json.field("schema", schema)
        json.field("schema_version", schemaVersion)
        json.field("sharding")
        if let sharding { json.value(try Self.encoded(sharding)) } else { json.null() }
        json.field("tensors")
        json.beginArray()
        for entry in tensors {
            json.element()
            Self.write(entry.fields, path: entry.path, to: &json)
        }
        json.endArray()
        json.field("totals")
        json.value(try Self.encoded(totals))
        json.endObject()
    }

    private static func write(keyPath: [StateKeyJSON], to json: inout JSONStream) {
        json.beginArray()
        for key in keyPath {
            json.element()
            write(key, to: &json)
        }
        json.endArray()
    }

    private static func write(_ key: StateKeyJSON, to json: inout JSONStream) {
        switch key.key {
        case .string(let text): json.string(text)
        case .int(let value): json.integer(Int(value))
        }
    }

    private static func write(_ numbers: [Int], to json: inout JSONStream) {
        json.beginArray()
        for number in numbers {
            json.element()
            json.integer(number)
        }
        json.endArray()
    }

    /// A tensor's fields, with `key_path` and `path` when it is an entry of `tensors`.
    private static func write(_ fields: TensorFields, path: [StateKey]?, to json: inout JSONStream) {
        json.beginObject()
        json.field("bytes", fields.bytes)
        json.field("chunks", fields.chunks)
        json.field("device", fields.device)
        json.field("dtype", fields.dtype)
        if let path {
            json.field("key_path")
            write(keyPath: StateKeyJSON.path(path), to: &json)
            json.field("path", path.pathString)
        }
        json.field("requires_grad")
        json.bool(fields.requiresGrad)
        json.field("shape")
        write(fields.shape, to: &json)
        json.field("shard", fields.shard)
        json.field("storage", fields.storage)
        json.field("storage_bytes", fields.storageBytes)
        json.field("storage_offset", fields.storageOffset)
        json.field("strides")
        write(fields.strides, to: &json)
        json.field("type", fields.type)
        json.endObject()
    }

    private static func write(_ value: PlainValue, to json: inout JSONStream) {
        switch value {
        case .string(let text): json.string(text)
        case .int(let integer): json.integer(Int(integer))
        case .float(let number): json.number(number)
        case .bool(let flag): json.bool(flag)
        case .null: json.null()
        case .array(let elements):
            json.beginArray()
            for element in elements {
                json.element()
                write(element, to: &json)
            }
            json.endArray()
        }
    }

    private static func write(_ items: [Node.Item], to json: inout JSONStream) {
        json.beginArray()
        for item in items {
            json.element()
            json.beginObject()
            json.field("key")
            write(item.key, to: &json)
            json.field("value")
            write(item.value, to: &json)
            json.endObject()
        }
        json.endArray()
    }

    /// A NODE, members in code-point order: attributes, construction, imag, items, items_omitted,
    /// length, real, type, value.
    private static func write(_ node: Node, to json: inout JSONStream) {
        if case .tensor(let fields) = node.content { return write(fields, path: nil, to: &json) }
        json.beginObject()
        var itemsOmitted = node.cut > 0 ? node.cut : nil
        switch node.content {
        case .dict(let items, let attributes):
            if let attributes {
                json.field("attributes")
                json.beginArray()
                for attribute in attributes {
                    json.element()
                    json.beginObject()
                    json.field("name", attribute.name)
                    json.field("value")
                    write(attribute.value, to: &json)
                    json.endObject()
                }
                json.endArray()
            }
            json.field("items")
            write(items, to: &json)
        case .sequence(let nodes):
            json.field("items")
            json.beginArray()
            for child in nodes {
                json.element()
                write(child, to: &json)
            }
            json.endArray()
        case .omitted(let count): itemsOmitted = count
        case .object(let construction, let parts, let omitted):
            json.field("construction", construction)
            if let parts {
                json.field("items")
                write(parts, to: &json)
            } else {
                itemsOmitted = omitted
            }
        case .complex(let real, let imaginary):
            json.field("imag")
            json.number(imaginary)
            json.field("real")
            json.number(real)
        case .tensor, .value, .none, .length: break
        }
        if let itemsOmitted { json.field("items_omitted", itemsOmitted) }
        if case .length(let count) = node.content { json.field("length", count) }
        json.field("type", node.type)
        if case .value(let value) = node.content {
            json.field("value")
            write(value, to: &json)
        }
        json.endObject()
    }
}
