import ArgumentParser
import Catalog
import Foundation

/// The run directory argument of the catalog commands (runs, ls, latest, prune, reconcile), and
/// how they open its catalog: never creating a directory, and only reconcile creating a catalog.
struct RunDirectoryArgument: ParsableArguments {
    @Argument(help: "The run directory (it holds catalog.sqlite and checkpoints/<run>/).", completion: .directory)
    var directory: String

    /// The directory, which must exist.
    ///
    /// - Throws: ``CatalogError`` `.notFound` when it does not exist, `.invalidArgument` when it is a file.
    func existingURL() throws -> URL {
        let url = URL(fileURLWithPath: directory, isDirectory: true)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw CatalogError(.notFound, "no such directory", file: url.path)
        }
        guard isDirectory.boolValue else {
            throw CatalogError(.invalidArgument, "not a directory: give the run directory that holds catalog.sqlite", file: url.path)
        }
        return url
    }

    /// Opens one run of the catalog, creating nothing.
    ///
    /// - Throws: ``CatalogError`` `.notFound` when there is no catalog, or why it cannot be used.
    func open(run: String) throws -> CheckpointManager {
        try CheckpointManager(directory: existingURL(), run: run, options: .init(createIfMissing: false, pruneAfterSave: false))
    }

    /// The runs a command works on: the one named (which must be recorded), or every run, by name.
    ///
    /// - Throws: ``CatalogError`` `.notFound` for a run the catalog does not record, or as ``open(run:)``.
    func runs(named name: String?) throws -> [String] {
        let all = try CheckpointManager.runNames(in: existingURL())
        guard let name else { return all }
        guard all.contains(name) else {
            throw CatalogError(
                .notFound, "no run \"\(name)\" in the catalog (runs: \(all.isEmpty ? "none" : all.joined(separator: ", ")))",
                file: CheckpointManager.catalogURL(in: try existingURL()).path)
        }
        return [name]
    }

    /// The one run a command that names a single checkpoint works on: the one named, else the
    /// catalog's only run, else `main`.
    ///
    /// - Throws: ``CatalogError`` `.invalidArgument` when the catalog has several runs and none
    ///   is named, or as ``runs(named:)``.
    func singleRun(named name: String?) throws -> String {
        let runs = try runs(named: name)
        guard runs.count <= 1 else {
            throw CatalogError(
                .invalidArgument, "the catalog has \(runs.count) runs (\(runs.joined(separator: ", "))): choose one with --run",
                file: CheckpointManager.catalogURL(in: try existingURL()).path)
        }
        return runs.first ?? "main"
    }
}

/// Lets `--mode min|max` parse straight into the library's enum.
extension MetricMode: ExpressibleByArgument {}
