import OrderedCollections

/// Turns the pickle machine's result (containers by index, possibly shared) into a ``StateValue``
/// tree, enforcing the nesting and size limits and rejecting what the tree cannot express.
///
/// It walks with an explicit stack, not recursion, so converting the deepest allowed tree needs
/// no more thread stack than a shallow one. A container referenced from several places is
/// converted once and its value reused (arrays are copy-on-write, so that costs no memory), but
/// it counts once per place toward ``ResourceLimits/maximumTreeValues``, since whoever walks the tree
/// will visit it that often.
struct PickleConverter {
    let nodes: [PickleNode]
    let file: String?

    private struct Converted {
        var value: StateValue
        /// Values in the subtree, counting shared containers once per reference (saturating).
        var count: Int
        /// Containers on the longest path down from here, this one included.
        var height: Int
    }

    /// A container being converted: its children are visited in order (elements, or items then
    /// attributes), each converted value collected here until the last one is in.
    private struct Frame {
        let index: Int
        let node: PickleNode
        /// Containers from the root down to this one, this one included.
        let depth: Int
        /// An object's parts that are present, by part name (see ``PickledObject/parts``).
        let parts: [(key: String, value: PickleObject)]
        var position = 0
        var elements: [StateValue] = []
        var items = OrderedDictionary<StateKey, StateValue>()
        var attributes = OrderedMap<String, StateValue>()
        /// An object's converted parts.
        var partValues: [String: StateValue] = [:]
        var count = 1
        var height = 0

        init(index: Int, node: PickleNode, depth: Int, parts: [(key: String, value: PickleObject)] = []) {
            self.index = index
            self.node = node
            self.depth = depth
            self.parts = parts
        }

        /// The key of child `position` in a key path.
        func key(at position: Int) -> StateKey {
            switch node.kind {
            case .list, .tuple, .set: return .int(Int64(position))
            case .dict:
                if position < node.items.count { return node.items.keys[position] }
                return .string(node.attributes.keys[position - node.items.count])
            case .object: return .string(parts[position].key)
            }
        }

        /// The next child to convert, or nil when all are done.
        mutating func nextChild() -> PickleObject? {
            let child: PickleObject
            switch node.kind {
            case .list, .tuple, .set:
                guard position < node.elements.count else { return nil }
                child = node.elements[position]
            case .dict:
                if position < node.items.count {
                    child = node.items.values[position]
                } else if position - node.items.count < node.attributes.count {
                    child = node.attributes.values[position - node.items.count]
                } else {
                    return nil
                }
            case .object:
                guard position < parts.count else { return nil }
                child = parts[position].value
            }
            position += 1
            return child
        }

        /// Takes the converted value of the child `nextChild` returned last.
        mutating func accept(_ child: Converted) {
            let (sum, overflow) = count.addingReportingOverflow(child.count)
            count = overflow ? Int.max : sum
            height = max(height, child.height)
            switch node.kind {
            case .list, .tuple, .set:
                elements.append(child.value)
            case .dict:
                switch key(at: position - 1) {
                case .string(let name) where position - 1 >= node.items.count: attributes[name] = child.value
                case let key: items[key] = child.value
                }
            case .object:
                partValues[parts[position - 1].key] = child.value
            }
        }

        func finish() throws -> Converted {
            let value: StateValue
            switch node.kind {
            case .list: value = .list(elements)
            case .tuple: value = .tuple(elements)
            case .set: value = .set(elements)
            case .dict(let ordered): value = .dict(StateDict(items, isOrderedDict: ordered, attributes: attributes))
            case .object: value = .object(try finishObject())
            }
            return Converted(value: value, count: count, height: height + 1)
        }

