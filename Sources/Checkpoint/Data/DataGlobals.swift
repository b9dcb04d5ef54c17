/// Which Python globals outside torch's weights-only allow-list a reader may turn into plain values,
/// and a writer may write (``LoadOptions/allowDataGlobals``, ``SaveOptions/allowDataGlobals``).
///
/// Checkpoints hold values `torch.load(weights_only=True)` refuses although they are plain data:
/// numpy arrays and scalars (an `rng_state.pth`), `argparse.Namespace`, `pathlib` paths, `datetime`
/// values, `collections.defaultdict`. ckpt reads them by building the value the pickle describes,
/// never by importing or calling anything, into values that keep what they were: a numpy array is a
/// ``Tensor`` whose ``Tensor/numpyOrigin`` is set, an object is a ``PythonRecord``, a defaultdict a
/// ``StateDict`` with a ``StateDict/defaultFactory``. A global it does not allow stays a
/// ``PickledObject`` placeholder.
///
/// Allow them all (`true`, ``all``), none (`false`, ``none``, the default), or name the globals one
/// by one as torch's `safe_globals` does, with the names torch's
/// `get_unsafe_globals_in_checkpoint` lists: `["numpy._core.multiarray._reconstruct",
/// "numpy.ndarray", "numpy.dtype", "numpy.dtypes.UInt32DType"]`. A value is read as data only when
/// every global it needs is allowed; as in torch, a numpy dtype also needs its class
/// (`numpy.dtypes.Float64DType`). ``readableNames`` lists every name ckpt can read as data; any
/// other (`os.system`, `builtins.eval`) makes a load fail, naming it, since ckpt never runs code.
public struct DataGlobals: Sendable, Hashable, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral {
    private enum Choice: Hashable, Sendable {
        case all
        case names(Set<String>)
    }

    private let choice: Choice

    /// No data globals: every global outside torch's allow-list stays a placeholder.
    public static let none = DataGlobals(choice: .names([]))
    /// Every global in ``readableNames``.
    public static let all = DataGlobals(choice: .all)

    private init(choice: Choice) { self.choice = choice }

    /// `true` allows every data global, `false` none.
    public init(booleanLiteral value: Bool) { self = value ? .all : .none }

    /// Allows the globals named (`module.name`, as torch names them).
    public init(arrayLiteral names: String...) { self.init(names) }

    /// Allows the globals named (`module.name`, as torch names them).
    ///
    /// - Parameter names: The globals.
    public init(_ names: some Sequence<String>) {
        choice = .names(Set(names.map(DataGlobals.canonical)))
    }

    /// True when nothing is allowed.
    public var isEmpty: Bool { choice == .names([]) }

    /// The names given that ckpt cannot read as data (`os.system`), sorted; empty for ``all``.
    public var unreadableNames: [String] {
        guard case .names(let names) = choice else { return [] }
        return names.filter { !DataGlobals.isReadable($0) }.sorted()
    }

    /// True when `name` (`module.name`; protocol 2's `__builtin__` counts as `builtins`) is allowed
    /// and ckpt can read it as data.
    ///
    /// - Parameter name: The global.
    public func allows(_ name: String) -> Bool {
        let name = DataGlobals.canonical(name)
        guard DataGlobals.isReadable(name) else { return false }
        switch choice {
        case .all: return true
        case .names(let names): return names.contains(name)
        }
    }

    /// True when every global in `names` is allowed.
    func allows(all names: [String]) -> Bool { names.allSatisfy(allows) }

    /// True for a global ckpt can read as data (one of ``readableNames``).
    ///
    /// - Parameter name: `module.name`.
    public static func isReadable(_ name: String) -> Bool { readable.contains(canonical(name)) }

    /// Every global ckpt can read as data, sorted.
    public static var readableNames: [String] { readable.sorted() }

    /// numpy's dtype classes for the dtypes a ``Tensor`` can hold.
    private static let dtypeClasses = DType.allCases.compactMap { $0.numpyDTypeClass.map { "numpy.dtypes.\($0)" } }

    private static let readable: Set<String> = Set([
        "numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar", "numpy.ndarray", "numpy.dtype",
        "argparse.Namespace", "pathlib.PosixPath", "pathlib.PurePosixPath", "pathlib._local.PosixPath",
        "pathlib._local.PurePosixPath", "datetime.datetime", "datetime.date", "datetime.timedelta",
        "datetime.timezone", "collections.defaultdict",
    ] + defaultFactories + dtypeClasses)

    /// The class of numpy's dtype for a type code as numpy pickles it (`'f8'` →
    /// `numpy.dtypes.Float64DType`), nil for a type a ``Tensor`` cannot hold.
    ///
    /// - Parameter code: numpy's kind and size (`f8`, `u4`, `b1`).
    package static func numpyDTypeClass(typeCode code: String) -> String? {
        DType(numpyTypeCode: code)?.numpyDTypeClass.map { "numpy.dtypes." + $0 }
    }

    /// Classes a defaultdict's `default_factory` may name (they are never called).
    static let defaultFactories = [
        "builtins.list", "builtins.dict", "builtins.tuple", "builtins.int", "builtins.float", "builtins.str",
        "builtins.bool", "builtins.bytes",
    ]

    /// The name Python 3 (and torch) gives a global a pickle spells `name`: protocol 2's
    /// `__builtin__` is `builtins`, and Python 2's `long` and `unicode` (which Python 3's pickler
    /// writes for `int` and `str`) are `int` and `str`.
    ///
    /// - Parameter name: `module.name` as pickled.
    /// - Returns: `module.name` as torch's `get_unsafe_globals_in_checkpoint` lists it.
    package static func canonical(_ name: String) -> String {
        guard name.hasPrefix("__builtin__.") else { return name }
        let short = name.dropFirst("__builtin__.".count)
        return "builtins." + (python2Names[String(short)] ?? String(short))
    }

    /// Python 2's builtin names that Python 3 reads as others (`_compat_pickle.NAME_MAPPING`).
    static let python2Names = ["long": "int", "unicode": "str", "basestring": "str", "xrange": "range"]
}
