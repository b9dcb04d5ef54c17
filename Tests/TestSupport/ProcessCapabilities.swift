import Foundation

/// What this process may do beyond its user's rights (Linux capabilities, from /proc/self/status).
public enum ProcessCapabilities {
    /// Whether the process may switch to another user and group (CAP_SETUID and CAP_SETGID), as a
    /// child that must run unprivileged does when the tests run as root.
    public static let canChangeUser: Bool = {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        let setgid: UInt64 = 1 << 6
        let setuid: UInt64 = 1 << 7
        return mask & (setgid | setuid) == setgid | setuid
    }()
}
