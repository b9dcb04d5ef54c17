import Checkpoint
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What convert, extract and rename do with what sits at OUT: a symlink, standard output (`-`,
/// `/dev/stdout`), a directory; and what a signal in the middle of a write leaves behind.
@Suite("ckpt-tool output paths")
struct OutputPathTests {
    let directory = Tool.temporaryDirectory()

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    }

    func fileType(_ target: String) -> mode_t {
        var info = stat()
        guard lstat(target, &info) == 0 else { return 0 }
        return info.st_mode & S_IFMT
    }

    struct RawResult {
        var status: Int32
        var stdout: Data
        var stderr: String
    }

    /// Runs the tool in `directory`, its stdout a pipe (read while it runs) or a regular file.
    func run(_ arguments: [String], stdoutIsAPipe: Bool) throws -> RawResult {
        let process = Process()
        process.executableURL = Tool.binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let errors = Pipe()
        process.standardError = errors
        var stdout = Data()
        if stdoutIsAPipe {
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            try? output.fileHandleForWriting.close()
            stdout = output.fileHandleForReading.readDataToEndOfFile()
        } else {
            let file = directory.appendingPathComponent("../stdout-\(UUID().uuidString)").standardized
            try Data().write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let handle = try FileHandle(forWritingTo: file)
            process.standardOutput = handle
            try process.run()
            process.waitUntilExit()
            try handle.close()
            stdout = try Data(contentsOf: file)
        }
        try? errors.fileHandleForWriting.close()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return RawResult(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
    }

    func load(_ data: Data, as name: String) throws -> StateValue {
        let copy = Tool.temporaryDirectory().appendingPathComponent(name)
        try data.write(to: copy)
        return try StateValue(contentsOf: copy)
    }

    @Test(arguments: [(["convert", Tool.sample, "-", "--format", "ckpt"], true), (["convert", Tool.sample, "/dev/stdout", "--format", "safetensors"], false)])
    func convertToStandardOutputWritesOnlyTheFile(arguments: [String], stdoutIsAPipe: Bool) throws {
        let linkBefore = fileType("/dev/stdout")
        let result = try run(arguments, stdoutIsAPipe: stdoutIsAPipe)
        #expect(result.status == 0, "\(result.stderr)")
        let format = arguments.last!
        let written = try load(result.stdout, as: "copy." + format)
        #expect(written == (try StateValue(contentsOf: URL(fileURLWithPath: Tool.sample))))
        #expect(result.stderr.contains("→ \(arguments[2]) (\(format)"), "\(result.stderr)")
        #expect(try listing().isEmpty, "nothing named - or anything else is created")
        #expect(fileType("/dev/stdout") == linkBefore)
    }

    @Test(arguments: [true, false])
    func extractToDashWritesTheNPYToStandardOutput(stdoutIsAPipe: Bool) throws {
        let result = try run(["extract", Tool.sample, "model/0.weight", "-"], stdoutIsAPipe: stdoutIsAPipe)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.starts(with: [0x93] + Array("NUMPY".utf8)))
        #expect(result.stdout.count == 128 + 16 * 8 * 4)
        #expect(result.stderr.contains("model/0.weight → -"), "\(result.stderr)")
        #expect(try listing().isEmpty)
    }

    @Test func renameToDashPutsTheReportOnStderr() throws {
        let map = Tool.temporaryDirectory().appendingPathComponent("map.json")
        try Data(#"{"rules": [{"prefix": "0.", "to": "first."}]}"#.utf8).write(to: map)
        let result = try run(["rename", Tool.sample, "-", "--map", map.path, "--format", "pt"], stdoutIsAPipe: true)
        #expect(result.status == 0, "\(result.stderr)")
        guard case .dict(let model)? = try load(result.stdout, as: "renamed.pt").value(atPath: "model") else {
            Issue.record("no model in the output")
            return
        }
        #expect(model["first.weight"] != nil && model["0.weight"] == nil)
        #expect(result.stderr.contains("model keys"), "\(result.stderr)")
        #expect(try listing().isEmpty)
    }

    @Test func dashWithoutFormatIsAUsageError() throws {
        let result = try run(["convert", Tool.sample, "-"], stdoutIsAPipe: true)
        #expect(result.status == 64)
        #expect(result.stderr.contains("needs --format"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func symlinkOutputKeepsTheLinkAndReplacesItsTarget() throws {
        try Data("old run".utf8).write(to: URL(fileURLWithPath: path("run_100.pt")))
        try FileManager.default.createSymbolicLink(atPath: path("latest.pt"), withDestinationPath: "run_100.pt")
        let result = try run(["convert", Tool.sample, "latest.pt"], stdoutIsAPipe: true)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(fileType(path("latest.pt")) == S_IFLNK)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: path("latest.pt")) == "run_100.pt")
        #expect(try StateValue(contentsOf: URL(fileURLWithPath: path("run_100.pt"))) == StateValue(contentsOf: URL(fileURLWithPath: Tool.sample)))
        #expect(try listing() == ["latest.pt", "run_100.pt"])
    }

    /// A new file gets the mode a plain `open(O_CREAT, 0666)` would: 0666 less the umask, which the
    /// shell sets before it runs the tool (the temp file is created 0600 and changed before the rename).
    @Test(arguments: [0o022, 0o027, 0o077, 0o002, 0o000, 0o137] as [mode_t])
    func newFileModeIsTheUmasksAsAPlainCreateGivesIt(mask: mode_t) throws {
        let output = path("out-\(String(mask, radix: 8)).pt")
        let result = try Tool.run(
            executable: URL(fileURLWithPath: "/bin/sh"),
            ["-c", "umask \(String(mask, radix: 8)) && exec \"$0\" convert \"$1\" \"$2\"", Tool.binary.path, Tool.sample, output])
        #expect(result.status == 0, "\(result.stderr)")
        var info = stat()
        try #require(stat(output, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o666 & ~mask, "mode \(String(info.st_mode & 0o777, radix: 8)) under umask \(String(mask, radix: 8))")
    }

    @Test func directoryOutputIsRefused() throws {
        try FileManager.default.createDirectory(atPath: path("out.pt"), withIntermediateDirectories: false)
        let result = try run(["convert", Tool.sample, path("out.pt")], stdoutIsAPipe: true)
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(path("out.pt")): cannot write over a directory"), "\(result.stderr)")
        #expect(try listing() == ["out.pt"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: path("out.pt")).isEmpty)
    }

    /// Starts the tool with stdout and stderr on /dev/null, every signal unblocked and SIGINT and
    /// SIGTERM at their default action, as a shell starts it. Foundation's `Process` would pass on
    /// the test runner's signal mask, in which both are blocked.
    static func spawn(_ arguments: [String]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([Tool.binary.path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let error = posix_spawn(&pid, Tool.binary.path, &actions, &attributes, argv, environ)
        guard error == 0 else { throw POSIXError(POSIXErrorCode(rawValue: error) ?? .EINVAL) }
        return pid
    }

    /// A 192 MiB checkpoint, written once for the signal tests.
    static let largeInput: Result<String, any Error> = Result {
        let url = TemporaryDirectory.processRoot.appendingPathComponent("large-\(UUID().uuidString).pt")
        var weights = StateDict()
        for index in 0..<12 {
            weights[.string("layer\(index).weight")] = .tensor(try Tensor(zeros: .float32, shape: [4 << 20]))
        }
        try StateValue.dict(weights).write(to: url, options: SaveOptions(durable: false))
        return url.path
    }

    /// SIGINT or SIGTERM while convert writes: the process dies of the signal, its temp file is
    /// gone and the old output is intact. The signal is sent as soon as the temp file appears, so
    /// the test waits for nothing but the write itself.
    @Test(arguments: [SIGINT, SIGTERM])
    func signalDuringAWriteLeavesNoTemporaryFile(signal: Int32) throws {
        let input = try Self.largeInput.get()
        let output = path("out.pt")
        try Data("old output".utf8).write(to: URL(fileURLWithPath: output))
        let pid = try Self.spawn(["convert", input, output, "--no-verify"])
        var sawTemporaryFile = false
        var status: Int32 = 0
        var exited = false
        let deadline = Date().addingTimeInterval(20)
        while !sawTemporaryFile, Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid {
                exited = true
                break
            }
            if try listing().contains(where: { $0.hasPrefix(".out.pt.tmp-") }) {
                sawTemporaryFile = true
                kill(pid, signal)
            } else {
                usleep(500)
            }
        }
        if !exited {
            if !sawTemporaryFile { kill(pid, SIGKILL) }
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        }
        #expect(sawTemporaryFile, "convert finished before its temporary file was seen")
        // WIFSIGNALED and WTERMSIG: the low seven bits are the signal that ended it.
        #expect(status & 0x7f == signal, "wait status \(status)")
        #expect(try listing() == ["out.pt"])
        #expect(try String(contentsOfFile: output, encoding: .utf8) == "old output")
    }
}
