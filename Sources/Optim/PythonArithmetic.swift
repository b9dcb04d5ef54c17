import Foundation

// Python's integer and float operators where they differ from Swift's: floor division and modulo
// round toward negative infinity, and dividing by zero raises (ZeroDivisionError) instead of giving
// an infinity. The schedulers use these so their results, and their failures, are torch's.

enum PythonArithmetic {
    /// Python's ZeroDivisionError, with its message (`float division by zero`).
    static func zeroDivision(_ message: String) -> OptimizerError {
        OptimizerError(.invalidValue, message)
    }

    /// `a / b` with a float operand (an int one converts exactly below 2^53).
    static func divide(_ a: Double, _ b: Double) throws -> Double {
        guard b != 0 else { throw zeroDivision("float division by zero") }
        return a / b
    }

    /// `a / b` on two ints: the correctly rounded quotient, which for ints below 2^53 is the
    /// quotient of their exact `Double`s.
    static func divide(_ a: Int, _ b: Int) throws -> Double {
        guard b != 0 else { throw zeroDivision("division by zero") }
        return Double(a) / Double(b)
    }

    /// `a // b` on ints.
    static func floorDivide(_ a: Int, _ b: Int) throws -> Int {
        guard b != 0 else { throw zeroDivision("integer division or modulo by zero") }
        let quotient = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
    }

    /// `a % b` on ints: the result has the divisor's sign.
    static func modulo(_ a: Int, _ b: Int) throws -> Int {
        guard b != 0 else { throw zeroDivision("integer modulo by zero") }
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
