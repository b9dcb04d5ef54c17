import OrderedCollections

/// Turns the pickle machine's result (containers by index, possibly shared) into a ``StateValue``
/// tree, enforcing the nesting and size limits and rejecting what the tree cannot express.
///
/// A container referenced from several places is converted once and its value reused (arrays
/// are copy-on-write, so that costs no memory), but it counts once per place toward
/// ``Unpickler/maximumValueCount``, since whoever walks the tree will visit it that often.
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

    private var done: [Int: Converted] = [:]
    private var inProgress: Set<Int> = []

    init(nodes: [PickleNode], file: String?) {
        self.nodes = nodes
        self.file = file
    }

    /// Converts the root object.
    mutating func convert(_ root: PickleObject) throws -> StateValue {
        var path: [StateKey] = []
        return try convert(root, path: &path, depth: 0).value
    }

    private func error(_ code: CheckpointError.Code, _ message: String, path: [StateKey], found: String? = nil)
        -> CheckpointError
    {
        CheckpointError(code, message, file: file, path: path.isEmpty ? "(root)" : path.pathString, found: found)
    }

    /// - Parameter depth: Containers above this object.
    private mutating func convert(_ object: PickleObject, path: inout [StateKey], depth: Int) throws -> Converted {
        switch object {
        case .value(let value):
            return Converted(value: value, count: 1, height: 0)
        case .global(.dtype(let dtype)):
            return Converted(value: .dtype(dtype), count: 1, height: 0)
        case .global(let global):
            throw error(.unsupported, "a bare \(global.qualifiedName) cannot be stored in a state tree", path: path)
        case .storage:
            throw error(.unsupported, "a bare storage (not inside a tensor) cannot be stored in a state tree", path: path)
        case .node(let index):
            if let cached = done[index] {
                try checkDepth(depth + cached.height, path: path)
                return cached
            }
            guard !inProgress.contains(index) else {
                throw error(.unsupported, "a container that contains itself cannot be stored in a state tree", path: path)
            }
            try checkDepth(depth + 1, path: path)
            inProgress.insert(index)
            let converted = try convertNode(nodes[index], path: &path, depth: depth)
            inProgress.remove(index)
            guard converted.count <= Unpickler.maximumValueCount else {
                throw error(
                    .outOfBounds, "the tree holds too many values (shared containers count once per use)", path: path,
                    found: "more than \(Unpickler.maximumValueCount)")
            }
            done[index] = converted
            return converted
        }
    }

    private func checkDepth(_ depth: Int, path: [StateKey]) throws {
        guard depth <= Unpickler.maximumNestingDepth else {
            throw error(
                .outOfBounds, "containers nest deeper than \(Unpickler.maximumNestingDepth) levels", path: path,
                found: "\(depth) levels")
        }
    }

    private mutating func convertNode(_ node: PickleNode, path: inout [StateKey], depth: Int) throws -> Converted {
        var count = 1
        var height = 0
        func add(_ child: Converted) {
            let (sum, overflow) = count.addingReportingOverflow(child.count)
            count = overflow ? Int.max : sum
            height = max(height, child.height)
        }
        switch node.kind {
        case .list, .tuple, .set:
            var elements: [StateValue] = []
            elements.reserveCapacity(node.elements.count)
            for (index, element) in node.elements.enumerated() {
                path.append(.int(Int64(index)))
                let child = try convert(element, path: &path, depth: depth + 1)
                path.removeLast()
                if node.kind == .set { try checkHashable(child.value, path: path) }
                add(child)
                elements.append(child.value)
            }
            let value: StateValue
            switch node.kind {
            case .list: value = .list(elements)
            case .tuple: value = .tuple(elements)
            default: value = .set(elements)
            }
            return Converted(value: value, count: count, height: height + 1)
        case .dict(let ordered):
            if let keyType = node.invalidKeyType {
                throw error(.unsupported, "dict keys must be str or int", path: path, found: "a key of type \(keyType)")
            }
            var items = OrderedDictionary<StateKey, StateValue>()
            items.reserveCapacity(node.items.count)
            for (key, element) in node.items {
                path.append(key)
                let child = try convert(element, path: &path, depth: depth + 1)
                path.removeLast()
                add(child)
                items[key] = child.value
            }
            var attributes = OrderedDictionary<String, StateValue>()
            for (name, element) in node.attributes {
                path.append(.string(name))
                let child = try convert(element, path: &path, depth: depth + 1)
                path.removeLast()
                add(child)
                attributes[name] = child.value
            }
            let dict = StateDict(items, isOrderedDict: ordered, attributes: attributes)
            return Converted(value: .dict(dict), count: count, height: height + 1)
        }
    }

    /// Python would have refused to put a mutable container in a set.
    private func checkHashable(_ value: StateValue, path: [StateKey]) throws {
        switch value {
        case .list, .dict, .set, .bytearray:
            throw error(.malformedPickle, "a set cannot hold a \(value.pythonTypeName)", path: path)
        default:
            break
        }
    }
}
