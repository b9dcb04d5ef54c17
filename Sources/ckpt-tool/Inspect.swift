import ArgumentParser
import Checkpoint
import Foundation

/// `ckpt-tool inspect FILE [--json]`: the tree and its totals, without reading tensor data.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's tree: keys, Python types, tensor dtypes, shapes and sizes, and totals.",
        discussion: """
            Only the file's structure is read (the zip directory and manifest or pickle, or the \
            safetensors header); tensor data is mapped but never touched, so this is instant on large files. \
            The --json schema is documented in docs/CLI.md.
            """
    )

    @Argument(help: "The checkpoint (.ckpt, .pt/.pth, .safetensors; detected from its contents).")
    var file: String

    @Flag(help: "Print JSON (schema ckpt-tool/inspect, version 1) instead of text.")
    var json = false

    @Option(help: "Show at most this many children of each dict, list, tuple or set in text output.")
    var maxItems = 100

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard maxItems > 0 else { throw ValidationError("--max-items must be positive") }
    }

    func run() throws {
        let url = URL(fileURLWithPath: file)
        let tree = try Checkpoint.load(contentsOf: url)
        let summary = TreeSummary(tree)
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? nil
        let format = CheckpointFormat(pathExtension: url.pathExtension)
        if json {
            Terminal.standardOutput.write(try InspectJSON.render(tree, summary: summary, file: file, fileBytes: fileBytes, format: format))
        } else {
            let text = InspectText(style: output.style, summary: summary, maxItems: maxItems)
            Terminal.standardOutput.write(text.render(tree, file: file, fileBytes: fileBytes, format: format))
        }
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

    init(_ tree: StateValue) {
        var index: [ObjectIdentifier: Int] = [:]
        var views: [ObjectIdentifier: Int] = [:]
        var count = 0
        var tensorBytes = 0
        var storageBytes = 0
        tree.forEachTensor { _, tensor in
            let id = ObjectIdentifier(tensor.storage)
            if index[id] == nil {
                index[id] = index.count
                storageBytes += tensor.storage.byteCount
            }
            views[id, default: 0] += 1
            count += 1
            tensorBytes += tensor.byteCount
        }
        storageIndex = index
        viewsPerStorage = views
        tensorCount = count
        self.tensorBytes = tensorBytes
        self.storageBytes = storageBytes
    }

    /// `1.5 KiB (1536 bytes)`-style sizes.
    static func formatBytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@ (%d bytes)", value, units[unit], count)
    }
}
