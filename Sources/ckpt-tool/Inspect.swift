import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool inspect FILE [--json] [--depth N] [--select GLOB]`: the tree, optimizer summaries and
/// totals, without reading tensor data.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a checkpoint's tree: keys, Python types, tensor dtypes, shapes and sizes, optimizers, and totals.",
        discussion: """
            Only the file's structure is read (the zip directory and manifest or pickle, or the \
            safetensors header); tensor data is mapped but never touched, except the few bytes of each \
            optimizer's 0-dim `step` tensors, so this is instant on large files. An optimizer state_dict \
            anywhere in the tree (a dict of exactly `state` and `param_groups`) is summarized: groups, \
            hyperparameters, parameter counts, state keys and the range of `step`. \
            The --json schema is documented in docs/CLI.md.
            """
    )

    @Argument(help: "The checkpoint (.ckpt, .pt/.pth, .safetensors; detected from its contents).")
    var file: String

    @Flag(help: "Print JSON (schema ckpt-tool/inspect, version 1) instead of text.")
    var json = false

    @Option(help: "Show at most this many children of each dict, list, tuple or set in text output.")
    var maxItems = 100

    @Option(help: "Show the tree this many levels deep (the root's children are level 1).")
    var depth: Int?

    @OptionGroup var selectionOptions: SelectionOptions

    @OptionGroup var data: DataGlobalOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard maxItems > 0 else { throw ValidationError("--max-items must be positive") }
        if let depth, depth < 0 { throw ValidationError("--depth must not be negative") }
    }

    func run() throws {
        let url = URL(fileURLWithPath: file)
        let tree = try StateValue(contentsOf: url, options: LoadOptions(allowDataGlobals: data.dataGlobals))
        let selection = InspectSelection(glob: selectionOptions.glob, maximumDepth: depth)
        if selection.glob != nil, !selection.leadsToSelection(tree, path: []) {
            throw selectionOptions.noMatch(in: InputPath.display(file), tree: tree)
        }
        let summary = TreeSummary(tree, counting: selection.selects)
        let optimizers = try OptimizerSummary.find(in: tree).filter { selection.shows($0.path, in: tree) }
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? nil
        // The name tells .ckpt from .pt (both zips); only the bytes tell a pre-1.6 file.
        let format = (try? CheckpointFormat(contentsOf: url)) == .legacy ? .legacy : CheckpointFormat(pathExtension: url.pathExtension)
        if json {
            let document = InspectDocument(
                tree, file: file, fileBytes: fileBytes, format: format, summary: summary, selection: selection, optimizers: optimizers)
            Terminal.standardOutput.write(try JSONOutput.render(document, style: .indented))
        } else {
            let text = InspectText(style: output.style, summary: summary, maxItems: maxItems, selection: selection, optimizers: optimizers)
            Terminal.standardOutput.write(text.render(tree, file: file, fileBytes: fileBytes, format: format))
        }
    }
}

/// Which parts of the tree `--select` and `--depth` let through.
struct InspectSelection {
    let glob: KeyGlob?
    let maximumDepth: Int?

    /// True when the value at `path` or one of its ancestors matches the filter (always without one).
    func selects(_ path: [StateKey]) -> Bool {
        guard let glob else { return true }
        return (1...max(path.count, 1)).contains { glob.matches(Array(path.prefix($0))) }
    }

    /// True when the value at `path` is printed: it is selected or leads to a selected value.
    func shows(_ path: [StateKey], in tree: StateValue) -> Bool {
        guard glob != nil else { return true }
        if selects(path) { return true }
        guard let value = tree.value(at: path) else { return false }
        return leadsToSelection(value, path: path)
    }

    /// True when the children of a node at `path` (the root is at `[]`) are within `--depth`.
    func expands(_ path: [StateKey]) -> Bool {
        maximumDepth.map { path.count < $0 } ?? true
    }

    /// True when `value` (at `path`) is selected or contains a selected value.
    func leadsToSelection(_ value: StateValue, path: [StateKey]) -> Bool {
        if selects(path) { return true }
        guard let glob, glob.couldMatchBelow(path) else { return false }
        var childPath = path
        for (key, child) in Self.children(of: value) {
            childPath.append(key)
            defer { childPath.removeLast() }
            if leadsToSelection(child, path: childPath) { return true }
        }
        return false
    }

    /// A container's children with their keys: dict items, then OrderedDict attributes, elements by
    /// index, or an object's parts by name.
    static func children(of value: StateValue) -> [(key: StateKey, value: StateValue)] {
        value.children
    }
}

extension StateValue {
    /// The value at a key path whose keys keep their types (an attribute is found by name).
    func value(at path: [StateKey]) -> StateValue? {
        var current = self
        for key in path {
            guard let next = InspectSelection.children(of: current).first(where: { $0.key == key })?.value else { return nil }
            current = next
        }
        return current
    }
}

/// Totals and storage numbering of a tree, computed from tensor metadata alone.
struct TreeSummary {
    /// Storage number (0, 1, ...) in the order ``StateValue/forEachTensor(_:)`` first meets it.
    let storageIndex: [ObjectIdentifier: Int]
    /// How many tensors view each storage.
    let viewsPerStorage: [ObjectIdentifier: Int]
    let tensorCount: Int
    /// Sum of every tensor's logical bytes (numel × item size).
    let tensorBytes: Int
    /// Sum of the distinct storages' sizes: what the data occupies.
    let storageBytes: Int

    /// Distinct storages of the counted tensors.
    let storageCount: Int

    /// Numbers every storage of the tree; counts only the tensors `counting` accepts in the totals.
    init(_ tree: StateValue, counting: ([StateKey]) -> Bool = { _ in true }) {
        var index: [ObjectIdentifier: Int] = [:]
        var views: [ObjectIdentifier: Int] = [:]
        var counted = Set<ObjectIdentifier>()
        var count = 0
        var tensorBytes = 0
        var storageBytes = 0
        tree.forEachTensor { path, tensor in
            let id = ObjectIdentifier(tensor.storage)
            if index[id] == nil { index[id] = index.count }
            views[id, default: 0] += 1
            guard counting(path) else { return }
            if counted.insert(id).inserted { storageBytes += tensor.storage.byteCount }
            count += 1
            tensorBytes += tensor.byteCount
        }
        storageCount = counted.count
        storageIndex = index
        viewsPerStorage = views
        tensorCount = count
        self.tensorBytes = tensorBytes
        self.storageBytes = storageBytes
    }

    /// `1.5 KiB (1536 bytes)`-style sizes; `1.5 KiB` without `exact` (for tables).
    static func formatBytes(_ count: Int, exact: Bool = true) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        // The byte count is interpolated: `%d` would print only the low 32 bits of an Int.
        return unit == 0 ? "\(count) B" : String(format: "%.1f ", value) + units[unit] + (exact ? " (\(count) bytes)" : "")
    }
}
