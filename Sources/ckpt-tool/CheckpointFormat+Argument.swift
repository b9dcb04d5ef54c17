import ArgumentParser
import Checkpoint

/// Lets `--format ckpt|pt|safetensors` parse straight into the library's enum.
extension CheckpointFormat: ExpressibleByArgument {}