        /// The placeholder from the converted parts (each converted as the container it is).
        private func finishObject() throws -> PickledObject {
            guard let header = node.object else { throw PartError.missing }
            var object = PickledObject(module: header.module, name: header.name, construction: header.construction)
            if case .tuple(let args)? = partValues["args"] { object.args = args }
            if case .dict(let kwargs)? = partValues["kwargs"] {
                for (key, value) in kwargs.items {
                    guard case .string(let name) = key else { throw PartError.keywordName(key) }
                    object.kwargs[name] = value
                }
            }
            if case .list(let items)? = partValues["listitems"] { object.listItems = items }
            if case .dict(let items)? = partValues["dictitems"] { object.dictItems = OrderedMap(items.items) }
            object.state = partValues["state"]
            return object
        }
    }

    /// A problem with an object's parts, reported with the key path by ``convert(_:)``.
    private enum PartError: Error {
        case missing
        case keywordName(StateKey)
    }

    private var done: [Int: Converted] = [:]
    private var inProgress: Set<Int> = []

    /// The data globals to turn from placeholders into values (see ``DataGlobalCodec``).
    let dataGlobals: DataGlobals
    /// The nesting and value caps.
    let limits: ResourceLimits

    init(nodes: [PickleNode], file: String?, dataGlobals: DataGlobals = .none, limits: ResourceLimits = .default) {
        self.nodes = nodes
        self.file = file
        self.dataGlobals = dataGlobals
        self.limits = limits
    }

    /// Converts the root object.
    mutating func convert(_ root: PickleObject) throws -> StateValue {
        var frames: [Frame] = []
        if let leaf = try convertLeaf(root, frames: frames) { return leaf.value }
        guard case .node(let rootIndex) = root else { return .none }
        try enter(rootIndex, frames: &frames)
        while !frames.isEmpty {
            let top = frames.count - 1
            if let child = frames[top].nextChild() {
                if let leaf = try convertLeaf(child, frames: frames) {
                    try accept(leaf, into: &frames)
                } else if case .node(let index) = child {
                    if let cached = done[index] {
                        try checkDepth(frames[top].depth + cached.height, frames: frames)
                        try accept(cached, into: &frames)
                    } else {
                        try enter(index, frames: &frames)
                    }
                }
                continue
            }
            let frame = frames.removeLast()
            var converted: Converted
            do {
                converted = try frame.finish()
            } catch PartError.keywordName(let key) {
                throw error(.malformedPickle, "keyword argument names must be str", frames: frames, found: "int \(key)")
            } catch {
                throw self.error(.malformedPickle, "an object without its parts", frames: frames)
            }
            if case .object(let object) = converted.value, !dataGlobals.isEmpty {
                do {
                    if let value = try DataGlobalCodec.decode(object, allowing: dataGlobals) { converted.value = value }
                } catch {
                    throw self.error(error.code, error.message, frames: frames, found: error.found)
                }
            }
            inProgress.remove(frame.index)
            guard converted.count <= limits.maximumTreeValues else {
                let exceeded = limits.exceeded(
                    .maximumTreeValues, found: "more than \(limits.maximumTreeValues)",
                    what: "values in the tree (a shared container counts once per place)", file: file)
                throw error(.limitExceeded, exceeded.message, frames: frames, expected: exceeded.expected, found: exceeded.found)
            }
            done[frame.index] = converted
            guard !frames.isEmpty else { return converted.value }
            try accept(converted, into: &frames)
        }
        return .none
    }

    /// Starts converting a container, after the checks that need only the container itself.
    private mutating func enter(_ index: Int, frames: inout [Frame]) throws {
        guard !inProgress.contains(index) else {
            throw error(
                .unsupported, "a container that contains itself cannot be stored in a state tree", frames: frames)
        }
        let depth = (frames.last?.depth ?? 0) + 1
        try checkDepth(depth, frames: frames)
        let node = nodes[index]
        if let keyType = node.invalidKeyType {
            throw error(.unsupported, "dict keys must be str or int", frames: frames, found: "a key of type \(keyType)")
        }
        inProgress.insert(index)
        frames.append(Frame(index: index, node: node, depth: depth, parts: objectParts(node)))
    }

