import Checkpoint

/// What `torch.load` needs to read a torch archive whose tree this library has read: nothing
/// beyond `weights_only=True`, a `torch.serialization.safe_globals` list, or `weights_only=False`
/// (trusting the file, since loading it runs code); and `map_location="cpu"` when a storage was
/// saved on another device (`cuda:0`, `mps`), which `torch.load` refuses on a machine without it
/// ("Storage device not recognized: mps"). `ckpt-tool verify` reports it.
///
/// Every global outside torch's default allow-list is listed at once, with the key path of each
/// ``PickledObject`` made from it. A list of them is enough for `safe_globals` when they are plain
/// classes and functions; it is not when:
/// - a global runs code on load (`os`, `sys`, `subprocess`, `builtins.eval`, `getattr`, ...): torch
///   blocks some of these outright, and allow-listing the others would run what the file says;
/// - an object made from it takes items (`APPEND`, `SETITEM`: a `defaultdict`, a list subclass),
///   which torch's weights-only unpickler allows only on `list` and `dict`;
/// - it is instantiated with keyword arguments (`NEWOBJ_EX`), or the pickle's protocol is 4 or 5
///   (`FRAME`, `STACK_GLOBAL`, ...), which that unpickler does not read.
///
/// `BUILD` on an object needs its runtime type allow-listed too. A reader that runs nothing cannot
/// know that type in general; for `numpy.dtype`, whose instances are per-dtype subclasses
/// (`numpy.dtypes.Float64DType`), the list adds `type(numpy.dtype('f8'))` for each one used.
public struct TorchLoadAdvice: Sendable {
    /// A global outside `torch.load(weights_only=True)`'s allow-list and where the file uses it.
    public struct Global: Sendable {
        /// `module.name` as torch names it (`argparse.Namespace`; protocol 2's `__builtin__` is `builtins`).
        public var name: String { "\(module).\(shortName)" }
        /// The module (`argparse`).
        public var module: String
        /// The name in the module (`Namespace`).
        public var shortName: String
        /// The key path of each placeholder made from it, in tree order (`[]` is the root).
        public var paths: [[StateKey]]
        /// Why `safe_globals` cannot admit it, nil when it can.
        public var blocker: String?
        /// True when ckpt can read what it makes as a plain value (``Checkpoint/DataGlobals``).
        public var isReadableAsData: Bool { DataGlobals.isReadable(name) }
    }

    /// The globals outside the allow-list, in the order the tree first uses them.
    public var globals: [Global]
    /// Reasons only `weights_only=False` reads the file: each global's ``Global/blocker``, and the
    /// pickle's protocol when it is 4 or 5.
    public var blockers: [String]
    /// The storage locations other than `cpu` the pickle names (`cuda:0`, `mps`), in the order the
    /// tree first uses them: `torch.load` needs `map_location` where such a device is absent.
    public var devices: [String]
    /// The Python that loads the file (with `f` the file) on any machine, nil when
    /// `torch.load(f, weights_only=True)` does as is: a `safe_globals` block, or
    /// `torch.load(f, weights_only=False)` with a comment saying why trust is needed; with
    /// `map_location="cpu"` when ``devices`` is not empty.
    public var call: String?

    /// True when `torch.load(f, weights_only=True)` reads the pickle without an allow-list or trust
    /// (whatever the devices).
    public var loadsWeightsOnly: Bool { globals.isEmpty && blockers.isEmpty }

    /// The globals ckpt reads as plain values with ``Checkpoint/LoadOptions/allowDataGlobals``
    /// (`ckpt-tool --allow-data-globals`), in tree order: those of ``globals`` it can read, and the
    /// class of each numpy dtype used (`numpy.dtypes.Float64DType`), which torch checks too.
    public var dataGlobals: [String]

    /// The globals in ``globals`` ckpt cannot read as data: they stay placeholders (``Checkpoint/PickledObject``).
    public var placeholderGlobals: [String] { globals.filter { !$0.isReadableAsData }.map(\.name) }

    /// Modules whose functions run code or touch the system; torch blocks `os`, `posix`, `nt` and
    /// `sys` even when allow-listed.
    static let codeRunningModules: Set<String> = [
        "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "runpy", "importlib", "ctypes", "pty", "code",
        "codeop", "marshal", "pickle", "_pickle", "webbrowser", "multiprocessing", "signal", "pdb", "timeit", "commands",
    ]

    /// Builtins that run code or reach any object by name.
    static let codeRunningBuiltins: Set<String> = [
        "eval", "exec", "compile", "getattr", "setattr", "delattr", "__import__", "open", "breakpoint", "input",
        "globals", "locals", "vars", "apply", "execfile", "reload", "file", "help", "exit", "quit",
    ]

    /// The advice for a TorchScript archive (`torch.jit.save`): `torch.load(weights_only=True)`
    /// refuses one whatever it holds; `torch.jit.load` reads it, compiling its code.
    static let torchScript = TorchLoadAdvice(
        globals: [], blockers: ["a TorchScript archive (constants.pkl)"],
        call: "torch.jit.load(f)  # a TorchScript archive, which torch.load(weights_only=True) refuses; "
            + "torch.jit.load compiles and runs its code: only for a file you trust",
        dataGlobals: [])

