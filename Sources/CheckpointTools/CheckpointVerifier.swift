import Checkpoint
import Foundation

/// The outcome of ``CheckpointVerifier/verify(path:)``: every check that ran, in order.
public struct VerificationReport: Sendable {
    /// How one check ended.
    public enum Status: String, Sendable {
        case passed, failed, skipped
        /// Problems that do not make the file wrong for its format (an unaligned plain torch archive,
        /// a pickle that needs trust to load in torch).
        case warning
    }

    /// One named check and the problems it found.
    public struct Check: Sendable {
        /// A stable identifier (`crc32`, `manifest-vs-pickle`); see ``CheckpointVerifier``.
        public var name: String
        /// Passed, failed, warning or skipped.
        public var status: Status
        /// What was checked, or why the check was skipped.
        public var detail: String
        /// Each problem found, naming the entry or key path; empty when the check passed or was skipped.
        public var failures: [CheckpointError]
    }

    /// The file as given.
    public var file: String
    /// The container, as found from the contents (`pt` for a zip archive without a manifest).
    public var format: CheckpointFormat
    /// The checks in the order they ran, skipped ones included.
    public var checks: [Check]
    /// What `torch.load` needs to read the file (`weights-only` and `devices` checks); nil for
    /// safetensors and for a pickle that could not be read.
    public var torchLoad: TorchLoadAdvice? = nil
    /// The distinct storage locations the pickle names (`cpu`, `cuda:0`, `mps`), in the order the
    /// tree first uses them; empty for safetensors and for a pickle that could not be read.
    public var devices: [String] = []
    /// The caller's `__metadata__` string pairs of a safetensors file, in header order (without
    /// ckpt's `ckpt.tree`); nil for an archive, a header without `__metadata__`, or one that cannot be read.
    public var metadata: OrderedMap<String, String>? = nil
    /// The key paths of the tensors that view each storage record, by entry name
    /// (`archive/data/3`), in tree order: what a failure about that entry damages. Empty when
    /// neither the pickle nor the manifest could be read.
    public var storageTensors: [String: [[StateKey]]] = [:]

    /// True when no check failed: the file is not damaged (warnings allowed).
    public var passed: Bool { !checks.contains { $0.status == .failed } }

    /// True when a check ended in a warning (needs trust to load in torch, unaligned records).
    public var hasWarnings: Bool { checks.contains { $0.status == .warning } }

    /// ``passed``, and with `strict` also no warning.
    ///
    /// - Parameter strict: Count warnings as failures (`ckpt-tool verify --strict`).
    public func passed(strict: Bool) -> Bool { passed && !(strict && hasWarnings) }
}

