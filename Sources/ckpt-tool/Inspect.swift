import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool inspect FILE... [--json] [--depth N] [--select GLOB]`: the tree, optimizer summaries
/// and totals of each file, without reading tensor data.
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
            The format is told from the contents (a note says when the extension names another); the \
            device each storage was saved on and a safetensors file's __metadata__ are shown. \
            With several files, each is printed in turn (--json: an array of their documents); a file \
            that cannot be read is reported on stderr and the others are still inspected. \
            The --json schema is documented in docs/CLI.md.
            """
    )

    @Argument(help: "The checkpoints (.ckpt, .pt/.pth, .safetensors; each detected from its contents); '-' reads standard input.")
    var files: [String]

    @Flag(help: "Print JSON (schema ckpt-tool/inspect, version \(InspectDocument.version)) instead of text; an array of documents for several files.")
    var json = false

    @Option(help: "Show at most this many children of each dict, list, tuple or set in text output (0: all).")
    var maxItems = 100

    @Option(help: "Print at most this many lines of the tree and __metadata__ (0: all); with --json, at most this many NODEs of the tree.")
    var maxLines = 10_000

    @Option(help: "Show the tree this many levels deep (the root's children are level 1).")
    var depth: Int?

    @OptionGroup var selectionOptions: SelectionOptions

    @OptionGroup var data: DataGlobalOptions

    @OptionGroup var limits: LimitOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard maxItems >= 0 else { throw ValidationError("--max-items must not be negative (0 shows every item)") }
        guard maxLines >= 0 else { throw ValidationError("--max-lines must not be negative (0 shows every line)") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input ('-') can be read only once") }
        if let depth, depth < 0 { throw ValidationError("--depth must not be negative") }
    }

    /// Inspects each file in turn: text is printed as each is read, JSON once all are (one document,
    /// or an array of them for several files). A file that cannot be read is reported and skipped;
    /// the exit status is then 1.
    func run() throws {
        let selection = InspectSelection(glob: selectionOptions.glob, maximumDepth: depth)
        var documents: [InspectDocument] = []
        var failed = false
        var printed = 0
        for (number, file) in files.enumerated() {
            do {
                let inspected = try InspectedFile(
                    file, url: InputPath.url(file), options: LoadOptions(allowDataGlobals: data.dataGlobals, limits: limits.limits), selection: selection)
                if selection.glob != nil, !selection.leadsToSelection(inspected.tree, path: []) {
                    throw selectionOptions.noMatch(in: InputPath.display(file), tree: inspected.tree)
                }
                if json {
                    documents.append(InspectDocument(inspected, selection: selection, maxNodes: maxLines))
                } else {
                    let text = InspectText(
                        style: output.style, maxItems: maxItems, maxLines: maxLines, selection: selection, inspected: inspected)
                    Terminal.standardOutput.write((printed > 0 ? "\n" : "") + text.render())
                }
                printed += 1
                if number == files.count - 1 { ReclaimedAtExit.keep(inspected) }
            } catch {
                Terminal.report(error)
                failed = true
            }
        }
        if json, !documents.isEmpty {
            try InspectDocument.write(documents, asArray: files.count > 1, to: Terminal.standardOutput)
        }
        if failed { throw ExitCode(1) }
    }
}

/// One file as inspect shows it: what was read and what was worked out from it.
struct InspectedFile {
    /// FILE as given.
    let file: String
    let contents: CheckpointContents
    /// The file's size (a sharded checkpoint's: all its files'), nil when it cannot be had.
    let fileBytes: Int?
    /// The format the file name's extension names, nil for another extension.
    let extensionFormat: CheckpointFormat?
    let summary: TreeSummary
    /// The optimizer state_dicts `--select` lets through.
    let optimizers: [OptimizerSummary]
    /// The files of a DCP or Hugging Face sharded checkpoint; nil for one file.
    let sharding: InspectSharding?

    var tree: StateValue { contents.tree }

    init(_ file: String, url: URL, options: LoadOptions, selection: InspectSelection) throws {
        self.file = file
        contents = try CheckpointContents(contentsOf: url, options: options)
        let optimizers = try OptimizerSummary.find(in: contents.tree)
        summary = TreeSummary(contents.tree, counting: selection.selects, optimizerPaths: optimizers.map(\.path))
        let tree = contents.tree
        self.optimizers = optimizers.filter { selection.shows($0.path, in: tree) }
        sharding = InspectSharding(contents)
        fileBytes = sharding?.diskBytes ?? (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? nil
        extensionFormat = sharding == nil ? CheckpointFormat(pathExtension: url.pathExtension) : nil
    }

    /// A sentence saying the extension names another format than the contents are in; nil when
    /// they agree or the extension names none.
    var formatNote: String? {
        guard let extensionFormat, extensionFormat != contents.format else { return nil }
        let what: String
        switch contents.format {
        case .ckpt: what = "a ckpt archive (a torch.save zip with ckpt's manifest)"
        case .pt:
            what = extensionFormat == .ckpt
                ? "a torch.save zip archive without ckpt's manifest (as Lightning's .ckpt files are)" : "a torch.save zip archive"
        case .safetensors: what = "safetensors"
        case .legacy: what = "torch's pre-1.6 format (read here; convert writes it as a zip archive)"
        case .dcp: what = "a PyTorch Distributed Checkpoint directory"
        }
        return "the extension .\(URL(fileURLWithPath: file).pathExtension) says \(extensionFormat.rawValue), "
            + "but the contents are \(contents.format.rawValue): \(what)"
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
    /// Sum of every counted tensor's elements (numel).
    let elements: Int
    /// The elements of the counted tensors outside optimizer state_dicts: a model's parameters
    /// and buffers, which a state_dict does not tell apart.
    let parameters: Int
    /// Sum of every tensor's logical bytes (numel × item size).
    let tensorBytes: Int
    /// Sum of the distinct storages' sizes: what the data occupies.
    let storageBytes: Int

    /// Distinct storages of the counted tensors.
    let storageCount: Int

    /// Numbers every storage of the tree; counts only the tensors `counting` accepts in the totals.
    ///
    /// - Parameters:
    ///   - tree: The tree.
    ///   - counting: Whether a tensor at a key path is counted in the totals.
    ///   - optimizerPaths: Where optimizer state_dicts are: their tensors are not ``parameters``.
    init(_ tree: StateValue, counting: ([StateKey]) -> Bool = { _ in true }, optimizerPaths: [[StateKey]] = []) {
        var index: [ObjectIdentifier: Int] = [:]
        var views: [ObjectIdentifier: Int] = [:]
        var counted = Set<ObjectIdentifier>()
        var count = 0
        var elements = 0
        var parameters = 0
        var tensorBytes = 0
        var storageBytes = 0
        tree.forEachTensor { path, tensor in
            let id = ObjectIdentifier(tensor.storage)
            if index[id] == nil { index[id] = index.count }
            views[id, default: 0] += 1
            guard counting(path) else { return }
            if counted.insert(id).inserted { storageBytes += tensor.storage.byteCount }
            count += 1
            elements += tensor.numel
            if !optimizerPaths.contains(where: { path.starts(with: $0) }) { parameters += tensor.numel }
            tensorBytes += tensor.byteCount
        }
        self.elements = elements
        self.parameters = parameters
        storageCount = counted.count
        storageIndex = index
        viewsPerStorage = views
        tensorCount = count
        self.tensorBytes = tensorBytes
        self.storageBytes = storageBytes
    }
}
