import Foundation

/// A TorchScript archive (`torch.jit.save`): the torch.save zip layout plus `constants.pkl` (with its
/// tensors in `constants/`) and the module's compiled source in `code/`.
///
/// `data.pkl` is read with the restricted unpickler, each `__torch__.*` instance a placeholder, and
/// turned into a ``ScriptModule``; from `code/`, only each class's declaration line and its
/// `__parameters__` and `__buffers__` lists are read. Nothing is compiled or run.
enum TorchScriptArchive {
    /// What marks an archive as TorchScript.
    static let constantsName = "constants.pkl"

    /// Reads the module of an archive with `constants.pkl`.
    ///
    /// - Parameters:
    ///   - reader: The opened archive.
    ///   - verifyChecksums: Check each blob's CRC-32 when its bytes are first read.
    ///   - dataGlobals: The data globals the pickles' attributes may become values.
    /// - Returns: The module.
    /// - Throws: ``CheckpointError`` naming the file: `.notRecognized` without `constants.pkl`,
    ///   `.missingEntry` for a class declared nowhere in `code/`, `.corrupt` for a module that does
    ///   not fit its declaration; the errors of the zip reader and the unpickler.
    static func read(_ reader: ZipReader, verifyChecksums: Bool, dataGlobals: DataGlobals) throws -> ScriptModule {
        let path = reader.file.path
        let prefix = try TorchArchive.prefix(of: reader)
        guard let constantsEntry = reader.entry(named: prefix + constantsName) else {
            throw CheckpointError(
                .notRecognized, "not a TorchScript archive", file: path, expected: prefix + constantsName)
        }
        let data = try reader.requireEntry(named: prefix + "data.pkl")
        // A scripted module's storages stay on the CPU once loaded; their location tags are not reported.
        var locations: [ObjectIdentifier: String] = [:]
        let tree = try TorchArchive.unpickle(
            reader, data, records: prefix + "data/", verifyChecksums: verifyChecksums, dataGlobals: dataGlobals, locations: &locations)
        let constants = try TorchArchive.unpickle(
            reader, constantsEntry, records: prefix + "constants/", verifyChecksums: verifyChecksums, dataGlobals: dataGlobals,
            locations: &locations)
        var declarations = Declarations(reader: reader, prefix: prefix)
        var module = try declarations.module(tree, at: [])
        if case .tuple(let values) = constants { module.constants = values } else { module.constants = [constants] }
        return module
    }

    /// The classes' declarations in `code/`, read once per file.
    private struct Declarations {
        let reader: ZipReader
        let prefix: String
        private var sources: [String: String] = [:]

        init(reader: ZipReader, prefix: String) {
            self.reader = reader
            self.prefix = prefix
        }

        /// A `__torch__` module instance as a ``ScriptModule``.
        mutating func module(_ value: StateValue, at path: [StateKey]) throws -> ScriptModule {
            let file = reader.file.path
            let location = path.isEmpty ? "(root)" : path.pathString
            guard case .object(let object) = value, isScriptClass(object), object.construction == .newObject else {
                throw CheckpointError(
                    .corrupt, "a TorchScript module must be an instance of a __torch__ class", file: file, path: location,
                    found: value.pythonTypeName)
            }
            guard let declared = try declaration(of: object), declared.isModule else {
                throw CheckpointError(
                    .corrupt, "\(object.qualifiedName) is not declared as a Module in code/", file: file, path: location)
            }
            guard case .dict(let state)? = object.state else {
                throw CheckpointError(
                    .corrupt, "a TorchScript module's state must be a dict of its attributes", file: file, path: location,
                    found: object.state?.pythonTypeName ?? "no state")
            }
            var module = ScriptModule(qualifiedName: object.qualifiedName)
            for name in declared.parameters + declared.buffers {
                guard case .tensor? = state.items[.string(name)] else {
                    throw CheckpointError(
                        .corrupt, "declared tensor attribute is missing or not a tensor", file: file,
                        path: (path + [.string(name)]).pathString, found: state.items[.string(name)]?.pythonTypeName ?? "nothing")
                }
            }
            for name in declared.parameters {
                if case .tensor(let tensor)? = state.items[.string(name)] { module.parameters[name] = tensor }
            }
            for name in declared.buffers {
                if case .tensor(let tensor)? = state.items[.string(name)] { module.buffers[name] = tensor }
            }
            for (key, child) in state.items {
                guard case .string(let name) = key else {
                    throw CheckpointError(.corrupt, "a module attribute name must be a str", file: file, path: location, found: "\(key)")
                }
                guard module.parameters[name] == nil, module.buffers[name] == nil else { continue }
                if case .object(let inner) = child, isScriptClass(inner), try declaration(of: inner)?.isModule == true {
                    module.submodules[name] = try self.module(child, at: path + [key])
                } else {
                    module.attributes[name] = child
                }
            }
            return module
        }

        private func isScriptClass(_ object: PickledObject) -> Bool {
            object.module == "__torch__" || object.module.hasPrefix("__torch__.")
        }

        /// The declaration of `__torch__.a.b.C`: class `C` in `code/__torch__/a/b.py`; nil when the
        /// file has no such class.
        private mutating func declaration(of object: PickledObject) throws -> ClassDeclaration? {
            let name = prefix + "code/" + object.module.replacingOccurrences(of: ".", with: "/") + ".py"
            if sources[name] == nil {
                guard let entry = reader.entry(named: name) else {
                    throw CheckpointError(
                        .missingEntry, "the source declaring \(object.qualifiedName) is missing", file: reader.file.path, path: name)
                }
                sources[name] = String(decoding: try reader.contents(of: entry), as: UTF8.self)
            }
            return ClassDeclaration(name: object.name, in: sources[name]!)
        }
    }
}

/// What a TorchScript class's source declares: its base class and its parameter and buffer names.
struct ClassDeclaration: Equatable {
    /// True for `class C(Module):`.
    var isModule: Bool
    var parameters: [String]
    var buffers: [String]

    /// The declaration of class `name` in a `code/` file: its header line at column 0, then its
    /// indented body up to the next line at column 0; nil when the file declares no such class.
    init?(name: String, in source: String) {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        guard let header = lines.firstIndex(where: { $0.hasPrefix("class \(name)(") || $0.hasPrefix("class \(name):") }) else {
            return nil
        }
        let base = lines[header].drop { $0 != "(" }.dropFirst().prefix { $0 != ")" }
        isModule = base == "Module"
        var parameters: [String]?
        var buffers: [String]?
        // The class's own lists come first in its body; a method's locals of the same name do not count.
        for line in lines[(header + 1)...] {
            guard line.first == " " || line.isEmpty else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if parameters == nil, text.hasPrefix("__parameters__ = [") { parameters = Self.names(text) }
            if buffers == nil, text.hasPrefix("__buffers__ = [") { buffers = Self.names(text) }
        }
        self.parameters = parameters ?? []
        self.buffers = buffers ?? []
    }

    /// The quoted names of a `__x__ = ["a", "b", ]` line.
    private static func names(_ line: String) -> [String] {
        let list = line.drop { $0 != "[" }.dropFirst().prefix { $0 != "]" }
        return list.split(separator: ",").compactMap { item in
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            guard trimmed.count >= 2, let quote = trimmed.first, quote == "\"" || quote == "'", trimmed.last == quote else { return nil }
            return String(trimmed.dropFirst().dropLast())
        }
    }
}
