import Checkpoint
import Foundation

extension RenameMap {
    /// Reads a map file.
    ///
    /// The file is a JSON object with either `"rules"` (an array of rule objects, tried in order)
    /// and an optional `"strict": true`, or `"maps"` (an array of such objects, applied one after
    /// the other). A rule object is one of `{"exact": NAME, "to": NAME}`, `{"prefix": TEXT, "to":
    /// TEXT}`, `{"regex": PATTERN, "to": TEMPLATE}` or `{"drop": PATTERN}`.
    ///
    /// - Parameter data: The file's bytes (UTF-8 JSON).
    /// - Throws: ``RenameError`` `.invalidMap` naming the rule (or the key) that is wrong, and a key
    ///   that appears twice in one object (JSONSerialization would silently keep one of them).
    public init(json data: Data) throws {
        let root: OrderedJSON
        do {
            root = try data.withUnsafeBytes { try OrderedJSON.parse($0, file: nil, what: "rename map") }
        } catch let error as CheckpointError {
            throw RenameError(.invalidMap, "the map is not valid JSON: \(error.path.map { "\($0): " } ?? "")\(error.message)\(error.found.map { " (\($0))" } ?? "")")
        }
        self = RenameMap(stages: try RenameMap.parseMap(root.foundationValue, firstStage: 0, composite: false, path: "map"))
    }

    /// Reads a map file from disk.
    ///
    /// - Parameter url: The file.
    /// - Throws: ``RenameError`` `.invalidMap` when it cannot be read or is malformed.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw RenameError(.invalidMap, "cannot read the map file \(url.path): \(error.localizedDescription)")
        }
        try self.init(json: data)
    }

    /// The stages of one map object; `firstStage` numbers its rules within the whole composition.
    private static func parseMap(_ value: Any, firstStage: Int, composite: Bool, path: String) throws -> [Stage] {
        guard let object = value as? [String: Any] else {
            throw RenameError(.invalidMap, "\(path): a map must be a JSON object with \"rules\" or \"maps\"")
        }
        if let unknown = object.keys.sorted().first(where: { !["rules", "maps", "strict"].contains($0) }) {
            throw RenameError(
                .invalidMap, "\(path): unknown key \"\(unknown)\" (a map has \"rules\", \"strict\" or \"maps\")")
        }
        switch (object["rules"], object["maps"]) {
        case (let rules?, nil):
            guard let ruleValues = rules as? [Any] else {
                throw RenameError(.invalidMap, "\(path): \"rules\" must be an array")
            }
            var strict = false
            if let flag = object["strict"] {
                guard let flag = flag as? Bool else {
                    throw RenameError(.invalidMap, "\(path): \"strict\" must be true or false")
                }
                strict = flag
            }
            let parsed = try ruleValues.enumerated().map { index, value in
                try parseRule(
                    value, reference: "\(composite ? "map \(firstStage) " : "")rule \(index) \(rawJSON(value))")
            }
            return [try RenameMap(parsed, strict: strict, stageIndex: composite ? firstStage : nil).stages[0]]
        case (nil, let maps?):
            guard let mapValues = maps as? [Any] else {
                throw RenameError(.invalidMap, "\(path): \"maps\" must be an array")
            }
            if object["strict"] != nil {
                throw RenameError(.invalidMap, "\(path): \"strict\" belongs to each of the \"maps\"")
            }
            var stages: [Stage] = []
            for (index, value) in mapValues.enumerated() {
                stages += try parseMap(
                    value, firstStage: firstStage + stages.count, composite: true, path: "\(path).maps[\(index)]")
            }
            return stages
        default:
            throw RenameError(.invalidMap, "\(path): a map needs exactly one of \"rules\" and \"maps\"")
        }
    }

    private static func parseRule(_ value: Any, reference: String) throws -> Rule {
        guard let object = value as? [String: Any] else {
            throw RenameError(.invalidMap, "\(reference): a rule must be a JSON object", rule: reference)
        }
        let kinds = ["exact", "prefix", "regex", "drop"].filter { object[$0] != nil }
        guard kinds.count == 1, let kind = kinds.first else {
            throw RenameError(
                .invalidMap, "\(reference): a rule needs exactly one of \"exact\", \"prefix\", \"regex\" and \"drop\"",
                rule: reference)
        }
        if let unknown = object.keys.sorted().first(where: { $0 != kind && $0 != "to" }) {
            throw RenameError(.invalidMap, "\(reference): unknown key \"\(unknown)\"", rule: reference)
        }
        guard let source = object[kind] as? String else {
            throw RenameError(.invalidMap, "\(reference): \"\(kind)\" must be a string", rule: reference)
        }
        if kind == "drop" {
            guard object["to"] == nil else {
                throw RenameError(.invalidMap, "\(reference): a drop rule has no \"to\"", rule: reference)
            }
            return .drop(source)
        }
        guard let target = object["to"] as? String else {
            throw RenameError(.invalidMap, "\(reference): \"\(kind)\" needs a string \"to\"", rule: reference)
        }
        switch kind {
        case "exact": return .exact(source, to: target)
        case "prefix": return .prefix(source, to: target)
        default: return .regex(source, to: target)
        }
    }

    /// A rule as found in the file, for messages about rules that could not be parsed.
    private static func rawJSON(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject([value]),
            let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
        else {
            return String(describing: value)
        }
        return String(decoding: data, as: UTF8.self)
    }
}