    /// The parts of an object node that are present and not empty, in pickling order.
    private func objectParts(_ node: PickleNode) -> [(key: String, value: PickleObject)] {
        guard node.kind == .object, let header = node.object else { return [] }
        var keywords: Int?
        if case .node(let index)? = header.keywords { keywords = index }
        var parts: [(key: String, value: PickleObject)] = []
        for (name, index) in [
            ("args", header.arguments), ("kwargs", keywords), ("listitems", header.listItems), ("dictitems", header.dictItems),
        ] {
            // An empty part is left out, as PickledObject.parts leaves it out.
            guard let index, !nodes[index].elements.isEmpty || !nodes[index].items.isEmpty || nodes[index].invalidKeyType != nil
            else { continue }
            parts.append((name, .node(index)))
        }
        if let state = header.state { parts.append(("state", state)) }
        return parts
    }

    /// A value that is not a container, or nil for a container.
    private func convertLeaf(_ object: PickleObject, frames: [Frame]) throws -> Converted? {
        switch object {
        case .none: return Converted(value: .none, count: 1, height: 0)
        case .bool(let flag): return Converted(value: .bool(flag), count: 1, height: 0)
        case .int(let number): return Converted(value: .int(number), count: 1, height: 0)
        case .float(let number): return Converted(value: .float(number), count: 1, height: 0)
        case .string(let text): return Converted(value: .string(text), count: 1, height: 0)
        case .value(let value):
            // A shape counts once per dimension: one shape tuple shared through the memo by
            // thousands of tensors would otherwise print as millions of numbers for one place each.
            let dimensions: Int
            switch value {
            case .tensor(let tensor): dimensions = tensor.shape.count
            case .size(let sizes): dimensions = sizes.count
            default: dimensions = 0
            }
            return Converted(value: value, count: 1 + dimensions, height: 0)
        case .global(.dtype(let dtype)):
            return Converted(value: .dtype(dtype), count: 1, height: 0)
        case .global(let global):
            // A class or function named but not called: a placeholder, under its canonical name
            // for an allow-listed one (whose name has no dots), as spelled for any other.
            let object: PickledObject
            if case .foreign(let module, let name) = global {
                object = PickledObject(module: module, name: name)
            } else {
                let qualified = global.qualifiedName
                let dot = qualified.lastIndex(of: ".") ?? qualified.startIndex
                object = PickledObject(
                    module: String(qualified[..<dot]), name: String(qualified[qualified.index(after: dot)...]))
            }
            return Converted(value: .object(object), count: 1, height: 0)
        case .storage:
            throw error(
                .unsupported, "a bare storage (not inside a tensor) cannot be stored in a state tree", frames: frames)
        case .node:
            return nil
        }
    }

    /// Hands a converted child to the innermost open container. The frames are mutated in place
    /// (not through a copy, which would copy the container's items for every child).
    private func accept(_ child: Converted, into frames: inout [Frame]) throws {
        let top = frames.count - 1
        if frames[top].node.kind == .set {
            // Python would have refused to put a mutable container in a set.
            switch child.value {
            case .list, .dict, .set, .bytearray:
                throw error(.malformedPickle, "a set cannot hold a \(child.value.pythonTypeName)", frames: frames)
            default:
                break
            }
        }
        frames[top].accept(child)
    }

    private func checkDepth(_ depth: Int, frames: [Frame]) throws {
        guard depth <= limits.maximumNestingDepth else {
            let exceeded = limits.exceeded(
                .maximumNestingDepth, found: "\(depth) levels", what: "levels of nested containers", file: file)
            throw error(.limitExceeded, exceeded.message, frames: frames, expected: exceeded.expected, found: exceeded.found)
        }
    }

    /// An error at the child each open container is visiting: the key path from the root.
    private func error(
        _ code: CheckpointError.Code, _ message: String, frames: [Frame], expected: String? = nil, found: String? = nil
    ) -> CheckpointError {
        let path = frames.filter { $0.position > 0 }.map { $0.key(at: $0.position - 1) }
        return CheckpointError(
            code, message, file: file, path: path.isEmpty ? "(root)" : path.pathString, expected: expected, found: found)
    }
}
