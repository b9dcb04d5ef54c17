/// What a protocol-2 pickle writer memoizes: globals and strings by value, and the strings of
/// torch's persistent ids apart from the tree's own (see ``PickleWriter``).
struct PickleMemo {
    var count = 0
    var globals: [String: Int] = [:]
    var strings: [String: Int] = [:]
    var persistentIDStrings: [String: Int] = [:]
}

/// The opcodes both pickle writers emit the way CPython's C pickler does: ``PickleWriter`` for
/// torch.save's `data.pkl`, and DCP's `.metadata` writer.
protocol PickleEmitter {
    /// The pickle so far.
    var output: [UInt8] { get set }
    var memo: PickleMemo { get set }
}

extension PickleEmitter {
    mutating func op(_ opcode: PickleOpcode) {
        output.append(opcode.rawValue)
    }

    mutating func append<T: FixedWidthInteger>(littleEndian value: T) {
        withUnsafeBytes(of: value.littleEndian) { output.append(contentsOf: $0) }
    }

    /// BINPUT (LONG_BINPUT past 255) of the value on top of the stack.
    ///
    /// - Returns: Its memo index.
    @discardableResult
    mutating func memoize() -> Int {
        if memo.count < 256 {
            op(.binPut)
            output.append(UInt8(memo.count))
        } else {
            op(.longBinPut)
            append(littleEndian: UInt32(truncatingIfNeeded: memo.count))
        }
        memo.count += 1
        return memo.count - 1
    }

    mutating func fetch(_ index: Int) {
        if index < 256 {
            op(.binGet)
            output.append(UInt8(index))
        } else {
            op(.longBinGet)
            append(littleEndian: UInt32(truncatingIfNeeded: index))
        }
    }

    /// GLOBAL, or a fetch of the same global written before.
    mutating func global(_ module: String, _ name: String) {
        let key = "\(module)\n\(name)"
        if let index = memo.globals[key] { return fetch(index) }
        op(.global)
        output.append(contentsOf: Array("\(module)\n\(name)\n".utf8))
        memo.globals[key] = memoize()
    }

    /// BINUNICODE, or a fetch of the same string written before (in the same memo: the tree's
    /// strings, or a persistent id's).
    ///
    /// - Throws: ``CheckpointError`` `.invalidArgument` for a string of 4 GiB or more.
    mutating func string(_ text: String, inPersistentID: Bool = false) throws {
        if let index = inPersistentID ? memo.persistentIDStrings[text] : memo.strings[text] { return fetch(index) }
        let utf8 = Array(text.utf8)
        guard utf8.count <= UInt32.max else {
            throw CheckpointError(
                .invalidArgument, "a string longer than protocol 2's 4 GiB limit", found: "\(utf8.count) bytes")
        }
        op(.binUnicode)
        append(littleEndian: UInt32(utf8.count))
        output.append(contentsOf: utf8)
        let index = memoize()
        if inPersistentID {
            memo.persistentIDStrings[text] = index
        } else {
            memo.strings[text] = index
        }
    }

    /// CPython's `save_long` at protocol 2: the smallest of K, M, J, else LONG1.
    mutating func integer(_ value: Int64) {
        if value >= 0 && value <= 0xFF {
            op(.binInt1)
            output.append(UInt8(value))
        } else if value >= 0 && value <= 0xFFFF {
            op(.binInt2)
            append(littleEndian: UInt16(value))
        } else if value >= Int64(Int32.min) && value <= Int64(Int32.max) {
            op(.binInt)
            append(littleEndian: Int32(value))
        } else {
            // Minimal two's complement, as pickle's encode_long.
            var raw = withUnsafeBytes(of: value.littleEndian) { Array($0) }
            while raw.count > 1 {
                let last = raw[raw.count - 1]
                let signOfPrevious = raw[raw.count - 2] & 0x80
                guard (last == 0x00 && signOfPrevious == 0) || (last == 0xFF && signOfPrevious != 0) else { break }
                raw.removeLast()
            }
            op(.long1)
            output.append(UInt8(raw.count))
            output.append(contentsOf: raw)
        }
    }

    mutating func float(_ value: Double) {
        op(.binFloat)
        withUnsafeBytes(of: value.bitPattern.bigEndian) { output.append(contentsOf: $0) }
    }

    mutating func bool(_ value: Bool) {
        op(value ? .newTrue : .newFalse)
    }
}
