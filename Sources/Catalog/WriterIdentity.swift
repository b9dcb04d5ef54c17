import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who is writing a checkpoint, recorded in its `writing` row so that reconcile can tell a save
/// in progress from one whose process died: `host boot-id pid start-time`.
///
/// The boot id and the process's start time (Linux) keep a pid reused after a crash, a reboot or
/// a long time from passing for the dead writer.
struct WriterIdentity: Equatable, Sendable {
    var host: String
    var boot: String
    var pid: Int32
    var start: String

    /// This process.
    static let current = WriterIdentity(host: hostName(), boot: bootID(), pid: getpid(), start: startTime(of: getpid()) ?? "-")

    var text: String { "\(host) \(boot) \(pid) \(start)" }

    init(host: String, boot: String, pid: Int32, start: String) {
        self.host = host
        self.boot = boot
        self.pid = pid
        self.start = start
    }

    init?(text: String) {
        let parts = text.split(separator: " ").map(String.init)
        guard parts.count == 4, let pid = Int32(parts[2]) else { return nil }
        self.init(host: parts[0], boot: parts[1], pid: pid, start: parts[3])
    }

    /// Whether the writer may still be running. A writer on another host is assumed alive (its
    /// process cannot be checked from here).
    var mayBeAlive: Bool {
        guard host == Self.current.host else { return true }
        guard boot == Self.current.boot else { return false }
        if self == Self.current { return true }
        #if os(Linux)
        guard let start = Self.startTime(of: pid) else { return false }
        return start == self.start
        #else
        return kill(pid, 0) == 0 || errno == EPERM
        #endif
    }

    private static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name.replacingOccurrences(of: " ", with: "_")
    }

    private static func bootID() -> String {
        #if os(Linux)
        if let text = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8) {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #endif
        return "-"
    }

    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22), or nil when
    /// there is no such process or it is a zombie (dead, not yet reaped).
    static func startTime(of pid: Int32) -> String? {
        #if os(Linux)
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name, which may itself hold spaces and parentheses.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return String(fields[19])
        #else
        return kill(pid, 0) == 0 || errno == EPERM ? "-" : nil
        #endif
    }
}
