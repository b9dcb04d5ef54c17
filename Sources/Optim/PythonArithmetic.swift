import Foundation

// Python's integer and float operators where they differ from Swift's: floor division and modulo
// round toward negative infinity, and dividing by zero raises (ZeroDivisionError) instead of giving
// an infinity. The schedulers use these so their results, and their failures, are torch's.

enum PythonArithmetic {
    static func zeroDivision(_ operation: String) -> OptimizerError {
        OptimizerError(.invalidValue, "\(operation) by zero (torch raises ZeroDivisionError)")
    }

    /// `a / b` on floats (or ints, which Python converts exactly below 2^53).
    static func divide(_ a: Double, _ b: Double) throws -> Double {
        guard b != 0 else { throw zeroDivision("float division") }
        return a / b
    }

    /// `a // b` on ints.
    static func floorDivide(_ a: Int, _ b: Int) throws -> Int {
        guard b != 0 else { throw zeroDivision("integer division") }
        let quotient = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
    }

    /// `a % b` on ints: the result has the divisor's sign.
    static func modulo(_ a: Int, _ b: Int) throws -> Int {
        guard b != 0 else { throw zeroDivision("integer modulo") }
        let remainder = a % b
        return (remainder != 0 && (remainder < 0) != (b < 0)) ? remainder + b : remainder
    }

    /// `a % b` on floats (CPython's `float_rem`): `fmod`, moved to the divisor's sign.
    static func modulo(_ a: Double, _ b: Double) throws -> Double {
        guard b != 0 else { throw zeroDivision("float modulo") }
        var remainder = fmod(a, b)
        if remainder != 0 {
            if (b < 0) != (remainder < 0) { remainder += b }
        } else {
            remainder = copysign(0, b)
        }
        return remainder
    }

    /// `bisect.bisect_right(values, x)`, the same probes on any input (sorted or not).
    static func bisectRight(_ values: [Int], _ x: Int) -> Int {
        var low = 0
        var high = values.count
        while low < high {
            let middle = (low + high) / 2
            if x < values[middle] { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
