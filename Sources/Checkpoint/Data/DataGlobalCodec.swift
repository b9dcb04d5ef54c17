import OrderedCollections

/// Turns the placeholders of data globals into the values they stand for (reading), and those
/// values back into the placeholders a pickle writer emits (writing): the two directions of one
/// mapping, so what ckpt writes reads back equal, and what numpy and Python pickle reads as they
/// wrote it.
///
/// Reading builds values from what the pickle holds (a dtype's type string, an array's shape and raw
/// bytes, a datetime's packed fields); nothing is imported or called. A placeholder that is not in
/// the exact form Python writes (a numpy array of objects or strings, a big-endian dtype, a
/// `defaultdict` without a class as factory) stays a placeholder; one in that form whose contents
/// are impossible (array data shorter than its shape, a month of 13) is an error.
package enum DataGlobalCodec {
    /// A problem in a data global's contents, reported with the key path by the caller.
    package struct Failure: Error {
        package var code: CheckpointError.Code
        package var message: String
        package var found: String?
    }

    // MARK: Reading

    /// The value `object` stands for, when `policy` allows every global it needs; nil to keep the
    /// placeholder.
    ///
    /// - Parameters:
    ///   - object: A placeholder whose parts are already decoded (a numpy array's dtype is a record).
    ///   - policy: The globals allowed.
    /// - Throws: ``Failure`` for contents no Python could have written.
    package static func decode(_ object: PickledObject, allowing policy: DataGlobals) throws(Failure) -> StateValue? {
        let name = DataGlobals.canonical(object.qualifiedName)
        guard policy.allows(name), object.construction != .reference, object.kwargs.isEmpty, object.listItems.isEmpty else {
            return nil
        }
        if !object.dictItems.isEmpty && name != "collections.defaultdict" { return nil }
        switch name {
        case "numpy.dtype": return try numpyDType(object, policy).map(StateValue.record)
        case "numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct":
            return try numpyArray(object, policy).map(StateValue.tensor)
        case "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar":
            return try numpyScalar(object).map(StateValue.tensor)
        case "argparse.Namespace": return namespace(object).map(StateValue.record)
        case "pathlib.PosixPath", "pathlib._local.PosixPath": return path(object, .posixPath).map(StateValue.record)
        case "pathlib.PurePosixPath", "pathlib._local.PurePosixPath": return path(object, .purePosixPath).map(StateValue.record)
        case "datetime.datetime", "datetime.date": return try date(object, withTime: name == "datetime.datetime").map(StateValue.record)
        case "datetime.timedelta": return try timedelta(object).map(StateValue.record)
        case "datetime.timezone": return timezone(object).map(StateValue.record)
        case "collections.defaultdict": return defaultdict(object, policy).map(StateValue.dict)
        default: return nil
        }
    }

    /// `numpy.dtype(code, False, True)` with numpy's BUILD state
    /// `(3, byteorder, None, None, None, -1, -1, 0)`: a plain little-endian number type.
    private static func numpyDType(_ object: PickledObject, _ policy: DataGlobals) throws(Failure) -> PythonRecord? {
        guard object.construction == .reduce, object.args.count == 3, case .string(let code) = object.args[0],
            let dtype = DType(numpyTypeCode: code), let dtypeClass = dtype.numpyDTypeClass,
            policy.allows("numpy.dtypes." + dtypeClass),
            case .tuple(let state)? = object.state, state.count == 8 || state.count == 9,
            case .string(let order) = state[1], state[2] == .none, state[3] == .none, state[4] == .none,
            state[5] == .int(-1), state[6] == .int(-1), state[7] == .int(0),
            state.count == 8 || state[8] == .none
        else { return nil }
        // A big-endian array would need its bytes swapped; numpy writes "|" for single bytes.
        guard order == "<" || order == "=" || order == "|" || dtype.itemSize == 1 else { return nil }
        return PythonRecord(.numpyDType, attributes: ["str": .string(dtype.numpyDescriptor!)])
    }

    /// The dtype a decoded numpy dtype record holds.
    private static func dtype(of value: StateValue) -> DType? {
        guard case .record(let record) = value, record.kind == .numpyDType, case .string(let text)? = record["str"],
            let order = text.first, "<|=".contains(order)
        else { return nil }
        return DType(numpyTypeCode: String(text.dropFirst()))
    }

    /// `_reconstruct(numpy.ndarray, (0,), b'b')` with BUILD state
    /// `(1, shape, dtype, is_fortran, raw bytes)`, as `ndarray.__reduce__` writes it.
    private static func numpyArray(_ object: PickledObject, _ policy: DataGlobals) throws(Failure) -> Tensor? {
        guard object.construction == .reduce, object.args.count == 3, case .object(let cls) = object.args[0],
            cls.construction == .reference, cls.qualifiedName == "numpy.ndarray", policy.allows("numpy.ndarray"),
            case .tuple(var state)? = object.state, state.count == 4 || state.count == 5
        else { return nil }
        if state.count == 5 {
            guard case .int = state[0] else { return nil }
            state.removeFirst()
        }
        guard case .tuple(let dims) = state[0], let dtype = dtype(of: state[1]), case .bool(let fortran) = state[2],
            case .bytes(let data) = state[3]
        else { return nil }
        var shape: [Int] = []
        for dim in dims {
            guard case .int(let size) = dim, size >= 0 else {
                throw Failure(code: .malformedPickle, message: "a numpy array's shape must be non-negative ints", found: "\(dims)")
            }
            shape.append(Int(size))
        }
        return try tensor(data, dtype: dtype, shape: shape, fortran: fortran, origin: NumpyOrigin(.array, module: object.module))
    }

    /// `scalar(dtype, raw bytes)`, as a numpy scalar's `__reduce__` writes it.
    private static func numpyScalar(_ object: PickledObject) throws(Failure) -> Tensor? {
        guard object.construction == .reduce, object.args.count == 2, object.state == nil,
            let dtype = dtype(of: object.args[0]), case .bytes(let data) = object.args[1]
        else { return nil }
        return try tensor(data, dtype: dtype, shape: [], fortran: false, origin: NumpyOrigin(.scalar, module: object.module))
    }

    private static func tensor(
        _ data: [UInt8], dtype: DType, shape: [Int], fortran: Bool, origin: NumpyOrigin
    ) throws(Failure) -> Tensor {
        let count: Int
        do {
            count = try Tensor.checkedElementCount(shape)
        } catch {
            throw Failure(code: .outOfBounds, message: "a numpy array's size overflows", found: "shape \(shape)")
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow, byteCount == data.count else {
            throw Failure(
                code: .corrupt, message: "a numpy \(origin.kind.rawValue)'s data does not fill its shape",
                found: "\(data.count) bytes for shape \(shape) of \(dtype.numpyDescriptor ?? dtype.rawValue)")
        }
        // Fortran order: the first dimension varies fastest.
        var strides: [Int]? = nil
        if fortran {
            var running = 1
            strides = shape.map { dim in
                defer { running *= max(dim, 1) }
                return running
            }
        }
        do {
            var tensor = try Tensor(storage: Storage(bytes: data), dtype: dtype, shape: shape, strides: strides)
            tensor.numpyOrigin = origin
            return tensor
        } catch {
            throw Failure(code: .corrupt, message: "a numpy array that does not fit its data", found: "shape \(shape)")
        }
    }

    /// `Namespace` through `copyreg.__newobj__`: NEWOBJ with no arguments, then its `__dict__`.
    private static func namespace(_ object: PickledObject) -> PythonRecord? {
        guard object.construction == .newObject, object.args.isEmpty else { return nil }
        var attributes = OrderedMap<String, StateValue>()
        switch object.state {
        case nil, .none?:
            break
        case .dict(let dict)?:
            guard dict.defaultFactory == nil, !dict.isOrderedDict, dict.attributes.isEmpty else { return nil }
            for (key, value) in dict.items {
                guard case .string(let name) = key else { return nil }
                attributes[name] = value
            }
        default:
            return nil
        }
        return PythonRecord(.namespace, attributes: attributes)
    }

    /// `PosixPath(*parts)`: the segments Python's `__reduce__` gives, normalized to `Path.parts`.
    private static func path(_ object: PickledObject, _ kind: PythonRecord.Kind) -> PythonRecord? {
        guard object.construction == .reduce, object.state == nil else { return nil }
        var segments: [String] = []
        for argument in object.args {
            guard case .string(let text) = argument else { return nil }
            segments.append(text)
        }
        return PythonRecord(kind, attributes: ["parts": .tuple(PythonRecord.pathParts(segments).map(StateValue.string))])
    }

    /// `datetime(packed_bytes[, tzinfo])` and `date(packed_bytes)`: year (2 bytes, big-endian),
    /// month (its top bit is `fold`, from protocol 4), day, then hour, minute, second and 3 bytes
    /// of microseconds.
    private static func date(_ object: PickledObject, withTime: Bool) throws(Failure) -> PythonRecord? {
        let expected = withTime ? 10 : 4
        guard object.construction == .reduce, object.state == nil, (1...(withTime ? 2 : 1)).contains(object.args.count),
            case .bytes(let raw) = object.args[0], raw.count == expected
        else { return nil }
        let fields: [(String, Int, ClosedRange<Int>)] = [
            ("year", Int(raw[0]) << 8 | Int(raw[1]), 1...9999), ("month", Int(raw[2] & 0x7F), 1...12), ("day", Int(raw[3]), 1...31),
        ] + (withTime ? [
            ("hour", Int(raw[4]), 0...23), ("minute", Int(raw[5]), 0...59), ("second", Int(raw[6]), 0...59),
            ("microsecond", Int(raw[7]) << 16 | Int(raw[8]) << 8 | Int(raw[9]), 0...999_999),
        ] : [])
        var record = PythonRecord(withTime ? .datetime : .date)
        for (name, value, range) in fields {
            guard range.contains(value) else {
                throw Failure(code: .malformedPickle, message: "a \(record.qualifiedName) with \(name) out of range", found: "\(value)")
            }
            record[name] = .int(Int64(value))
        }
        if object.args.count == 2, object.args[1] != .none { record["tzinfo"] = object.args[1] }
        return record
    }

    /// `timedelta(days, seconds, microseconds)`, normalized as Python keeps it.
    private static func timedelta(_ object: PickledObject) throws(Failure) -> PythonRecord? {
        guard object.construction == .reduce, object.state == nil, object.args.count == 3,
            case .int(let days) = object.args[0], case .int(let seconds) = object.args[1],
            case .int(let microseconds) = object.args[2]
        else { return nil }
        guard abs(days) <= 999_999_999, (0..<86_400).contains(seconds), (0..<1_000_000).contains(microseconds) else {
            throw Failure(
                code: .malformedPickle, message: "a datetime.timedelta out of Python's range",
                found: "days \(days), seconds \(seconds), microseconds \(microseconds)")
        }
        return PythonRecord(.timedelta, attributes: ["days": .int(days), "seconds": .int(seconds), "microseconds": .int(microseconds)])
    }

    /// `timezone(offset[, name])`, the offset a decoded timedelta.
    private static func timezone(_ object: PickledObject) -> PythonRecord? {
        guard object.construction == .reduce, object.state == nil, (1...2).contains(object.args.count),
            case .record(let offset) = object.args[0], offset.kind == .timedelta
        else { return nil }
        var record = PythonRecord(.timezone, attributes: ["offset": .record(offset)])
        if object.args.count == 2 {
            guard case .string = object.args[1] else { return nil }
            record["name"] = object.args[1]
        }
        return record
    }

    /// `defaultdict(factory)` then its items, the factory a class named bare.
    private static func defaultdict(_ object: PickledObject, _ policy: DataGlobals) -> StateDict? {
        guard object.construction == .reduce, object.state == nil, object.args.count == 1,
            case .object(let factory) = object.args[0], factory.construction == .reference
        else { return nil }
        let name = DataGlobals.canonical(factory.qualifiedName)
        guard policy.allows(name) || torchAllowedFactories.contains(name) else { return nil }
        var dict = StateDict(object.dictItems.storage)
        dict.defaultFactory = name
        return dict
    }

    /// Factories on torch's weights-only allow-list, needing no data global.
    private static let torchAllowedFactories: Set<String> = [
        "collections.OrderedDict", "collections.Counter", "builtins.set", "builtins.bytearray", "builtins.complex",
    ]

    // MARK: Writing

    /// The data globals `value` needs (itself, not what it holds): what ``SaveOptions/allowDataGlobals``
    /// must allow to write it. Empty for a value that is not data.
    ///
    /// - Parameter value: Any value.
    /// - Returns: `module.name` of each global, as torch's `safe_globals` would need it.
    package static func requiredGlobals(_ value: StateValue) -> [String] {
        switch value {
        case .tensor(let tensor):
            guard let origin = tensor.numpyOrigin else { return [] }
            let constructor = origin.kind == .array ? ["\(origin.module)._reconstruct", "numpy.ndarray"] : ["\(origin.module).scalar"]
            return constructor + dtypeGlobals(tensor.dtype)
        case .record(let record):
            guard record.kind == .numpyDType else { return [record.qualifiedName] }
            return dtype(of: value).map(dtypeGlobals) ?? ["numpy.dtype"]
        case .dict(let dict):
            guard let factory = dict.defaultFactory else { return [] }
            return ["collections.defaultdict"] + (torchAllowedFactories.contains(factory) ? [] : [factory])
        default:
            return []
        }
    }

    private static func dtypeGlobals(_ dtype: DType) -> [String] {
        ["numpy.dtype"] + (dtype.numpyDTypeClass.map { ["numpy.dtypes." + $0] } ?? [])
    }

    /// The placeholder a writer emits for a data value, as numpy and Python pickle it (protocol 2),
    /// or nil for a value that is not data.
    ///
    /// - Parameter value: A numpy tensor, a record, or a defaultdict.
    /// - Throws: ``CheckpointError`` `.invalidArgument` for a record whose attributes do not fit its
    ///   kind, or a numpy tensor of a dtype numpy lacks.
    package static func encode(_ value: StateValue) throws -> PickledObject? {
        switch value {
        case .tensor(let tensor):
            guard tensor.numpyOrigin != nil else { return nil }
            return try encode(numpy: tensor)
        case .record(let record):
            return try encode(record)
        case .dict(var dict):
            guard let factory = dict.defaultFactory else { return nil }
            dict.defaultFactory = nil
            let (module, name) = try pickleName(factory)
            return PickledObject(
                module: "collections", name: "defaultdict", construction: .reduce,
                args: [.object(PickledObject(module: module, name: name))], dictItems: OrderedMap(dict.items))
        default:
            return nil
        }
    }

    /// `module.name` as Python's pickler writes it at protocol 2: in Python 2's names
    /// (`builtins.int` is `__builtin__.long`).
    private static func pickleName(_ qualified: String) throws -> (String, String) {
        guard let dot = qualified.lastIndex(of: "."), dot != qualified.startIndex, qualified.index(after: dot) != qualified.endIndex,
            !qualified.contains("\n")
        else {
            throw CheckpointError(.invalidArgument, "a defaultdict's factory must name a class as module.name", found: qualified)
        }
        let module = String(qualified[..<dot])
        let name = String(qualified[qualified.index(after: dot)...])
        guard module == "builtins" else { return (module, name) }
        let python2 = ["int": "long", "str": "unicode"]
        return ("__builtin__", python2[name] ?? name)
    }

    private static func encode(numpy tensor: Tensor) throws -> PickledObject {
        guard let origin = tensor.numpyOrigin, let dtypeRecord = numpyDTypeRecord(tensor.dtype) else {
            throw CheckpointError(
                .invalidArgument, "numpy has no \(tensor.dtype) type, so this tensor cannot be written as a numpy value",
                found: tensor.dtype.rawValue)
        }
        let dtypeObject = try encode(dtypeRecord)
        // Fortran order when the elements are packed first-dimension-fastest but not row-major,
        // as numpy's tobytes('A') chooses.
        let transposed = try tensor.viewed(shape: tensor.shape.reversed(), strides: tensor.strides.reversed())
        let fortran = !tensor.isContiguous && transposed.isContiguous
        let data = try (fortran ? transposed : tensor).contiguousBytes()
        if origin.kind == .scalar {
            guard tensor.shape.isEmpty else {
                throw CheckpointError(.invalidArgument, "a numpy scalar must be a 0-dim tensor", found: "shape \(tensor.shape)")
            }
            return PickledObject(
                module: origin.module, name: "scalar", construction: .reduce, args: [.object(dtypeObject), .bytes(data)])
        }
        return PickledObject(
            module: origin.module, name: "_reconstruct", construction: .reduce,
            args: [.object(PickledObject(module: "numpy", name: "ndarray")), .tuple([.int(0)]), .bytes([UInt8(ascii: "b")])],
            state: .tuple([
                .int(1), .tuple(tensor.shape.map { .int(Int64($0)) }), .object(dtypeObject), .bool(fortran), .bytes(data),
            ]))
    }

    private static func numpyDTypeRecord(_ dtype: DType) -> PythonRecord? {
        dtype.numpyDescriptor.map { PythonRecord(.numpyDType, attributes: ["str": .string($0)]) }
    }

    private static func encode(_ record: PythonRecord) throws -> PickledObject {
        func invalid(_ message: String) -> CheckpointError {
            CheckpointError(.invalidArgument, "a \(record.qualifiedName) record \(message)", found: record.qualifiedName)
        }
        func integer(_ name: String, _ range: ClosedRange<Int64>) throws -> Int64 {
            guard case .int(let value)? = record[name], range.contains(value) else {
                throw invalid("needs an int \(name) in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        let module = String(record.qualifiedName.prefix { $0 != "." })
        let name = String(record.qualifiedName.drop { $0 != "." }.dropFirst())
        switch record.kind {
        case .namespace:
            let items = OrderedDictionary(uniqueKeysWithValues: record.attributes.map { (StateKey.string($0.key), $0.value) })
            return PickledObject(
                module: module, name: name, construction: .newObject, state: items.isEmpty ? nil : .dict(StateDict(items)))
        case .posixPath, .purePosixPath:
            guard case .tuple(let parts)? = record["parts"], parts.allSatisfy({ if case .string = $0 { true } else { false } }) else {
                throw invalid("needs parts, a tuple of str")
            }
            return PickledObject(module: module, name: name, construction: .reduce, args: parts)
        case .datetime, .date:
            let year = try integer("year", 1...9999)
            var raw: [UInt8] = [UInt8(year >> 8), UInt8(year & 0xFF), UInt8(try integer("month", 1...12)), UInt8(try integer("day", 1...31))]
            var args: [StateValue] = []
            if record.kind == .datetime {
                raw += [UInt8(try integer("hour", 0...23)), UInt8(try integer("minute", 0...59)), UInt8(try integer("second", 0...59))]
                let microsecond = try integer("microsecond", 0...999_999)
                raw += [UInt8(microsecond >> 16), UInt8((microsecond >> 8) & 0xFF), UInt8(microsecond & 0xFF)]
                if let tzinfo = record["tzinfo"], tzinfo != .none { args = [tzinfo] }
            }
            return PickledObject(module: module, name: name, construction: .reduce, args: [.bytes(raw)] + args)
        case .timedelta:
            let args: [StateValue] = [
                .int(try integer("days", -999_999_999...999_999_999)), .int(try integer("seconds", 0...86_399)),
                .int(try integer("microseconds", 0...999_999)),
            ]
            return PickledObject(module: module, name: name, construction: .reduce, args: args)
        case .timezone:
            guard case .record(let offset)? = record["offset"], offset.kind == .timedelta else { throw invalid("needs an offset, a timedelta") }
            var args: [StateValue] = [.record(offset)]
            if let zone = record["name"] {
                guard case .string = zone else { throw invalid("has a name that is not a str") }
                args.append(zone)
            }
            return PickledObject(module: module, name: name, construction: .reduce, args: args)
        case .numpyDType:
            guard let dtype = dtype(of: .record(record)), let code = dtype.numpyTypeCode, let text = dtype.numpyDescriptor else {
                throw invalid("needs str, a little-endian numpy type string such as '<f4'")
            }
            return PickledObject(
                module: "numpy", name: "dtype", construction: .reduce, args: [.string(code), .bool(false), .bool(true)],
                state: .tuple([.int(3), .string(String(text.prefix(1))), .none, .none, .none, .int(-1), .int(-1), .int(0)]))
        }
    }
}

extension PythonRecord {
    /// `PurePosixPath(*segments).parts`: segments joined, an absolute one starting over, empty and
    /// `.` components dropped; the root (`/`, or `//` as POSIX allows) is the first part.
    static func pathParts(_ segments: [String]) -> [String] {
        var root = ""
        var names: [String] = []
        for segment in segments where !segment.isEmpty {
            if segment.hasPrefix("/") {
                let slashes = segment.prefix { $0 == "/" }.count
                root = slashes == 2 ? "//" : "/"
                names = []
            }
            names += segment.split(separator: "/").map(String.init).filter { $0 != "." }
        }
        return (root.isEmpty ? [] : [root]) + names
    }
}
