import Foundation
import Testing

/// docs/API.md lists the public surface of every library product; this checks the list against the
/// symbol graph of the modules just built, so the document cannot drift from the code.
///
/// `CKPT_UPDATE_API=1 swift test --filter APIDocumentTests` rewrites the lists after a deliberate change.
struct APIDocumentTests {
    static let modules = ["Checkpoint", "CheckpointTools", "Optim", "Catalog"]

    @Test(.enabled(if: SymbolGraph.extractor != nil, "needs swift-symbolgraph-extract beside the Swift toolchain; NOT checked"))
    func docsListTheWholePublicSurface() throws {
        let document = try APIDocument(url: APIDocument.url)
        var updated = document
        for module in Self.modules {
            let actual = try SymbolGraph.publicDeclarations(of: module)
            #expect(!actual.isEmpty, "no public symbols extracted for \(module)")
            guard let documented = document.lists[module] else {
                Issue.record("docs/API.md has no `<!-- api:\(module) -->` list")
                continue
            }
            let missing = actual.filter { !documented.contains($0) }
            let stale = documented.filter { !actual.contains($0) }
            #expect(missing.isEmpty, "public in \(module) but not in docs/API.md:\n\(missing.joined(separator: "\n"))")
            #expect(stale.isEmpty, "in docs/API.md but not public in \(module):\n\(stale.joined(separator: "\n"))")
            updated.lists[module] = actual
        }
        if ProcessInfo.processInfo.environment["CKPT_UPDATE_API"] == "1" {
            try updated.write(to: APIDocument.url)
        }
    }
}

/// The generated lists inside docs/API.md, between `<!-- api:Module -->` and `<!-- /api -->`.
struct APIDocument {
    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/API.md")

    var text: String
    var lists: [String: [String]] = [:]

    init(url: URL) throws {
        text = try String(contentsOf: url, encoding: .utf8)
        var module: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("<!-- api:"), line.hasSuffix(" -->") {
                module = String(line.dropFirst("<!-- api:".count).dropLast(" -->".count))
                lists[module!] = []
            } else if line == "<!-- /api -->" {
                module = nil
            } else if let module, !line.hasPrefix("```"), !line.isEmpty {
                lists[module]!.append(String(line))
            }
        }
    }

    func write(to url: URL) throws {
        var out: [String] = []
        var skipping = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("<!-- api:"), line.hasSuffix(" -->") {
                let module = String(line.dropFirst("<!-- api:".count).dropLast(" -->".count))
                out.append(String(line))
                out.append("```swift")
                out.append(contentsOf: lists[module] ?? [])
                out.append("```")
                skipping = true
            } else if line == "<!-- /api -->" {
                skipping = false
                out.append(String(line))
            } else if !skipping {
                out.append(String(line))
            }
        }
        try out.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
    }
}

/// Public declarations read from `swift-symbolgraph-extract` run on the debug build's modules.
enum SymbolGraph {
    static let extractor: URL? = {
        let environment = ProcessInfo.processInfo.environment
        var candidates = (environment["PATH"] ?? "").split(separator: ":").map { URL(fileURLWithPath: String($0)) }
        candidates.append(URL(fileURLWithPath: "/usr/bin"))
        for directory in candidates {
            let tool = directory.appendingPathComponent("swift-symbolgraph-extract")
            if FileManager.default.isExecutableFile(atPath: tool.path) { return tool }
        }
        if let found = try? run(URL(fileURLWithPath: "/usr/bin/xcrun"), ["--find", "swift-symbolgraph-extract"]) {
            let path = found.trimmingCharacters(in: .whitespacesAndNewlines)
            if FileManager.default.isExecutableFile(atPath: path) { return URL(fileURLWithPath: path) }
        }
        return nil
    }()