/// Checks a whole checkpoint file, reading every byte: what `verify` in the CLI reports.
///
/// Zip archives (`.ckpt`, `.pt`) get these checks, in order:
/// - `zip-directory`: this library's parse of the central directory and every local header
///   (offsets, overlaps, names, sizes). If it fails, nothing else can run.
/// - `zip-consistency`: libzip re-opens the file with `ZIP_CHECKCONS` and must read every entry
///   as this library does (an independent second opinion).
/// - `crc32`: every entry's bytes against its CRC-32 (inflating deflated entries).
/// - `pickle`: `data.pkl` loads with the restricted unpickler, and every storage it names exists
///   with the size the pickle gives it. Objects outside the weights-only allow-list load as
///   placeholders (``PickledObject``): they do not make the file damaged.
/// - `weights-only`: whether `torch.load(f, weights_only=True)` reads the pickle. When it does not
///   (globals outside torch's allow-list, a protocol above 2) the check is a `warning`, not a
///   failure, listing every such global with the key paths where it occurs; ``VerificationReport/torchLoad``
///   has the `torch.load` call that would work (see ``TorchLoadAdvice``). Skipped when the
///   pickle cannot be read.
/// - `devices`: the device each storage was saved on (the pickle's location tag). A storage saved
///   elsewhere than `cpu` (`cuda:0`, `mps`) is a `warning`: `torch.load` refuses it on a machine
///   without that device unless given `map_location`. Skipped when the pickle cannot be read.
/// - `manifest` (ckpt only): `manifest.json` parses, and each storage record names an entry with
///   the recorded size, CRC-32 and data offset.
/// - `manifest-vs-pickle` (ckpt only): the manifest's tree equals the pickle's (types, keys and
///   order, scalar values, tensor dtype, shape, strides, offset, flags), and each tensor views the
///   same storage record in both.
/// - `alignment`: every stored (not deflated) storage record's data starts at a multiple of the
///   archive's `.storage_alignment` (64 in torch and ckpt archives). ckpt promises it, so a
///   misaligned record fails a `.ckpt`; torch.load reads misaligned records (only zero-copy mapping
///   needs alignment), so in a plain torch archive it is a `warning`. Skipped when the archive
///   declares no alignment and has no manifest.
///
/// safetensors files get `safetensors-header` (the header and every tensor's offsets and size,
/// as the safetensors library validates them); the format has no checksums to check. Their
/// `__metadata__` is in ``VerificationReport/metadata``.
///
/// A DCP directory or a Hugging Face sharded checkpoint gets `layout`, `items` or `shards`, and
/// `crc32` (see `CheckpointVerifier+Layout.swift`).
///
/// A problem with a storage record (its CRC-32, its size, its alignment) names the entry
/// (`archive/data/3`) and, in its message, the tensors that view it (`model/fc1.weight`), as read
/// from the pickle or else the manifest.
///
/// Files in torch's pre-1.6 format get `legacy` (the five pickles, the storage key list, and every
/// storage's element count and data, as ``Checkpoint/StateValue/init(contentsOf:options:)`` reads
/// them; the format has no checksums) and `weights-only`.
public enum CheckpointVerifier {
    /// The alignment ckpt archives promise for storage data.
    public static let ckptAlignment = 64

    /// Runs every check on a file.
    ///
    /// - Parameters:
    ///   - url: The checkpoint.
    ///   - progress: Called (from any thread) as entries' CRC-32s are checked, with the bytes
    ///     checked so far and the archive's total; a safetensors file has nothing to read beyond
    ///     its header and makes no calls.
    ///   - limits: The resource caps the file is read with; a file past one fails the check that
    ///     reads it with `.limitExceeded`.
    /// - Returns: The report; failures are in it, not thrown.
    /// - Throws: ``CheckpointError`` only when the file cannot be checked at all: it cannot be
    ///   opened (`.io`), is not a checkpoint (`.notRecognized`, `.truncated` for an empty file), or
    ///   is in a format this library does not read (`.unsupported`); `.invalidArgument` for limits
    ///   no reader can honour (see ``Checkpoint/ResourceLimits``).
    public static func verify(
        contentsOf url: URL, limits: ResourceLimits = .default,
        progress: (@Sendable (_ doneBytes: Int, _ totalBytes: Int) -> Void)? = nil
    ) throws -> VerificationReport {
        let path = url.path
        try limits.validate(file: path)
        if let layout = try CheckpointLayout.detect(url) { return verifyLayout(url, layout, limits: limits) }
        let file = try MappedFile(path: path)
        let format = try CheckpointFormat.detect(file)
        if format == .safetensors {
            do {
                let (tree, metadata) = try Safetensors.readWithMetadata(file, limits: limits)
                var count = 0
                tree.forEachTensor { _, _ in count += 1 }
                let check = VerificationReport.Check(
                    name: "safetensors-header", status: .passed,
                    detail: "header and the offsets of \(Plural.count(count, "tensor")) valid",
                    failures: [])
                return VerificationReport(file: path, format: .safetensors, checks: [check], metadata: metadata)
            } catch {
                let check = VerificationReport.Check(
                    name: "safetensors-header", status: .failed, detail: "header invalid", failures: [checkpointError(error, path)])
                return VerificationReport(file: path, format: .safetensors, checks: [check])
            }
        }
        if format == .legacy { return legacyReport(path, limits: limits) }
        var archive = ArchiveVerification(file: file, limits: limits, progress: progress)
        archive.run()
        return VerificationReport(
            file: path, format: archive.hasManifest ? .ckpt : .pt, checks: archive.checks, torchLoad: archive.torchLoad,
            devices: archive.devices, storageTensors: archive.storageTensors)
    }

