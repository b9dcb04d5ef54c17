import Foundation

/// The 0.x spelling of loading and saving, kept one release.
///
/// The enum shares its module's name, which makes `Checkpoint.Tensor` unwritable in a file that
/// imports the module; it goes away in the next release.
@available(*, deprecated, message: "use StateValue(contentsOf:options:) and StateValue.write(to:format:options:)")
public enum Checkpoint {
    @available(*, deprecated, renamed: "StateValue(contentsOf:options:)")
    public static func load(contentsOf url: URL, options: LoadOptions = LoadOptions()) throws -> StateValue {
        try StateValue(contentsOf: url, options: options)
    }

    @available(*, deprecated, message: "use value.write(to:format:options:)")
    public static func save(
        _ value: StateValue, to url: URL, format: CheckpointFormat? = nil, options: SaveOptions = SaveOptions()
    ) throws {
        try value.write(to: url, format: format, options: options)
    }
}
