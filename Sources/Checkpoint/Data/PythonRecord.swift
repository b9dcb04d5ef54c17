/// A plain-data Python object read from a data global (see ``DataGlobals``): its class and its
/// attributes, built from what the pickle holds without running anything, and written back so that
/// `torch.load(weights_only=False)` rebuilds an equal object.
///
/// The attributes are the object's own, by Python name, and are its children in key paths (a
/// Namespace's `lr` is at `args/lr`):
/// - ``Kind-swift.enum/namespace``: the instance's `__dict__`, any values.
/// - ``Kind-swift.enum/posixPath``, ``Kind-swift.enum/purePosixPath``: `parts`, a tuple of str (`('/', 'data', 'x.pt')`).
/// - ``Kind-swift.enum/datetime``: `year`, `month`, `day`, `hour`, `minute`, `second`, `microsecond` (ints),
///   and `tzinfo` when set (a ``Kind-swift.enum/timezone``, or any value). `fold` is not kept:
///   protocol 2 cannot hold it.
/// - ``Kind-swift.enum/date``: `year`, `month`, `day`.
/// - ``Kind-swift.enum/timedelta``: `days`, `seconds`, `microseconds`, normalized as Python keeps
///   them (`0 <= seconds < 86400`, `0 <= microseconds < 1000000`).
/// - ``Kind-swift.enum/timezone``: `offset` (a timedelta) and `name` (a str) when the zone has one.
/// - ``Kind-swift.enum/numpyDType``: `str`, numpy's type string (`'<f8'`, `'|b1'`), for the dtypes a
///   ``Tensor`` can hold.
public struct PythonRecord: Sendable, Equatable {
    /// The classes ckpt reads as records, by the name it writes them under.
    public enum Kind: String, Sendable, CaseIterable {
        case namespace = "argparse.Namespace"
        case posixPath = "pathlib.PosixPath"
        case purePosixPath = "pathlib.PurePosixPath"
        case datetime = "datetime.datetime"
        case date = "datetime.date"
        case timedelta = "datetime.timedelta"
        case timezone = "datetime.timezone"
        case numpyDType = "numpy.dtype"
    }

    /// The class.
    public var kind: Kind
    /// The attributes, in order.
    public var attributes: OrderedMap<String, StateValue>

    /// Creates a record.
    ///
    /// - Parameters:
    ///   - kind: The class.
    ///   - attributes: Its attributes (see the type's documentation for each kind's).
    public init(_ kind: Kind, attributes: OrderedMap<String, StateValue> = [:]) {
        self.kind = kind
        self.attributes = attributes
    }

    /// `module.name` of the class (`argparse.Namespace`).
    public var qualifiedName: String { kind.rawValue }

    /// The attribute called `name`, nil when absent.
    public subscript(name: String) -> StateValue? {
        get { attributes[name] }
        set { attributes[name] = newValue }
    }

    /// A path from its text, split as `pathlib` splits it (`/data/x.pt` is `('/', 'data', 'x.pt')`).
    ///
    /// - Parameters:
    ///   - text: The path.
    ///   - pure: `PurePosixPath` rather than `PosixPath`.
    /// - Returns: The record.
    public static func path(_ text: String, pure: Bool = false) -> PythonRecord {
        PythonRecord(pure ? .purePosixPath : .posixPath, attributes: ["parts": .tuple(pathParts([text]).map(StateValue.string))])
    }

    /// A path's text, as `str(path)` gives it; nil for another kind or parts that are not str.
    public var pathString: String? {
        guard kind == .posixPath || kind == .purePosixPath, case .tuple(let parts)? = attributes["parts"] else { return nil }
        var names: [String] = []
        for part in parts {
            guard case .string(let name) = part else { return nil }
            names.append(name)
        }
        guard let first = names.first else { return "." }
        return first.hasPrefix("/") ? first + names.dropFirst().joined(separator: "/") : names.joined(separator: "/")
    }

    /// What Python's `str()` prints for a value-like record: a path (`/data/x.pt`), a date
    /// (`2024-01-02`), a datetime (`2024-01-02 03:04:05.000006+00:00`), a timedelta
    /// (`1 day, 0:00:02.000003`), a timezone (`UTC+01:00`), a dtype (`float64`). Nil for a
    /// Namespace, whose attributes are its contents, and for attributes that do not fit the kind.
    public var text: String? {
        func int(_ name: String) -> Int64? {
            if case .int(let value)? = attributes[name] { return value }
            return nil
        }
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        switch kind {
        case .namespace:
            return nil
        case .posixPath, .purePosixPath:
            return pathString
        case .date, .datetime:
            guard let year = int("year"), let month = int("month"), let day = int("day") else { return nil }
            let date = String(repeating: "0", count: max(0, 4 - "\(year)".count)) + "\(year)-\(two(month))-\(two(day))"
            guard kind == .datetime else { return date }
            guard let hour = int("hour"), let minute = int("minute"), let second = int("second"), let micro = int("microsecond") else {
                return nil
            }
            var text = "\(date) \(two(hour)):\(two(minute)):\(two(second))"
            if micro != 0 { text += "." + String(String(micro + 1_000_000).dropFirst()) }
            if case .record(let zone)? = attributes["tzinfo"], case .record(let offset)? = zone["offset"] {
                text += PythonRecord.offsetText(offset) ?? ""
            }
            return text
        case .timedelta:
            guard let days = int("days"), let seconds = int("seconds"), let micro = int("microseconds") else { return nil }
            var text = days == 0 ? "" : "\(days) day\(abs(days) == 1 ? "" : "s"), "
            text += "\(seconds / 3600):\(two(seconds / 60 % 60)):\(two(seconds % 60))"
            if micro != 0 { text += "." + String(String(micro + 1_000_000).dropFirst()) }
            return text
        case .timezone:
            if case .string(let name)? = attributes["name"] { return name }
            guard case .record(let offset)? = attributes["offset"], let text = PythonRecord.offsetText(offset) else { return nil }
            return text == "+00:00" ? "UTC" : "UTC" + text
        case .numpyDType:
            guard case .string(let code)? = attributes["str"], let dtype = DType(numpyTypeCode: String(code.dropFirst())) else {
                return nil
            }
            return dtype.numpyScalarName
        }
    }

    /// A UTC offset as `isoformat` writes it (`+01:00`, `-05:30`).
    private static func offsetText(_ offset: PythonRecord) -> String? {
        guard case .int(let days)? = offset["days"], case .int(let seconds)? = offset["seconds"] else { return nil }
        let total = days * 86_400 + seconds
        let magnitude = abs(total)
        let minutes = magnitude / 60 % 60
        return (total < 0 ? "-" : "+") + (magnitude / 3600 < 10 ? "0" : "") + "\(magnitude / 3600):" + (minutes < 10 ? "0" : "") + "\(minutes)"
    }
}
