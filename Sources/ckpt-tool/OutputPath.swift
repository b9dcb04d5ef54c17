import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The OUT argument of convert, rename and extract. `-` is standard output; the library writes
/// `/dev/stdout` through descriptor 1 as it is (pipe, tty, socket or the file the shell opened),
/// so nothing named `-` is created. When OUT is standard output, by `-` or by any other name for
/// the same file, the command's report goes to stderr and stdout carries only the file.
enum OutputPath {
    /// The path to hand to the library.
    static func resolve(_ output: String) -> String { output == "-" ? "/dev/stdout" : output }

    /// True when writing `output` writes to standard output.
    static func isStandardOutput(_ output: String) -> Bool {
        if output == "-" || output == "/dev/stdout" || output == "/dev/fd/1" || output == "/proc/self/fd/1" { return true }
        var standard = stat()
        var named = stat()
        guard fstat(STDOUT_FILENO, &standard) == 0, stat(output, &named) == 0 else { return false }
        return standard.st_dev == named.st_dev && standard.st_ino == named.st_ino
    }

    /// Where the command's report goes: stdout, unless the output file goes there.
    static func reportStream(for output: String) -> Terminal.Stream {
        isStandardOutput(output) ? Terminal.standardError : Terminal.standardOutput
    }
}
