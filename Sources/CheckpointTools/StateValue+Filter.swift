import Checkpoint
import OrderedCollections

extension StateValue {
    /// The tensors whose key paths match a pattern, in tree order.
    ///
    /// - Parameter glob: The pattern; nil selects every tensor.
    /// - Returns: Each tensor with its key path.
    public func tensors(matching glob: KeyGlob?) -> [(path: [StateKey], tensor: Tensor)] {
        var found: [(path: [StateKey], tensor: Tensor)] = []
        forEachTensor { path, tensor in
            if glob?.matches(path) ?? true { found.append((path, tensor)) }
        }
        return found
    }

    /// The tree cut down to the values whose key paths match a pattern, with the containers that
    /// lead to them (ckpt-tool's `convert --only`).
    ///
    /// A matching container is kept whole, so `model` keeps the model's whole subtree. Containers
    /// keep their type; a list, tuple or set keeps only its matching elements, which therefore
    /// get new indices. OrderedDict attributes (`_metadata`) are kept only if they match too. A
    /// ``PickledObject`` keeps its global and construction, and only its matching parts (`args`,
    /// `state`, ...), each filtered the same way; a ``PythonRecord`` its matching attributes.
    ///
    /// - Parameter glob: The pattern.
    /// - Returns: The filtered tree, or nil when nothing matches.
    public func filtered(by glob: KeyGlob) -> StateValue? {
        var path: [StateKey] = []
        return filtered(by: glob, at: &path)
    }

    private func filtered(by glob: KeyGlob, at path: inout [StateKey]) -> StateValue? {
        if !path.isEmpty, glob.matches(path) { return self }
        guard glob.couldMatchBelow(path) else { return nil }
        switch self {
        case .dict(let dict):
            var kept = StateDict(isOrderedDict: dict.isOrderedDict)
            kept.defaultFactory = dict.defaultFactory
            for (key, value) in dict.items {
                path.append(key)
                if let child = value.filtered(by: glob, at: &path) { kept.items[key] = child }
                path.removeLast()
            }
            for (name, value) in dict.attributes {
                path.append(.string(name))
                if let child = value.filtered(by: glob, at: &path) { kept.attributes[name] = child }
                path.removeLast()
            }
            return kept.items.isEmpty && kept.attributes.isEmpty ? nil : .dict(kept)
        case .list(let elements), .tuple(let elements), .set(let elements):
            var kept: [StateValue] = []
            for (index, element) in elements.enumerated() {
                path.append(.int(Int64(index)))
                if let child = element.filtered(by: glob, at: &path) { kept.append(child) }
                path.removeLast()
            }
            guard !kept.isEmpty else { return nil }
            if case .list = self { return .list(kept) }
            if case .tuple = self { return .tuple(kept) }
            return .set(kept)
        case .object(let object):
            var anyKept = false
            let kept = object.mapParts { name, part -> StateValue? in
                path.append(.string(name))
                defer { path.removeLast() }
                let child = part.filtered(by: glob, at: &path)
                if child != nil { anyKept = true }
                return child
            }
            return anyKept ? .object(kept) : nil
        case .record(var record):
            var kept = OrderedMap<String, StateValue>()
            for (name, value) in record.attributes {
                path.append(.string(name))
                if let child = value.filtered(by: glob, at: &path) { kept[name] = child }
                path.removeLast()
            }
            guard !kept.isEmpty else { return nil }
            record.attributes = kept
            return .record(record)
        default:
            return nil
        }
    }
}
