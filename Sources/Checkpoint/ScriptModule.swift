import Foundation

/// A TorchScript module (`torch.jit.save`, `torch.jit.script`/`trace`) read as data: its
/// parameters, buffers, submodules and other attributes, by name, as `torch.jit.load` would give
/// them. Nothing of the archive's code is compiled or run.
///
/// The archive's `data.pkl` holds each module as an instance of a `__torch__.*` class with its
/// attributes as state; which attributes are parameters and which are buffers is declared in the
/// class's source in `code/` (`__parameters__ = [...]`, `__buffers__ = [...]`), and only those two
/// literal lists are read from it. TorchScript keeps no mark of a non-persistent buffer: like
/// `torch.jit.load(f).state_dict()`, ``stateDict()`` includes it, so loading it into the eager
/// model needs `strict=False` for that key.
public struct ScriptModule: Sendable {
    /// The class as the archive names it (`__torch__.torch.nn.modules.linear.Linear`; a class
    /// compiled twice gets a `___torch_mangle_N` module).
    public var qualifiedName: String
    /// The parameters, in the order the class declares them.
    public var parameters: OrderedMap<String, Tensor>
    /// The buffers, in the order the class declares them.
    public var buffers: OrderedMap<String, Tensor>
    /// The submodules, in attribute order.
    public var submodules: OrderedMap<String, ScriptModule>
    /// Every other attribute (`training`, plain tensor attributes, numbers, strings), in order.
    public var attributes: OrderedMap<String, StateValue>
    /// The archive's constants (`constants.pkl`: tensors a traced graph captured), on the module
    /// read from a file; empty for its submodules.
    public var constants: [StateValue]

    /// Creates a module.
    ///
    /// - Parameters:
    ///   - qualifiedName: The class.
    ///   - parameters: The parameters.
    ///   - buffers: The buffers.
    ///   - submodules: The submodules.
    ///   - attributes: Other attributes.
    ///   - constants: The archive's constants.
    public init(
        qualifiedName: String, parameters: OrderedMap<String, Tensor> = [:], buffers: OrderedMap<String, Tensor> = [:],
        submodules: OrderedMap<String, ScriptModule> = [:], attributes: OrderedMap<String, StateValue> = [:],
        constants: [StateValue] = []
    ) {
        self.qualifiedName = qualifiedName
        self.parameters = parameters
        self.buffers = buffers
        self.submodules = submodules
        self.attributes = attributes
        self.constants = constants
    }

    /// Reads the module of a TorchScript archive.
    ///
    /// - Parameters:
    ///   - url: The archive (`torch.jit.save`'s zip; its extension does not matter).
    ///   - options: Checksum verification, and the data globals its attributes may hold.
    /// - Throws: ``CheckpointError`` `.notRecognized` for a file that is not a TorchScript archive
    ///   (a zip without `constants.pkl`); `.missingEntry` for a class whose declaration is not in
    ///   `code/`; `.corrupt` when the pickle does not fit the declarations; the errors of reading
    ///   the zip and its pickles.
    public init(contentsOf url: URL, options: LoadOptions = LoadOptions()) throws {
        try options.limits.validate(file: url.path)
        let file = try MappedFile(path: url.path)
        guard try CheckpointFormat.detect(file) == .pt else {
            throw CheckpointError(.notRecognized, "not a TorchScript archive", file: url.path, expected: "a zip written by torch.jit.save")
        }
        self = try TorchScriptArchive.read(
            ZipReader(mapping: file, limits: options.limits), verifyChecksums: options.verifyChecksums,
            dataGlobals: options.allowDataGlobals)
    }

    /// What `torch.jit.load(f).state_dict()` returns: every parameter then every buffer of a module,
    /// then its submodules' under their name and a dot (`sub.lin.weight`), as an OrderedDict of
    /// detached tensors (`requires_grad` false, as `state_dict()` gives them).
    ///
    /// - Returns: The state dict; the tensors view this module's storages, not copies.
    public func stateDict() -> StateDict {
        var dict = StateDict(isOrderedDict: true)
        collect(prefix: "", into: &dict)
        return dict
    }

    private func collect(prefix: String, into dict: inout StateDict) {
        for (name, tensor) in Array(parameters) + Array(buffers) {
            var detached = tensor
            detached.requiresGrad = false
            dict.items[.string(prefix + name)] = .tensor(detached)
        }
        for (name, module) in submodules { module.collect(prefix: prefix + name + ".", into: &dict) }
    }
}