    /// A file in torch's pre-1.6 format: `legacy` (its pickles, key list and storages read whole)
    /// and `weights-only`.
    private static func legacyReport(_ path: String, limits: ResourceLimits) -> VerificationReport {
        var report = VerificationReport(file: path, format: .legacy, checks: [])
        let tree: StateValue
        do {
            tree = try StateValue(contentsOf: URL(fileURLWithPath: path), options: LoadOptions(limits: limits))
            var tensors = 0
            tree.forEachTensor { _, _ in tensors += 1 }
            report.checks.append(.init(
                name: "legacy", status: .passed,
                detail: "magic number, protocol version, sys_info, the object's pickle (nothing executed), the storage key "
                    + "list and every storage's element count and data; \(Plural.count(tensors, "tensor"))", failures: []))
        } catch {
            report.checks.append(.init(name: "legacy", status: .failed, detail: "torch's pre-1.6 format", failures: [checkpointError(error, path)]))
            report.checks.append(.init(name: "weights-only", status: .skipped, detail: "the file could not be read", failures: []))
            return report
        }
        // The object's pickle has the protocol of the first (magic number) pickle: byte 1.
        let head = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: path)))?.readData(ofLength: 2)
        let version = head.flatMap { $0.count == 2 ? Int($0[$0.startIndex + 1]) : nil }
        let (check, advice) = weightsOnlyCheck(tree, pickleProtocol: version, file: path, pickle: "pickle 4 (the object)")
        report.checks.append(check)
        report.torchLoad = advice
        return report
    }

    /// Whether torch.load(weights_only=True) reads the pickle: a warning (not a failure) listing
    /// every global outside its allow-list when it does not.
    static func weightsOnlyCheck(
        _ tree: StateValue, pickleProtocol version: Int?, devices: [String] = [], file path: String, pickle entry: String
    ) -> (VerificationReport.Check, TorchLoadAdvice) {
        let advice = TorchLoadAdvice(tree: tree, pickleProtocol: version, devices: devices)
        guard !advice.loadsWeightsOnly else {
            return (.init(
                name: "weights-only", status: .passed,
                detail: "torch.load(f, weights_only=True) reads it: every global is on torch's allow-list", failures: []), advice)
        }
        var problems = advice.globals.map { global -> CheckpointError in
            let shown = global.paths.prefix(5).map { $0.isEmpty ? "(root)" : $0.pathString }
            let more = global.paths.count > 5 ? ", and \(global.paths.count - 5) more" : ""
            return CheckpointError(
                .forbiddenGlobal,
                "not on torch's weights-only allow-list" + (global.blocker.map { "; it \($0)" } ?? ""),
                file: path, path: shown.joined(separator: ", ") + more, found: global.name)
        }
        if let version, version >= 4 {
            problems.append(CheckpointError(
                .unsupported, "torch's weights-only unpickler reads pickle protocol 2 only",
                file: path, path: entry, found: "protocol \(version)"))
        }
        let count = advice.globals.count
        let detail = count == 0
            ? "torch.load(weights_only=True) refuses the pickle's protocol"
            : "\(Plural.count(count, "global")) outside torch.load(weights_only=True)'s allow-list: needs trust to load in torch"
        return (.init(name: "weights-only", status: .warning, detail: detail, failures: problems), advice)
    }

    static func checkpointError(_ error: any Error, _ path: String) -> CheckpointError {
        if let error = error as? CheckpointError { return error.inFile(path) }
        return CheckpointError(.corrupt, "\(error)", file: path)
    }
}

