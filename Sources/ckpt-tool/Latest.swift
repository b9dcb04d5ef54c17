import ArgumentParser
import Catalog
import Checkpoint
import Foundation

/// `ckpt-tool latest DIR [--best METRIC [--mode min|max]] [--run NAME]`: the path of the checkpoint
/// to resume from.
struct Latest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latest",
        abstract: "Print the path of the newest (or best) checkpoint that verifies.",
        discussion: """
            Walks the run's checkpoints newest first (best first with --best) and prints the absolute path \
            of the first that is committed, is the file the catalog recorded, loads and verifies every \
            CRC-32; only that one is read in full. Each checkpoint passed over (missing, corrupt, still \
            writing, being deleted) is reported on stderr. Nothing is changed (`reconcile` repairs the \
            catalog). Without --run, the catalog's only run. Exit status: 0 a checkpoint was found, \
            1 none verifies (or there is none), 2 the directory or its catalog cannot be read.
            """
    )

    @OptionGroup var location: RunDirectoryArgument

    @Option(help: ArgumentHelp("Pick the best checkpoint by this metric instead of the newest.", valueName: "metric"))
    var best: String?

    @Option(help: "With --best: whether smaller (min, the default) or larger (max) values are better.")
    var mode: MetricMode?

    @Option(name: .customLong("run"), help: "The run (needed when the catalog has several).")
    var runName: String?

    func validate() throws {
        if mode != nil, best == nil { throw ValidationError("--mode needs --best METRIC") }
    }

    func run() throws {
        let run: String
        let search: VerifiedSearch
        do {
            run = try location.singleRun(named: runName)
            let manager = try location.open(run: run)
            defer { try? manager.close() }
            search = try manager.searchVerified(bestBy: best, mode: mode ?? .min)
        } catch {
            Terminal.report(error)
            throw ExitCode(2)
        }
        for skipped in search.skipped {
            Terminal.standardError.write(
                "ckpt-tool: skipped step \(skipped.entry.step) (\(skipped.entry.relativePath)): \(skipped.reason.rawValue)"
                    + (skipped.error.map { ": " + ErrorLine.text($0) } ?? "") + "\n")
        }
        guard let found = search.found else {
            let reason =
                search.candidates > 0 ? "none of the \(Plural.count(search.candidates, "checkpoint")) of run \(run) verifies"
                : best.map { "no committed checkpoint of run \(run) has the metric \($0)" } ?? "run \(run) has no checkpoint"
            Terminal.standardError.write("ckpt-tool: \(location.directory): \(reason)\n")
            throw ExitCode(1)
        }
        Terminal.standardOutput.write(found.url.path + "\n")
    }
}
