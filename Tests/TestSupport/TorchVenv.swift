import Foundation
import Testing

/// The torch venv the interop checks run in: `$CKPT_TORCH_VENV`, else `~/.cache/ckpt/venv-torch`.
///
/// A test that needs torch is enabled only with it, and says why when skipped:
/// `@Test(.enabled(if: TorchVenv.python != nil, TorchVenv.skipReason))`.
public enum TorchVenv {
    /// The venv's python, or nil when there is none.
    public static let python: URL? = {
        let venv = ProcessInfo.processInfo.environment["CKPT_TORCH_VENV"]
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/ckpt/venv-torch").path
        let python = URL(fileURLWithPath: venv).appendingPathComponent("bin/python")
        return FileManager.default.isExecutableFile(atPath: python.path) ? python : nil
    }()

    /// Why a torch test did not run.
    public static let skipReason: Comment = "needs the torch venv (CKPT_TORCH_VENV or ~/.cache/ckpt/venv-torch); NOT checked"
}

extension TorchVenv {
    /// Runs the venv's python with `arguments` (a script path, or `-c` and code, then its
    /// arguments), stdout and stderr together.
    ///
    /// - Parameter arguments: The interpreter's arguments.
    /// - Returns: The exit status and the combined output.
    /// - Throws: When there is no venv or the process cannot start.
    public static func run(_ arguments: [String]) throws -> ProcessOutput {
        guard let python else { throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "no torch venv"]) }
        return try ProcessOutput(running: python, arguments)
    }
}
