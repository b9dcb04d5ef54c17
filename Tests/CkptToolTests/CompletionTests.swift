import Foundation
import Testing

private let shells: [(shell: String, executable: String, syntaxCheck: [String])] = [
    ("bash", "/usr/bin/bash", ["-n"]), ("zsh", "/usr/bin/zsh", ["-n"]), ("fish", "/usr/bin/fish", ["--no-execute"]),
]

private func installed(_ shell: String) -> Bool {
    shells.first { $0.shell == shell }.map { FileManager.default.isExecutableFile(atPath: $0.executable) } ?? false
}

@Suite("ckpt-tool completion scripts and version")
struct CompletionTests {
    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScriptNamesEverySubcommand(_ shell: String) throws {
        let result = try Tool.run(["--generate-completion-script", shell])
        #expect(result.status == 0, "\(result.stderr)")
        for subcommand in ["inspect", "convert", "diff", "verify", "runs", "ls", "latest", "prune", "reconcile"] {
            #expect(result.stdout.contains(subcommand), "\(shell) script lacks \(subcommand)")
        }
        for option in ["json", "depth", "select", "strip-prefix", "add-prefix", "rtol", "atol", "equal-nan", "keep-last", "keep-best", "best", "rebuild", "dry-run"] {
            // fish names a long option without its dashes.
            let spelled = shell == "fish" ? "-l '\(option)'" : "--\(option)"
            #expect(result.stdout.contains(spelled), "\(shell) script lacks \(spelled)")
        }
    }

    /// Each script parses in its own shell; a shell that is not installed shows as a skipped test.
    @Test(.enabled(if: installed("bash"), "bash is not installed: the bash script's syntax is NOT checked"))
    func bashScriptParses() throws { try checkSyntax("bash") }

    @Test(.enabled(if: installed("zsh"), "zsh is not installed: the zsh script's syntax is NOT checked"))
    func zshScriptParses() throws { try checkSyntax("zsh") }

    @Test(.enabled(if: installed("fish"), "fish is not installed: the fish script's syntax is NOT checked"))
    func fishScriptParses() throws { try checkSyntax("fish") }

    /// The bash script completes for real: `ckpt-tool ve<TAB>` and `ckpt-tool diff --r<TAB>`.
    @Test(.enabled(if: installed("bash"), "bash is not installed: bash completion is NOT exercised"))
    func bashCompletesSubcommandsAndOptions() throws {
        let script = Tool.temporaryDirectory().appendingPathComponent("ckpt-tool.bash")
        try Data(try Tool.run(["--generate-completion-script", "bash"]).stdout.utf8).write(to: script)
        func complete(_ words: [String]) throws -> String {
            let line = words.joined(separator: " ")
            let program = """
                source '\(script.path)'
                COMP_WORDS=(\(words.map { "'\($0)'" }.joined(separator: " "))); COMP_CWORD=\(words.count - 1)
                COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
                _ckpt-tool ckpt-tool '\(words.last ?? "")' '\(words.dropLast().last ?? "")'
                echo "${COMPREPLY[@]}"
                """
            let path = Tool.binary.deletingLastPathComponent().path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")
            let result = try Tool.run(executable: URL(fileURLWithPath: "/usr/bin/bash"), ["-c", program], environment: ["PATH": path])
            #expect(result.status == 0, "\(result.stderr)")
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try complete(["ckpt-tool", "ve"]) == "verify")
        #expect(try complete(["ckpt-tool", "diff", "--r"]) == "--rtol")
        #expect(try complete(["ckpt-tool", "inspect", "--d"]) == "--depth")
        #expect(try complete(["ckpt-tool", "rec"]) == "reconcile")
        #expect(try complete(["ckpt-tool", "prune", "--keep-l"]) == "--keep-last")
        #expect(try complete(["ckpt-tool", "latest", "--b"]) == "--best")
    }

    private func checkSyntax(_ shell: String) throws {
        let entry = try #require(shells.first { $0.shell == shell })
        let script = Tool.temporaryDirectory().appendingPathComponent("ckpt-tool.\(shell)")
        try Data(try Tool.run(["--generate-completion-script", shell]).stdout.utf8).write(to: script)
        let check = try Tool.run(executable: URL(fileURLWithPath: entry.executable), entry.syntaxCheck + [script.path])
        #expect(check.status == 0, "\(check.stderr)")
    }

    @Test func unknownShellIsAUsageError() throws {
        let result = try Tool.run(["--generate-completion-script", "powershell"])
        #expect(result.status == 64)
    }

    @Test func versionIsPrinted() throws {
        let result = try Tool.run(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(result.stdout)")
    }
}
