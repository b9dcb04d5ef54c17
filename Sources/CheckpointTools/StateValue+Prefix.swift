import Checkpoint

extension StateValue {
    /// The tree with a prefix taken off its keys (ckpt-tool's `convert --strip-prefix`), the way
    /// torch's `consume_prefix_in_state_dict_if_present` does for a flat state_dict.
    ///
    /// The prefix is written like a key path. Its last part says what is stripped:
    /// - `model.` (no trailing `/`): keys of the root dict that start with `model.` lose it;
    ///   other keys stay as they are, and every key keeps its place (torch's function moves the
    ///   renamed keys to the end; `load_state_dict` does not care). The names in an OrderedDict's `_metadata` are renamed by
    ///   torch's rule (`model` and `model.x` lose the prefix, the root module `""` stays).
    /// - `model/` (a trailing `/`): the dict at `model` is replaced by its entries, in its place.
    ///   When nothing else is left beside it, the result is that dict itself (its type and
    ///   attributes included).
    ///
    /// Earlier parts name dicts to go into first: `state_dict/model.` strips `model.` from the
    /// keys of the dict at `state_dict`.
    ///
    /// - Parameter prefix: The prefix, with `\` escapes as in key paths.
    /// - Returns: The renamed tree.
    /// - Throws: `CheckpointError` `.invalidArgument` when no key has the prefix, a part names no
    ///   dict, or two keys would become one.
    public func strippingPrefix(_ prefix: String) throws -> StateValue {
        let target = try PrefixTarget(prefix)
        return try target.editDict(self) { dict, path in
            target.isWholeKey ? try Self.hoist(target.last, in: dict, at: path, prefix: prefix) : try Self.strip(target.last, from: dict, at: path, prefix: prefix)
        }
    }

    /// The tree with a prefix put in front of its keys (ckpt-tool's `convert --add-prefix`), the
    /// inverse of ``strippingPrefix(_:)``.
    ///
    /// - `model.`: every key of the root dict gets `model.` in front (and `_metadata`'s module
    ///   names: the root `""` becomes `model`, `x` becomes `model.x`).
    /// - `model/`: the whole tree becomes the one entry `model` of a new dict.
    /// - Earlier parts name dicts to go into first, as for ``strippingPrefix(_:)``.
    ///
    /// - Parameter prefix: The prefix, with `\` escapes as in key paths.
    /// - Returns: The renamed tree.
    /// - Throws: `CheckpointError` `.invalidArgument` when a part names no dict, a key is an int, or
    ///   two keys would become one.
    public func addingPrefix(_ prefix: String) throws -> StateValue {
        let target = try PrefixTarget(prefix)
        if target.isWholeKey {
            return try target.editValue(self) { value, _ in .dict(StateDict([.string(target.last): value])) }
        }
        return try target.editDict(self) { dict, path in
            var renamed = StateDict(isOrderedDict: dict.isOrderedDict, attributes: dict.attributes)
            for (key, value) in dict {
                guard case .string(let name) = key else {
                    throw CheckpointError(
                        .invalidArgument, "an int key cannot take a text prefix", path: (path + [key]).pathString,
                        expected: "string keys", found: "int key \(key)")
                }
                try Self.insert(value, at: .string(target.last + name), into: &renamed, path: path)
            }
            renamed.renameMetadata { module in module.isEmpty ? String(target.last.dropLast(target.last.hasSuffix(".") ? 1 : 0)) : target.last + module }
            return .dict(renamed)
        }
    }

    private static func strip(_ text: String, from dict: StateDict, at path: [StateKey], prefix: String) throws -> StateValue {
        var renamed = StateDict(isOrderedDict: dict.isOrderedDict, attributes: dict.attributes)
        var stripped = 0
        for (key, value) in dict {
            var newKey = key
            if case .string(let name) = key, name.hasPrefix(text) {
                guard name.count > text.count else {
                    throw CheckpointError(
                        .invalidArgument, "stripping the prefix would leave an empty key", path: (path + [key]).pathString,
                        expected: "keys longer than the prefix", found: "'\(name)'")
                }
                newKey = .string(String(name.dropFirst(text.count)))
                stripped += 1
            }
            try insert(value, at: newKey, into: &renamed, path: path)
        }
        guard stripped > 0 else { throw noMatch(prefix, path: path, dict: dict) }
        // torch's consume_prefix_in_state_dict_if_present: `model` (the prefix without its dots)
        // and `model.x` lose the prefix; the root module "" is left.
        let bare = text.replacingOccurrences(of: ".", with: "")
        renamed.renameMetadata { module in
            guard !module.isEmpty, module == bare || module.hasPrefix(text) else { return module }
            return String(module.dropFirst(text.count))
        }
        return .dict(renamed)
    }

