import ArgumentParser
import Checkpoint

@main
struct CkptTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ckpt-tool",
        abstract: "Inspect, convert and verify training checkpoints (.ckpt, .pt, .safetensors).",
        version: "0.1.0",
        subcommands: []
    )
}