/// The checks on one zip archive, with the storages both trees share.
private struct ArchiveVerification {
    let file: MappedFile
    var checks: [VerificationReport.Check] = []
    var hasManifest = false
    var torchLoad: TorchLoadAdvice?
    var devices: [String] = []
    var storageTensors: [String: [[StateKey]]] = [:]
    private var reader: ZipReader?
    private var prefix = ""
    /// One storage object per data entry, so the manifest's and the pickle's trees can be compared by identity.
    private var storages: [String: Storage] = [:]
    /// The entry of every storage handed to a tree, stand-ins included (kept alive by
    /// ``standIns`` and the trees, so an identifier is never reused for another storage).
    private var entryNames: [ObjectIdentifier: String] = [:]
    /// Storages of the size a tree expects for records of another size (see ``storage(named:byteCount:reader:source:problems:)``).
    private var standIns: [Storage] = []
    /// The location tag the pickle gives each data entry.
    private var locations: [String: String] = [:]

    private let progress: (@Sendable (Int, Int) -> Void)?
    private let limits: ResourceLimits

    init(file: MappedFile, limits: ResourceLimits, progress: (@Sendable (Int, Int) -> Void)?) {
        self.file = file
        // Grown with the archive, as its readers grow them: the pickle check reads data.pkl itself.
        self.limits = limits.effective(fileBytes: file.count)
        self.progress = progress
    }

    private var path: String { file.path }

    private mutating func add(_ name: String, _ detail: String, _ failures: [CheckpointError]) {
        checks.append(.init(name: name, status: failures.isEmpty ? .passed : .failed, detail: detail, failures: failures))
    }

    private mutating func skip(_ name: String, _ reason: String) {
        checks.append(.init(name: name, status: .skipped, detail: reason, failures: []))
    }

    mutating func run() {
        let reader: ZipReader
        do {
            reader = try ZipReader(mapping: file, limits: limits)
        } catch {
            add("zip-directory", "central directory and local headers", [CheckpointVerifier.checkpointError(error, path)])
            for name in ["zip-consistency", "crc32", "pickle", "weights-only", "manifest", "manifest-vs-pickle", "alignment"] {
                skip(name, "the zip directory cannot be read")
            }
            return
        }
        self.reader = reader
        prefix = reader.entries.first.flatMap { entry in entry.name.firstIndex(of: "/").map { String(entry.name[...$0]) } } ?? ""
        hasManifest = reader.entry(named: prefix + TorchArchive.manifestName) != nil
        add("zip-directory", "\(Plural.count(reader.entries.count, "entry", "entries")), offsets, sizes and names valid", [])
        checkLibzip(reader)
        checkChecksums(reader)
        let pickleTree = checkPickle(reader)
        let manifestTree = checkManifest(reader)
        compare(manifestTree, pickleTree)
        checkAlignment(reader)
        if let tree = pickleTree ?? manifestTree { nameTensors(in: tree) }
    }

    /// Fills ``storageTensors`` from a tree and adds the tensors a storage record holds to each
    /// failure about that record, so a damaged entry is reported by what it damages.
    private mutating func nameTensors(in tree: StateValue) {
        tree.forEachTensor { path, tensor in
            if let name = entryNames[ObjectIdentifier(tensor.storage)] { storageTensors[name, default: []].append(path) }
        }
        for index in checks.indices {
            for failure in checks[index].failures.indices {
                guard let entry = checks[index].failures[failure].path, let paths = storageTensors[entry] else { continue }
                let shown = paths.prefix(5).map { $0.isEmpty ? "(root)" : $0.pathString }.joined(separator: ", ")
                let more = paths.count > 5 ? " and \(paths.count - 5) more" : ""
                checks[index].failures[failure].message += ", the storage of \(shown)\(more)"
            }
        }
    }

    private mutating func checkLibzip(_ reader: ZipReader) {
        do {
            try reader.checkConsistency()
            add("zip-consistency", "libzip (ZIP_CHECKCONS) reads all \(Plural.count(reader.entries.count, "entry", "entries")) the same way", [])
        } catch {
            add("zip-consistency", "libzip (ZIP_CHECKCONS) second opinion", [CheckpointVerifier.checkpointError(error, path)])
        }
    }