    private init(globals: [Global], blockers: [String], call: String?, dataGlobals: [String]) {
        self.globals = globals
        self.blockers = blockers
        devices = []
        self.call = call
        self.dataGlobals = dataGlobals
    }

    /// Works out the advice for a tree read from a torch archive.
    ///
    /// - Parameters:
    ///   - tree: The tree the unpickler read (placeholders and all).
    ///   - pickleProtocol: The protocol `data.pkl` declares (its PROTO opcode), nil when it has none.
    ///   - devices: The storage locations the pickle names, in any order and with repeats; `cpu`
    ///     needs nothing.
    public init(tree: StateValue, pickleProtocol: Int? = nil, devices: [String] = []) {
        self.devices = devices.reduce(into: []) { kept, device in
            if device != "cpu", !kept.contains(device) { kept.append(device) }
        }
        let mapLocation = self.devices.isEmpty ? "" : ", map_location=\"cpu\""
        var order: [String] = []
        var byName: [String: Global] = [:]
        var dtypeTypes: [String] = []
        var dtypeClasses: [String] = []
        tree.forEachObject { path, object in
            guard !object.isOnTorchAllowList else { return }
            // Python 3 (and torch) read protocol 2's `__builtin__.long` as `builtins.int`.
            let name = DataGlobals.canonical(object.qualifiedName)
            if byName[name] == nil {
                let module = object.module == "__builtin__" ? "builtins" : object.module
                order.append(name)
                byName[name] = Global(module: module, shortName: String(name.dropFirst(module.count + 1)), paths: [], blocker: nil)
            }
            byName[name]?.paths.append(path)
            if byName[name]?.blocker == nil { byName[name]?.blocker = Self.blocker(object) }
            if name == "numpy.dtype", object.construction == .reduce, object.state != nil,
                case .string(let code)? = object.args.first
            {
                let expression = "type(numpy.dtype(\(Self.pythonString(code))))"
                if !dtypeTypes.contains(expression) { dtypeTypes.append(expression) }
                if let dtypeClass = DataGlobals.numpyDTypeClass(typeCode: code), !dtypeClasses.contains(dtypeClass) {
                    dtypeClasses.append(dtypeClass)
                }
            }
        }
        globals = order.compactMap { byName[$0] }
        dataGlobals = globals.filter(\.isReadableAsData).map(\.name) + dtypeClasses
        blockers = globals.compactMap { global in global.blocker.map { "\(global.name) \($0)" } }
        // Protocol 3 adds only BINBYTES, which a torch.save pickle rarely holds; 4 and 5 always frame.
        if let pickleProtocol, pickleProtocol >= 4 {
            blockers.append("pickle protocol \(pickleProtocol) (torch's weights-only unpickler reads protocol 2)")
        }
        if !blockers.isEmpty {
            call = "torch.load(f, weights_only=False\(mapLocation))  # only for a file you trust: " + blockers.joined(separator: "; ")
        } else if !globals.isEmpty {
            var imports: [String] = []
            var expressions: [String] = []
            for global in globals {
                let (module, expression) = Self.pythonExpression(module: global.module, name: global.shortName)
                // `import a.b` binds `a` too, so one import may serve several names.
                if let module, !imports.contains(where: { $0 == module || $0.hasPrefix(module + ".") }) {
                    imports.removeAll { $0 != module && module.hasPrefix($0 + ".") }
                    imports.append(module)
                }
                expressions.append(expression)
            }
            if !dtypeTypes.isEmpty, !imports.contains(where: { $0 == "numpy" || $0.hasPrefix("numpy.") }) { imports.append("numpy") }
            expressions += dtypeTypes
            call = imports.map { "import \($0)\n" }.joined()
                + "with torch.serialization.safe_globals([\(expressions.joined(separator: ", "))]):\n"
                + "    torch.load(f, weights_only=True\(mapLocation))"
        } else if !self.devices.isEmpty {
            call = "torch.load(f\(mapLocation))"
        } else {
            call = nil
        }
    }

    /// Why `safe_globals` cannot admit an object's global, nil when it can.
    private static func blocker(_ object: PickledObject) -> String? {
        let root = object.module.split(separator: ".").first.map(String.init) ?? object.module
        if codeRunningModules.contains(root) { return "runs code (module \(root))" }
        if root == "builtins" || root == "__builtin__", codeRunningBuiltins.contains(object.name) { return "runs code" }
        if !object.listItems.isEmpty || !object.dictItems.isEmpty {
            return "takes items (APPEND/SETITEM), which weights_only=True allows only on list and dict"
        }
        if !object.kwargs.isEmpty { return "takes keyword arguments (NEWOBJ_EX), which weights_only=True does not read" }
        return nil
    }

    /// The module to import (nil for none) and the Python expression that names a global: the
    /// bare name for a builtin or a class of the script that saved the file (`__main__`).
    private static func pythonExpression(module: String, name: String) -> (String?, String) {
        if module == "__main__" || module == "builtins" || module == "__builtin__" { return (nil, name) }
        return (module, "\(module).\(name)")
    }

    /// A Python string literal.
    private static func pythonString(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
