import Checkpoint
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the tool writes, and whether colors are welcome there.
enum Terminal {
    /// An unbuffered standard stream.
    struct Stream {
        let descriptor: Int32

        func write(_ text: String) {
            var text = text
            text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
        }

        func write(_ buffer: UnsafeRawBufferPointer) {
            // A closed pipe or full disk under a terminal message has no one left to tell.
            try? FileIO.writeAll(descriptor, buffer)
        }
    }

    static let standardOutput = Stream(descriptor: STDOUT_FILENO)
    static let standardError = Stream(descriptor: STDERR_FILENO)

    /// True when standard output is a terminal, `NO_COLOR` is unset or empty (no-color.org), and
    /// `TERM` is not `dumb`.
    static var standardOutputWantsColor: Bool {
        let environment = ProcessInfo.processInfo.environment
        if let noColor = environment["NO_COLOR"], !noColor.isEmpty { return false }
        if environment["TERM"] == "dumb" { return false }
        return isatty(STDOUT_FILENO) != 0
    }

    /// ANSI styling that collapses to plain text when disabled.
    struct Style {
        let enabled: Bool

        private func wrap(_ text: String, _ code: String) -> String {
            enabled ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
        }

        func key(_ text: String) -> String { wrap(text, "1") }
        func type(_ text: String) -> String { wrap(text, "36") }
        func tensor(_ text: String) -> String { wrap(text, "32") }
        func value(_ text: String) -> String { wrap(text, "33") }
        func dim(_ text: String) -> String { wrap(text, "2") }
        func good(_ text: String) -> String { wrap(text, "32;1") }
        func bad(_ text: String) -> String { wrap(text, "31;1") }
    }
}