    /// The directory of the running test binary: `.build/<triple>/debug`.
    static var buildDirectory: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/", !FileManager.default.fileExists(atPath: url.appendingPathComponent("Modules").path) {
            url.deleteLastPathComponent()
        }
        return url
    }

    /// One line per public declaration, `Owner.Path: declaration`, sorted; deprecated ones say so.
    static func publicDeclarations(of module: String) throws -> [String] {
        let tool = try #require(extractor)
        let build = buildDirectory
        let root = APIDocument.url.deletingLastPathComponent().deletingLastPathComponent()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-api-\(getpid())-\(module)")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: output) }

        var arguments = ["-module-name", module, "-I", build.appendingPathComponent("Modules").path,
                         "-target", targetTriple(build), "-minimum-access-level", "public", "-output-dir", output.path]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: build.path)) ?? [] where entry.hasSuffix(".build") {
            let map = build.appendingPathComponent(entry).appendingPathComponent("module.modulemap")
            if FileManager.default.fileExists(atPath: map.path) { arguments += ["-Xcc", "-fmodule-map-file=\(map.path)"] }
        }
        // C targets' headers and system-library module maps live under Sources/ (ours and checkouts').
        var sourceRoots = [root.appendingPathComponent("Sources")]
        let checkouts = root.appendingPathComponent(".build/checkouts")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: checkouts.path)) ?? [] {
            sourceRoots.append(checkouts.appendingPathComponent(name).appendingPathComponent("Sources"))
        }
        for sources in sourceRoots {
            for target in (try? FileManager.default.contentsOfDirectory(atPath: sources.path)) ?? [] {
                let directory = sources.appendingPathComponent(target)
                for include in [directory, directory.appendingPathComponent("include")]
                where FileManager.default.fileExists(atPath: include.path) {
                    arguments += ["-I", include.path]
                }
            }
        }
        _ = try run(tool, arguments)

        // Extensions of another module's types (CheckpointTools' `StateValue.filtered(by:)`) are in
        // `Module@Other.symbols.json` beside the module's own graph.
        let graphs = try FileManager.default.contentsOfDirectory(atPath: output.path)
            .filter { $0 == "\(module).symbols.json" || ($0.hasPrefix("\(module)@") && $0.hasSuffix(".symbols.json")) }
        let symbols = try graphs.flatMap { name in
            try JSONDecoder().decode(Graph.self, from: Data(contentsOf: output.appendingPathComponent(name))).symbols
        }
        return Set(symbols.compactMap { symbol -> String? in
            // Members the compiler synthesizes (Equatable's !=, hashValue, rawValue inits) have no
            // source location and are not ours to document.
            guard symbol.location != nil else { return nil }
            let declaration = symbol.declarationFragments.map(\.spelling).joined()
                .replacingOccurrences(of: "\n", with: " ")
            let owner = symbol.pathComponents.dropLast().joined(separator: ".")
            let deprecated = symbol.availability?.contains { $0.isUnconditionallyDeprecated == true || $0.deprecated != nil } == true
            return (owner.isEmpty ? "" : owner + ": ") + declaration + (deprecated ? "  // deprecated" : "")
        }).sorted()
    }

    static func targetTriple(_ build: URL) -> String {
        let triple = build.deletingLastPathComponent().lastPathComponent
        return triple.hasSuffix("macosx") ? triple + "14.0" : triple
    }

    @discardableResult
    static func run(_ tool: URL, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = tool
        process.arguments = arguments
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ExtractionError(message: "\(tool.lastPathComponent) exited \(process.terminationStatus): \(String(decoding: err, as: UTF8.self))")
        }
        return String(decoding: out, as: UTF8.self)
    }

    struct ExtractionError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    struct Graph: Decodable {
        var symbols: [Symbol]
    }

    struct Symbol: Decodable {
        struct Fragment: Decodable { var spelling: String }
        struct Location: Decodable { var uri: String }
        struct Availability: Decodable {
            var isUnconditionallyDeprecated: Bool?
            var deprecated: Version?
        }
        struct Version: Decodable { var major: Int }
        var pathComponents: [String]
        var declarationFragments: [Fragment]
        var location: Location?
        var availability: [Availability]?
    }
}