    /// Every entry's CRC-32, over both cores: this is the part that reads the whole file.
    private mutating func checkChecksums(_ reader: ZipReader) {
        let entries = reader.entries
        let order = entries.indices.sorted { entries[$0].compressedSize > entries[$1].compressedSize }
        let total = entries.reduce(0) { $0 + $1.uncompressedSize }
        let done = ByteCounter()
        let progress = progress
        let results = ParallelWork.map(count: entries.count, order: order) { index in
            let entry = entries[index]
            defer { progress?(done.add(entry.uncompressedSize), total) }
            // A deflated entry is inflated and checked at once; the archive's caps bound its size.
            let storage = try reader.storage(for: entry, verifyCRC: true)
            try storage.verify()
            // Checked bytes leave memory, so verifying a file keeps little of it resident.
            storage.releaseMappedPages()
        }
        let errors = results.compactMap { result -> (any Error)? in
            if case .failure(let error) = result { return error }
            return nil
        }
        let bytes = entries.reduce(0) { $0 + $1.uncompressedSize }
        add("crc32", "\(Plural.count(entries.count, "entry", "entries")), \(Plural.count(bytes, "byte"))", errors.map { CheckpointVerifier.checkpointError($0, path) })
    }

    /// The storage of a data entry, shared by both trees.
    ///
    /// A record whose size differs from what the tree says is a problem added to `problems`, not
    /// thrown, so the tree still loads and the problem can name its tensors: the tree gets a
    /// stand-in of the size it expects, a window on the mapped file that nothing reads (the
    /// checks compare metadata, not elements). Only a size beyond the whole file is thrown.
    private mutating func storage(
        named name: String, byteCount: Int, reader: ZipReader, source: String, problems: inout [CheckpointError]
    ) throws -> Storage {
        guard let entry = reader.entry(named: name) else {
            throw CheckpointError(.missingEntry, "storage record named by the \(source) is missing", file: path, path: name)
        }
        guard entry.uncompressedSize == byteCount else {
            let problem = CheckpointError(
                .corrupt, "storage record size differs from the \(source)", file: path, path: name,
                expected: "\(byteCount) bytes", found: "\(entry.uncompressedSize) bytes")
            guard byteCount <= file.count else { throw problem }
            problems.append(problem)
            if let known = storages[name], known.byteCount == byteCount { return known }
            let standIn = try Storage(mapping: file, offset: 0, byteCount: byteCount)
            standIns.append(standIn)
            if storages[name] == nil { storages[name] = standIn }
            entryNames[ObjectIdentifier(standIn)] = name
            return standIn
        }
        if let known = storages[name], known.byteCount == byteCount { return known }
        let storage = try reader.storage(for: entry, verifyCRC: false)
        storages[name] = storage
        entryNames[ObjectIdentifier(storage)] = name
        return storage
    }

    private mutating func checkPickle(_ reader: ZipReader) -> StateValue? {
        guard let entry = reader.entry(named: prefix + "data.pkl") else {
            add("pickle", "data.pkl", [CheckpointError(.missingEntry, "no pickle in the archive", file: path, expected: prefix + "data.pkl")])
            skip("weights-only", "no pickle")
            return nil
        }
        var problems: [CheckpointError] = []
        do {
            let bytes = try reader.contents(of: entry)
            let tree = try Unpickler.load(bytes, file: path, limits: limits) { reference in
                let name = "\(prefix)data/\(reference.key)"
                locations[name] = reference.location
                return try storage(named: name, byteCount: reference.byteCount, reader: reader, source: "pickle", problems: &problems)
            }
            var tensors = 0
            tree.forEachTensor { _, _ in tensors += 1 }
            add("pickle", "\(entry.name) loads (nothing executed); \(Plural.count(tensors, "tensor")), storage records present and sized", problems)
            let devices = deviceOrder(tree)
            if reader.entry(named: prefix + "constants.pkl") != nil {
                torchLoad = .torchScript
                checks.append(.init(
                    name: "weights-only", status: .warning,
                    detail: "a TorchScript archive: torch.load(weights_only=True) refuses it; torch.jit.load runs its code",
                    failures: []))
            } else {
                checkWeightsOnly(tree, pickle: bytes, entry: entry.name, devices: devices)
            }
            checkDevices(tree, devices: devices)
            return tree
        } catch {
            add("pickle", entry.name, problems + [CheckpointVerifier.checkpointError(error, path)])
            skip("weights-only", "the pickle could not be read")
            skip("devices", "the pickle could not be read")
            return nil
        }
    }

