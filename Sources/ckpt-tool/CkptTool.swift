import ArgumentParser
import Checkpoint
import Foundation

@main
struct CkptTool: ParsableCommand {
    // Every command names itself: a name left to be derived from the type costs a reflection
    // (String(describing:)) each time the parser asks for it, dozens of times a run.
    static let configuration = CommandConfiguration(
        commandName: "ckpt-tool",
        abstract: "Inspect, convert and verify training checkpoints (.ckpt, .pt, .safetensors), and manage run directories.",
        version: "0.1.0",
        subcommands: [
            Inspect.self, Convert.self, Diff.self, Verify.self, Rename.self, Stats.self, Extract.self,
            Runs.self, Ls.self, Latest.self, Prune.self, Reconcile.self,
        ]
    )

    /// Parses and runs the command. Usage errors keep ArgumentParser's message and exit code (64);
    /// a failure while running prints `ckpt-tool: <error>` to stderr and exits 1, never a trap.
    /// No arguments at all is a usage error too: the help goes to stderr and the exit is 64, so a
    /// script that lost its arguments does not look as if it succeeded.
    static func main() {
        if CommandLine.arguments.count == 1 {
            FileHandle.standardError.write(Data((helpMessage() + "\n").utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            var runnable = command
            try runnable.run()
        } catch let exitCode as ExitCode {
            exit(withError: exitCode)
        } catch where exitCode(for: error) == .success {
            // `ckpt-tool SUBCOMMAND --help` parses into a help command whose run() throws the request.
            exit(withError: error)
        } catch {
            Terminal.report(error)
            Foundation.exit(1)
        }
    }
}
