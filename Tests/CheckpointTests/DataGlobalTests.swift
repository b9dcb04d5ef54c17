import Checkpoint
import Foundation
import Testing
import TestSupport

// The plain-data values torch.load(weights_only=True) refuses, read with LoadOptions.allowDataGlobals
// from files real torch wrote (scripts/make_data_global_fixtures.py); each sidecar describes the
// Python objects saved, never ckpt's reading of them.
struct DataGlobalTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/data_globals", isDirectory: true)

    static let files = [
        "rng_state.pth", "numpy_values.pt", "python_values.pt", "numpy1_values.pt", "legacy_rng_state.pth",
    ]

    static func url(_ file: String) -> URL { directory.appendingPathComponent(file) }

    static func sidecar(_ file: String) throws -> [String: Any] {
        let name = (file as NSString).deletingPathExtension
        let data = try Data(contentsOf: directory.appendingPathComponent("\(name).expected.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func hex(_ tensor: Tensor) throws -> String {
        try tensor.contiguousBytes().map { String(format: "%02x", $0) }.joined()
    }

    /// True for a value that only a data global makes.
    static func isData(_ value: StateValue) -> Bool {
        switch value {
        case .tensor(let tensor): return tensor.numpyOrigin != nil
        case .record: return true
        case .dict(let dict): return dict.defaultFactory != nil
        default: return false
        }
    }

    @Test(arguments: files)
    func valuesAreReadAsPythonSavedThem(file: String) throws {
        let tree = try StateValue(contentsOf: Self.url(file), options: LoadOptions(allowDataGlobals: true))
        let expected = try #require(try Self.sidecar(file)["values"] as? [String: [String: Any]])
        #expect(!tree.containsObjects, "every global of \(file) is read as data")
        for (path, spec) in expected {
            let value = try #require(tree.value(atPath: path), "\(file): nothing at \(path)")
            let type = try #require(spec["type"] as? String)
            #expect(value.pythonTypeName == type, "\(file): \(path)")
            try check(value, against: spec, at: "\(file): \(path)")
        }
        var decoded: Set<String> = []
        tree.forEachValue { path, value in if Self.isData(value) { decoded.insert(path.pathString) } }
        #expect(decoded == Set(expected.filter { $0.value["type"] as? String != "Tensor" }.keys), "\(file)")
    }

    private func check(_ value: StateValue, against spec: [String: Any], at place: String) throws {
        switch value {
        case .tensor(let tensor):
            #expect(try Self.hex(tensor) == spec["hex"] as? String, "\(place)")
            guard let origin = tensor.numpyOrigin else { return }
            #expect(tensor.dtype.rawValue == spec["dtype"] as? String, "\(place)")
            #expect(tensor.shape == spec["shape"] as? [Int], "\(place)")
            #expect(origin.module == spec["module"] as? String, "\(place)")
            if let fortran = spec["fortran"] as? Bool {
                #expect((!tensor.isContiguous && tensor.numel > 1) == fortran, "\(place): Fortran order is kept as strides")
            }
        case .record(let record):
            if let text = spec["str"] as? String { #expect(record["str"] == .string(text), "\(place)") }
            if let names = spec["attributes"] as? [String] { #expect(Array(record.attributes.keys) == names, "\(place)") }
            if let parts = spec["parts"] as? [String] { #expect(record["parts"] == .tuple(parts.map(StateValue.string)), "\(place)") }
            for (name, number) in spec["fields"] as? [String: Int] ?? [:] {
                #expect(record[name] == .int(Int64(number)), "\(place).\(name)")
            }
            if let name = spec["name"] as? String { #expect(record["name"] == .string(name), "\(place)") }
            if let seconds = spec["utc_offset_seconds"] as? Int {
                let zone = record.kind == .timezone ? record : { if case .record(let zone)? = record["tzinfo"] { zone } else { record } }()
                guard case .record(let offset)? = zone["offset"],
                    case .int(let days)? = offset["days"], case .int(let rest)? = offset["seconds"]
                else {
                    Issue.record("\(place): no timezone with an offset")
                    return
                }
                #expect(Int(days) * 86_400 + Int(rest) == seconds, "\(place)")
            }
        case .dict(let dict):
            #expect(dict.defaultFactory == spec["default_factory"] as? String, "\(place)")
            #expect(dict.items.keys.map(\.description) == spec["keys"] as? [String], "\(place)")
        default:
            Issue.record("\(place): \(value.pythonTypeName) is not a data value")
        }
    }

    /// A numpy array pickled once and referenced twice is one storage, as it is one array.
    @Test func anArrayReferencedTwiceIsOneStorage() throws {
        let tree = try StateValue(contentsOf: Self.url("numpy_values.pt"), options: LoadOptions(allowDataGlobals: true))
        guard case .tensor(let first)? = tree["shared"], case .tensor(let second)? = tree["shared_again"] else {
            Issue.record("shared arrays are not tensors")
            return
        }
        #expect(first.storage === second.storage)
    }

    @Test(arguments: files)
    func withoutTheOptInTheyStayPlaceholders(file: String) throws {
        let tree = try StateValue(contentsOf: Self.url(file))
        #expect(tree.containsObjects)
        tree.forEachValue { path, value in #expect(!Self.isData(value), "\(file): \(path.pathString)") }
    }

    /// Per global, as torch's safe_globals: the names torch lists are not enough for a numpy array
    /// until its dtype's class is allowed too.
    @Test func namingGlobalsOneByOneNeedsTheDTypeClassesToo() throws {
        let sidecar = try Self.sidecar("rng_state.pth")
        let unsafe = try #require(sidecar["unsafe_globals"] as? [String])
        let classes = try #require(sidecar["dtype_classes"] as? [String])

        let partial = try StateValue(contentsOf: Self.url("rng_state.pth"), options: LoadOptions(allowDataGlobals: DataGlobals(unsafe)))
        guard case .tuple(let numpy)? = partial["numpy"] else {
            Issue.record("numpy state is not a tuple")
            return
        }
        #expect(numpy[1].pythonTypeName == "numpy._core.multiarray._reconstruct", "the array stays a placeholder")

        let full = try StateValue(
            contentsOf: Self.url("rng_state.pth"), options: LoadOptions(allowDataGlobals: DataGlobals(unsafe + classes)))
        #expect(!full.containsObjects)
        #expect(full == (try StateValue(contentsOf: Self.url("rng_state.pth"), options: LoadOptions(allowDataGlobals: true))))
    }

    @Test func aGlobalThatRunsCodeCannotBeAllowed() throws {
        let error = try #require(throws: CheckpointError.self) {
            try StateValue(contentsOf: Self.url("rng_state.pth"), options: LoadOptions(allowDataGlobals: ["numpy.ndarray", "os.system"]))
        }
        #expect(error.code == .invalidArgument)
        #expect(error.found == "os.system")
        #expect(!DataGlobals.isReadable("builtins.eval"))
        #expect(DataGlobals(["__builtin__.list"]).allows("builtins.list"))
    }

    @Test(arguments: ["bad_short_array", "bad_month_13"])
    func impossibleContentsAreTypedErrors(name: String) throws {
        let reject = try #require(try Self.sidecar("\(name).pt")["reject"] as? [String: String])
        let error = try #require(throws: CheckpointError.self) {
            try StateValue(contentsOf: Self.url("\(name).pt"), options: LoadOptions(allowDataGlobals: true))
        }
        #expect(error.code.rawValue == reject["code"])
        #expect(error.message.contains(reject["mentions"] ?? "?"), "\(error)")
        #expect(error.path == reject["path"])
        #expect(error.file != nil)
        // Without the opt-in the same file loads, the value a placeholder.
        #expect(try StateValue(contentsOf: Self.url("\(name).pt")).containsObjects)
    }

    /// ckpt's own formats keep every data value: .ckpt through its manifest, .pt through the pickle.
    @Test(arguments: files, [CheckpointFormat.ckpt, .pt])
    func dataValuesSurviveSaveAndLoad(file: String, format: CheckpointFormat) throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-data")
        let tree = try StateValue(contentsOf: Self.url(file), options: LoadOptions(allowDataGlobals: true))
        let copy = directory.url.appendingPathComponent("copy.\(format.rawValue)")
        try tree.write(to: copy, options: SaveOptions(durable: false, allowDataGlobals: true))
        #expect(try StateValue(contentsOf: copy, options: LoadOptions(allowDataGlobals: true)) == tree)
    }

    /// Writing a data value is an opt-in, as reading one is: the error names its key path and global.
    @Test func writingDataValuesNeedsTheirGlobalsAllowed() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-data")
        let tree = try StateValue(contentsOf: Self.url("rng_state.pth"), options: LoadOptions(allowDataGlobals: true))
        let url = directory.url.appendingPathComponent("out.pt")
        let error = try #require(throws: CheckpointError.self) { try tree.write(to: url, options: SaveOptions(durable: false)) }
        #expect(error.code == .forbiddenGlobal)
        #expect(error.path == "numpy/1")
        #expect(error.found == "numpy._core.multiarray._reconstruct")
        #expect(!FileManager.default.fileExists(atPath: url.path))
        try tree.write(to: url, options: SaveOptions(durable: false, keepObjects: true))
        #expect(try StateValue(contentsOf: url, options: LoadOptions(allowDataGlobals: true)) == tree)
    }

    /// Records made in Swift are written in the form Python reads, and a record whose attributes do
    /// not fit its kind is refused.
    @Test func recordsMadeInSwiftRoundTrip() throws {
        let directory = try TemporaryDirectory(prefix: "ckpt-data")
        let url = directory.url.appendingPathComponent("made.pt")
        let utc = PythonRecord(.timezone, attributes: ["offset": .record(PythonRecord(.timedelta, attributes: [
            "days": 0, "seconds": 0, "microseconds": 0,
        ]))])
        let tree: StateValue = [
            "path": .record(.path("/data/../x.pt")),
            "when": .record(PythonRecord(.datetime, attributes: [
                "year": 2025, "month": 12, "day": 31, "hour": 23, "minute": 59, "second": 58, "microsecond": 1, "tzinfo": .record(utc),
            ])),
            "args": .record(PythonRecord(.namespace, attributes: ["lr": 0.5, "name": "x"])),
        ]
        try tree.write(to: url, options: SaveOptions(durable: false, allowDataGlobals: true))
        #expect(try StateValue(contentsOf: url, options: LoadOptions(allowDataGlobals: true)) == tree)
        if case .record(let path)? = tree["path"] { #expect(path.pathString == "/data/../x.pt") }
        if case .record(let when)? = tree["when"] { #expect(when.text == "2025-12-31 23:59:58.000001+00:00") }

        let bad: StateValue = ["when": .record(PythonRecord(.date, attributes: ["year": 2025, "month": 13, "day": 1]))]
        let error = try #require(throws: CheckpointError.self) {
            try bad.write(to: url, options: SaveOptions(durable: false, allowDataGlobals: true))
        }
        #expect(error.code == .invalidArgument)
    }
}

/// The codec on placeholders built by hand: forms Python never writes stay placeholders, impossible
/// contents are errors, and every value it reads it writes back as the same placeholder.
struct DataGlobalCodecTests {
    static func dtype(_ code: String, order: String = "<") -> StateValue {
        .object(PickledObject(
            module: "numpy", name: "dtype", construction: .reduce, args: [.string(code), .bool(false), .bool(true)],
            state: .tuple([.int(3), .string(order), .none, .none, .none, .int(-1), .int(-1), .int(0)])))
    }

    static func array(_ dtype: StateValue, shape: [Int64], data: [UInt8], fortran: Bool = false) -> PickledObject {
        PickledObject(
            module: "numpy._core.multiarray", name: "_reconstruct", construction: .reduce,
            args: [.object(PickledObject(module: "numpy", name: "ndarray")), .tuple([.int(0)]), .bytes([0x62])],
            state: .tuple([.int(1), .tuple(shape.map(StateValue.int)), dtype, .bool(fortran), .bytes(data)]))
    }

    /// Decodes bottom-up as the unpickler does: the dtype first, then what holds it.
    static func decode(_ object: PickledObject) throws(DataGlobalCodec.Failure) -> StateValue? {
        var object = object
        if case .tuple(var state)? = object.state, state.count == 5, case .object(let inner) = state[2],
            let decoded = try DataGlobalCodec.decode(inner, allowing: true)
        {
            state[2] = decoded
            object.state = .tuple(state)
        }
        return try DataGlobalCodec.decode(object, allowing: true)
    }

    @Test func unrepresentableFormsStayPlaceholders() throws {
        #expect(try Self.decode(Self.array(Self.dtype("O8"), shape: [1], data: Array(repeating: 0, count: 8))) == nil)
        #expect(try Self.decode(Self.array(Self.dtype("i4", order: ">"), shape: [1], data: [0, 0, 0, 1])) == nil)
        let noFactory = PickledObject(module: "collections", name: "defaultdict", construction: .reduce, args: [.none])
        #expect(try DataGlobalCodec.decode(noFactory, allowing: true) == nil)
        let subclass = PickledObject(module: "argparse", name: "Namespace", construction: .reduce, args: [.int(1)])
        #expect(try DataGlobalCodec.decode(subclass, allowing: true) == nil)
    }

    @Test func impossibleContentsAreErrors() {
        #expect(throws: DataGlobalCodec.Failure.self) {
            try Self.decode(Self.array(Self.dtype("f4"), shape: [-1], data: []))
        }
        #expect(throws: DataGlobalCodec.Failure.self) {
            try Self.decode(Self.array(Self.dtype("f8"), shape: [2], data: Array(repeating: 0, count: 12)))
        }
        let timedelta = PickledObject(module: "datetime", name: "timedelta", construction: .reduce, args: [.int(0), .int(86_400), .int(0)])
        #expect(throws: DataGlobalCodec.Failure.self) { try DataGlobalCodec.decode(timedelta, allowing: true) }
        let datetime = PickledObject(
            module: "datetime", name: "datetime", construction: .reduce, args: [.bytes([7, 232, 1, 1, 25, 0, 0, 0, 0, 0])])
        #expect(throws: DataGlobalCodec.Failure.self) { try DataGlobalCodec.decode(datetime, allowing: true) }
    }

    /// A Fortran-order array reads as a column-major view and writes back as numpy wrote it.
    @Test func fortranOrderRoundTrips() throws {
        let object = Self.array(Self.dtype("i2"), shape: [2, 3], data: [0, 0, 3, 0, 1, 0, 4, 0, 2, 0, 5, 0], fortran: true)
        guard case .tensor(let tensor)? = try Self.decode(object) else {
            Issue.record("not a tensor")
            return
        }
        #expect(tensor.strides == [1, 2])
        #expect(try tensor.scalars(as: Int16.self) == [0, 1, 2, 3, 4, 5])
        let encoded = try #require(try DataGlobalCodec.encode(.tensor(tensor)))
        #expect(encoded == object)
    }
}