    /// The distinct locations of the tree's storages, in the order the tree first uses them.
    private mutating func deviceOrder(_ tree: StateValue) -> [String] {
        var order: [String] = []
        tree.forEachTensor { _, tensor in
            guard let name = entryNames[ObjectIdentifier(tensor.storage)], let location = locations[name] else { return }
            if !order.contains(location) { order.append(location) }
        }
        devices = order
        return order
    }

    /// Where each storage was saved: a warning for any device but the CPU, which torch.load
    /// refuses where that device is absent ("Storage device not recognized: mps") without `map_location`.
    private mutating func checkDevices(_ tree: StateValue, devices: [String]) {
        let elsewhere = devices.filter { $0 != "cpu" }
        guard !elsewhere.isEmpty else {
            let detail = devices.isEmpty
                ? "no storage records" : "\(Plural.count(locations.count, "storage record")) saved on " + devices.joined(separator: ", ")
            add("devices", detail, [])
            return
        }
        var counts: [String: Int] = [:]
        for location in locations.values { counts[location, default: 0] += 1 }
        let saved = devices.map { "\(Plural.count(counts[$0] ?? 0, "storage record")) saved on \($0)" }.joined(separator: ", ")
        let absent = elsewhere.joined(separator: " or ")
        checks.append(.init(
            name: "devices", status: .warning,
            detail: "\(saved): torch.load(f) fails where \(absent) is absent; map_location=\"cpu\" loads it anywhere",
            failures: []))
    }

    private mutating func checkWeightsOnly(_ tree: StateValue, pickle: [UInt8], entry: String, devices: [String]) {
        let version = pickle.count >= 2 && pickle[0] == 0x80 ? Int(pickle[1]) : nil
        let (check, advice) = CheckpointVerifier.weightsOnlyCheck(tree, pickleProtocol: version, devices: devices, file: path, pickle: entry)
        torchLoad = advice
        checks.append(check)
    }

    private mutating func checkManifest(_ reader: ZipReader) -> StateValue? {
        guard let entry = reader.entry(named: prefix + TorchArchive.manifestName) else {
            skip("manifest", "no \(TorchArchive.manifestName): a plain torch archive")
            return nil
        }
        var problems: [CheckpointError] = []
        do {
            let bytes = try reader.contents(of: entry, limit: .maximumJSONBytes)
            let decoded = try Manifest.decode(bytes, file: path, entry: entry.name, limits: reader.limits) { record in
                let storage = try storage(
                    named: record.record, byteCount: record.byteCount, reader: reader, source: "manifest", problems: &problems)
                if let blob = reader.entry(named: record.record) {
                    if record.record != "\(prefix)data/\(record.key)" {
                        problems.append(CheckpointError(
                            .corrupt, "manifest record name does not match its key", file: path, path: record.record,
                            expected: "\(prefix)data/\(record.key)", found: record.record))
                    }
                    if blob.crc32 != record.crc32 {
                        problems.append(CheckpointError(
                            .corrupt, "storage record CRC-32 differs from the manifest", file: path, path: record.record,
                            expected: CRC32.hex(record.crc32), found: CRC32.hex(blob.crc32)))
                    }
                    if blob.dataOffset != record.dataOffset {
                        problems.append(CheckpointError(
                            .corrupt, "storage record data offset differs from the manifest", file: path, path: record.record,
                            expected: "\(record.dataOffset)", found: "\(blob.dataOffset)"))
                    }
                }
                return storage
            }
            add("manifest", "\(entry.name) parses; \(Plural.count(decoded.manifest.storages.count, "storage record")), each matching its entry (size, CRC-32, offset)", problems)
            return decoded.manifest.root
        } catch {
            add("manifest", entry.name, problems + [CheckpointVerifier.checkpointError(error, path)])
            return nil
        }
    }

