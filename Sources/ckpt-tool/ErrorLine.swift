import Catalog
import Checkpoint
import Foundation

/// The one line `ckpt-tool: <error>` a failure prints on stderr.
enum ErrorLine {
    /// An error in one line: a ``CheckpointError`` as its description, a ``CatalogError`` in the
    /// same shape (`file: step N: message [code]`, then its cause and what to do about it).
    ///
    /// - Parameter error: The error.
    /// - Returns: The text, without a newline.
    /// Relative file names (a command's own errors name FILE as given) are made absolute here, where
    /// every error is printed, so the line names the same file from any directory.
    static func text(_ error: any Error) -> String {
        if var error = error as? CheckpointError {
            error.file = error.file.map(InputPath.absolute)
            return oneLine("\(error)")
        }
        guard let error = error as? CatalogError else { return oneLine("\(error)") }
        var text = ""
        if let file = error.file { text += "\(InputPath.absolute(file)): " }
        if let step = error.step { text += "step \(step): " }
        text += error.message
        if let code = error.sqliteCode { text += " (SQLite code \(code))" }
        text += " [\(error.code)]"
        if var cause = error.cause as? CheckpointError {
            // The checkpoint's path once is enough.
            if cause.file == error.file { cause.file = nil }
            cause.file = cause.file.map(InputPath.absolute)
            text += "; caused by: \(cause)"
        } else if let cause = error.cause {
            text += "; caused by: \(self.text(cause))"
        }
        if let remedy = error.remedy { text += "; to fix: \(remedy)" }
        return oneLine(text)
    }

    /// Lines joined with `; ` (a cause or a list on lines of their own).
    private static func oneLine(_ text: String) -> String {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; ")
    }
}

extension Terminal {
    /// Prints `ckpt-tool: <error>` on stderr.
    static func report(_ error: any Error) {
        standardError.write("ckpt-tool: \(ErrorLine.text(error))\n")
    }
}
