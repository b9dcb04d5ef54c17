import ArgumentParser
import Checkpoint
import CheckpointTools
import Foundation

/// `ckpt-tool extract FILE KEY OUT.npy [--cast DTYPE]`: one tensor to numpy's `.npy`.
struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Write one tensor to a numpy .npy file.",
        discussion: """
            KEY is the tensor's key path (keys joined with '/', e.g. 'optimizer/state/0/sum'; a '/' inside a key \
            is written '\\/', as inspect prints it: 'enc\\/w' is the safetensors name 'enc/w'). FILE '-' reads \
            standard input. numpy.load \
            reads the file back with the same dtype, shape and values. With --allow-data-globals, a numpy \
            array the checkpoint holds (an rng_state's) is a tensor too. numpy has no bfloat16 or float8: \
            such tensors are written as their raw bits (uint16, uint8) with a note on stderr, unless \
            --cast names a dtype to convert to first (e.g. --cast float32, which is exact for both).
            """
    )

    @Argument(help: "The checkpoint (.ckpt, .pt/.pth, .safetensors).")
    var file: String

    @Argument(help: "The tensor's key path.")
    var key: String

    @Argument(help: "The .npy file to write (replaced atomically; '-' for standard output).")
    var output: String

    @Option(help: "Cast to this dtype before writing (float32, float64, float16, int64, ...), as tensor.to(dtype).")
    var cast: String?

    @Flag(help: "Skip CRC-32 verification of the tensor data.")
    var noVerify = false

    @OptionGroup var data: DataGlobalOptions

    @OptionGroup var limits: LimitOptions

    func validate() throws {
        if let cast {
            guard let dtype = DType(torchName: cast) else {
                throw ValidationError("unknown dtype '\(cast)' for --cast (expected a torch name such as float32)")
            }
            guard NPY.descriptor(for: dtype) != nil else {
                throw ValidationError("numpy has no \(dtype.rawValue); choose another --cast dtype (float32 is exact for bfloat16 and float8)")
            }
        }
    }

    func run() throws {
        let tree = try StateValue(contentsOf: InputPath.url(file), options: LoadOptions(verifyChecksums: !noVerify, allowDataGlobals: data.dataGlobals, limits: limits.limits))
        guard let value = tree.value(atPath: key) else {
            throw CheckpointError(
                .missingEntry, "no value at this key path", file: InputPath.display(file), path: key,
                expected: key.contains("/") ? "keys joined with '/' (a '/' inside one key is written '\\/')" : nil)
        }
        guard case .tensor(var tensor) = value else {
            throw CheckpointError(
                .typeMismatch, "not a tensor", file: InputPath.display(file), path: key, expected: "a tensor", found: value.pythonTypeName)
        }
        if let cast, let dtype = DType(torchName: cast) { tensor = try tensor.cast(to: dtype) }
        let report = OutputPath.reportStream(for: output)
        let written = try NPY.write(tensor, to: URL(fileURLWithPath: OutputPath.resolve(output)))
        if written != tensor.dtype {
            Terminal.standardError.write(
                "ckpt-tool: note: numpy has no \(tensor.dtype.rawValue); wrote its raw bits as \(written.rawValue) "
                    + "(in numpy: .view(ml_dtypes.\(tensor.dtype.rawValue)); "
                    + "or pass --cast float32 for values)\n")
        }
        report.write(
            "\(key) → \(output) (\(NPY.descriptor(for: written) ?? written.rawValue) \(tensor.shape), \(ByteCount.text(tensor.byteCount)))\n")
    }
}