    private mutating func compare(_ manifestTree: StateValue?, _ pickleTree: StateValue?) {
        guard hasManifest else {
            skip("manifest-vs-pickle", "no manifest")
            return
        }
        guard let manifestTree, let pickleTree else {
            skip("manifest-vs-pickle", "the manifest or the pickle could not be read")
            return
        }
        var failures: [CheckpointError] = []
        do {
            let diff = try StateDiff.compare(manifestTree, pickleTree, comparesElements: false)
            for difference in diff.differences {
                failures.append(CheckpointError(
                    .corrupt, "manifest and pickle disagree: \(difference.kind.rawValue)", file: path, path: difference.path.pathString,
                    expected: difference.new.map { "\($0) (pickle)" } ?? "nothing (pickle)", found: difference.old.map { "\($0) (manifest)" } ?? "nothing (manifest)"))
            }
            if failures.isEmpty {
                var manifestViews: [([StateKey], Storage)] = []
                manifestTree.forEachTensor { manifestViews.append(($0, $1.storage)) }
                var index = 0
                pickleTree.forEachTensor { keyPath, tensor in
                    defer { index += 1 }
                    guard index < manifestViews.count, manifestViews[index].1 !== tensor.storage else { return }
                    failures.append(CheckpointError(
                        .corrupt, "manifest and pickle give the tensor different storage records", file: path, path: keyPath.pathString,
                        expected: recordName(of: tensor.storage).map { "\($0) (pickle)" },
                        found: recordName(of: manifestViews[index].1).map { "\($0) (manifest)" }))
                }
            }
        } catch {
            failures.append(CheckpointVerifier.checkpointError(error, path))
        }
        add("manifest-vs-pickle", "trees, scalar values, tensor metadata and storage records agree", failures)
    }

    private func recordName(of storage: Storage) -> String? {
        storages.first { $0.value === storage }?.key
    }

    private mutating func checkAlignment(_ reader: ZipReader) {
        var alignment: Int?
        if let entry = reader.entry(named: prefix + ".storage_alignment") {
            let text = entry.uncompressedSize <= 64
                ? (try? reader.contents(of: entry)).map { String(decoding: $0, as: UTF8.self) } : nil
            guard let text, let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), value > 0 else {
                add("alignment", ".storage_alignment", [CheckpointError(
                    .corrupt, "unreadable storage alignment", file: path, path: entry.name, expected: "a positive integer")])
                return
            }
            alignment = value
        } else if hasManifest {
            alignment = CheckpointVerifier.ckptAlignment
        }
        guard let alignment else {
            skip("alignment", "the archive declares no .storage_alignment")
            return
        }
        let blobs = reader.entries.filter { $0.name.hasPrefix(prefix + "data/") && $0.method == ZipFormat.methodStored }
        let problems = blobs.filter { $0.dataOffset % alignment != 0 }.map { entry in
            CheckpointError(
                .corrupt, "storage data is not aligned", file: path, path: entry.name,
                expected: "offset a multiple of \(alignment)", found: "offset \(entry.dataOffset)")
        }
        let detail = "\(Plural.count(blobs.count, "stored storage record")), each starting at a multiple of \(alignment) bytes"
        if !problems.isEmpty, !hasManifest {
            checks.append(.init(name: "alignment", status: .warning, detail: detail + " (torch.load reads misaligned records)", failures: problems))
        } else {
            add("alignment", detail, problems)
        }
    }
}

extension CheckpointVerifier {
    @available(*, deprecated, renamed: "verify(contentsOf:)")
    public static func verify(path: String) throws -> VerificationReport {
        try verify(contentsOf: URL(fileURLWithPath: path))
    }
}