    private static func hoist(_ name: String, in dict: StateDict, at path: [StateKey], prefix: String) throws -> StateValue {
        let key = dict.key(named: name)
        guard let key, let child = dict[key] else { throw noMatch(prefix, path: path, dict: dict) }
        guard case .dict(let inner) = child else {
            throw CheckpointError(
                .invalidArgument, "a prefix ending in '/' must name a dict", path: (path + [key]).pathString,
                expected: "a dict", found: child.pythonTypeName)
        }
        if dict.count == 1 { return child }
        var merged = StateDict(isOrderedDict: dict.isOrderedDict, attributes: dict.attributes)
        for (sibling, value) in dict {
            if sibling == key {
                for (innerKey, innerValue) in inner { try insert(innerValue, at: innerKey, into: &merged, path: path) }
            } else {
                try insert(value, at: sibling, into: &merged, path: path)
            }
        }
        return .dict(merged)
    }

    private static func insert(_ value: StateValue, at key: StateKey, into dict: inout StateDict, path: [StateKey]) throws {
        guard dict[key] == nil else {
            throw CheckpointError(
                .invalidArgument, "two keys would both become this key", path: (path + [key]).pathString,
                expected: "distinct keys after renaming", found: "a collision")
        }
        dict[key] = value
    }

    private static func noMatch(_ prefix: String, path: [StateKey], dict: StateDict) -> CheckpointError {
        let sample = dict.keys.prefix(3).map { "'\($0.pathComponent)'" }.joined(separator: ", ")
        return CheckpointError(
            .invalidArgument, "no key has the prefix '\(prefix)'", path: path.isEmpty ? "(root)" : path.pathString,
            expected: "a key starting with it", found: dict.isEmpty ? "an empty dict" : "keys such as \(sample)")
    }
}

/// A parsed `--strip-prefix`/`--add-prefix`: the dicts to go into, then the last part.
private struct PrefixTarget {
    /// Keys of the dicts to go into, from the root.
    let containers: [String]
    /// A text prefix of keys, or (``isWholeKey``) one whole key.
    let last: String
    /// True when the prefix ended in an unescaped `/`.
    let isWholeKey: Bool

    init(_ prefix: String) throws {
        var keys = KeyPathSyntax.keys(prefix)
        guard let last = keys.popLast(), !last.isEmpty else {
            throw CheckpointError(.invalidArgument, "empty prefix", expected: "a prefix such as 'model.' or 'model/'", found: "'\(prefix)'")
        }
        // A trailing `/` is unescaped when an even number of backslashes precede it.
        let backslashes = prefix.dropLast().reversed().prefix { $0 == "\\" }.count
        containers = keys
        self.last = last
        isWholeKey = prefix.hasSuffix("/") && backslashes.isMultiple(of: 2)
    }

    /// Replaces the value the containers lead to with `body`'s result.
    func editValue(_ root: StateValue, _ body: (StateValue, [StateKey]) throws -> StateValue) throws -> StateValue {
        try edit(root, at: [], depth: 0, body)
    }

    /// Replaces the dict the containers lead to with `body`'s result.
    func editDict(_ root: StateValue, _ body: (StateDict, [StateKey]) throws -> StateValue) throws -> StateValue {
        try edit(root, at: [], depth: 0) { value, path in
            guard case .dict(let dict) = value else { throw Self.notADict(value, path) }
            return try body(dict, path)
        }
    }

    private func edit(
        _ value: StateValue, at path: [StateKey], depth: Int, _ body: (StateValue, [StateKey]) throws -> StateValue
    ) throws -> StateValue {
        if depth == containers.count { return try body(value, path) }
        guard case .dict(var dict) = value else { throw Self.notADict(value, path) }
        guard let key = dict.key(named: containers[depth]), let child = dict[key] else {
            throw CheckpointError(
                .invalidArgument, "the prefix names a key that is not there", path: (path + [.string(containers[depth])]).pathString,
                expected: "a dict at this key path", found: "no such key")
        }
        dict[key] = try edit(child, at: path + [key], depth: depth + 1, body)
        return .dict(dict)
    }

    private static func notADict(_ value: StateValue, _ path: [StateKey]) -> CheckpointError {
        CheckpointError(
            .invalidArgument, "a prefix applies to the keys of a dict", path: path.isEmpty ? "(root)" : path.pathString,
            expected: "a dict", found: value.pythonTypeName)
    }
}

extension StateDict {
    /// The key a path component names: an int key for an all-digit name when there is one, or
    /// else the string key (as ``StateValue/value(atPath:)`` resolves it).
    fileprivate func key(named name: String) -> StateKey? {
        if let index = Int64(name), self[.int(index)] != nil { return .int(index) }
        return self[.string(name)] != nil ? .string(name) : nil
    }

    /// Renames the modules of torch's `_metadata` attribute (a dict of module name → version info).
    fileprivate mutating func renameMetadata(_ rename: (String) -> String) {
        guard case .dict(let metadata)? = attributes["_metadata"] else { return }
        var renamed = StateDict(isOrderedDict: metadata.isOrderedDict, attributes: metadata.attributes)
        for (key, value) in metadata {
            guard case .string(let module) = key else {
                renamed[key] = value
                continue
            }
            renamed[.string(rename(module))] = value
        }
        attributes["_metadata"] = .dict(renamed)
    }
}
