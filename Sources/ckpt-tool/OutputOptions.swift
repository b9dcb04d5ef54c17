import ArgumentParser

/// Flags shared by every subcommand that prints for people.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Never color the output (colors are used only on a terminal, and never when NO_COLOR is set).")
    var noColor = false

    /// The styling to use for standard output.
    var style: Terminal.Style { Terminal.Style(enabled: !noColor && Terminal.standardOutputWantsColor) }
}
