// A process for the fault-injection tests to break: it reads a checkpoint whose file is cut or
// rewritten under it, saves under a file-size limit or without permission, and saves and loads
// through a storm of signals. A fault that is not turned into an error kills it (SIGBUS, SIGXFSZ),
// which the parent sees as a signal instead of an exit status.
//
//   fault-child read FILE MODE         loads FILE (checksums on), then changes it: MODE `truncate`
//                                      cuts it to 4 KiB, `shrink-while-reading` cuts it from another
//                                      thread while this one reads the tensors over and over,
//                                      `rewrite:OTHER` writes OTHER's bytes over it in place (O_TRUNC,
//                                      as torch.save does). Then reads every tensor's bytes.
//                                      `truncate-save:OUT` loads without checksums, cuts FILE to
//                                      4 KiB, and saves what it loaded to OUT.
//   fault-child foreign-fault CKPT FILE  loads CKPT (installing ckpt's SIGBUS handler), then maps FILE
//                                      itself, cuts it and reads past the cut: dies of SIGBUS.
//   fault-child overwrite FILE         saves states of seed 1, 2, 3, ... over FILE until killed,
//                                      printing `saved N` after each.
//   fault-child fsize FILE LIMIT       RLIMIT_FSIZE = LIMIT bytes, SIGXFSZ ignored; saves a state
//                                      larger than LIMIT over FILE.
//   fault-child fsize-catalog DIR LIMIT  the same through CheckpointManager(DIR).save of the next step.
//   fault-child denied DIR             gives up root if it has it, then loads DIR/unreadable.ckpt,
//                                      saves into DIR/locked/ and saves a step of the run DIR/locked-run.
//   fault-child eintr DIR SECONDS      saves, loads and verifies in every format, into a FIFO read
//                                      slowly, and through a CheckpointManager whose catalog another
//                                      connection holds locked for 0.3 s, while another thread
//                                      signals every thread of the process (a handler without
//                                      SA_RESTART).
//
// Each outcome is one line on stdout: `ok ...`, or `error <code> errno=<n>: <description>` for a
// CheckpointError or CatalogError (errno of the system call at its root, 0 if none). Any other
// error, or a wrong result, exits 2 with the reason on stderr.
import CSQLite
import CSignalStorm
import Catalog
import Checkpoint
import Foundation
#if canImport(Glibc)
import Glibc
#endif

func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

/// The errno of the failed system call at the root of an error, if any.
func rootErrno(_ error: any Error) -> Int32 {
    if let error = error as? SystemCallError { return error.errno }
    if let error = error as? CheckpointError, let cause = error.cause { return rootErrno(cause) }
    if let error = error as? CatalogError, let cause = error.cause { return rootErrno(cause) }
    return 0
}

/// The code of the innermost CheckpointError (a CatalogError `.checkpoint` wraps one), else the CatalogError's.
func report(_ error: any Error) -> String {
    let code: String
    switch error {
    case let error as CatalogError:
        if error.code == .checkpoint, let cause = error.cause as? CheckpointError {
            code = "\(cause.code)"
        } else {
            code = "\(error.code)"
        }
    case let error as CheckpointError:
        code = "\(error.code)"
    default:
        fail("untyped error: \(error)")
    }
    // One line: the causes' own lines joined.
    return "error \(code) errno=\(rootErrno(error)): " + "\(error)".split(separator: "\n").joined(separator: " / ")
}

/// Runs `body`, printing `ok DETAIL` or the typed error.
func outcome(_ body: () throws -> String) {
    do {
        say("ok \(try body())")
    } catch {
        say(report(error))
    }
}

/// A state of about `megabytes` MiB whose values follow from `seed`.
func state(seed: Int, megabytes: Int = 1) throws -> StateValue {
    let count = megabytes << 18
    let values = (0..<count).map { Float(seed) + Float($0 % 1021) / 1021 }
    let small = try Tensor((0..<64).map { Float(seed * 64 + $0) }, shape: [8, 8])
    return ["model": ["w": .tensor(try Tensor(values, shape: [count])), "b": .tensor(small)], "step": .int(Int64(seed))]
}

/// Reads every byte of every tensor; returns a sum so that nothing is optimized away.
func readTensors(_ value: StateValue) throws -> UInt64 {
    var tensors: [Tensor] = []
    value.forEachTensor { _, tensor in tensors.append(tensor) }
    var sum: UInt64 = 0
    for tensor in tensors {
        sum &+= try tensor.storage.withUnsafeBytes { bytes in bytes.reduce(0) { $0 &+ UInt64($1) } }
    }
    return sum
}

/// Reads a FIFO on its own thread, slowly (64 KiB a millisecond), going on after EINTR.
final class SlowReader: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var received = Data()
    private var failure: Int32 = 0

    init(path: String) {
        Thread {
            var descriptor: Int32 = -1
            repeat { descriptor = open(path, O_RDONLY) } while descriptor < 0 && errno == EINTR
            if descriptor < 0 {
                self.failure = errno
            } else {
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                    if count < 0, errno == EINTR { continue }
                    if count < 0 { self.failure = errno }
                    if count <= 0 { break }
                    self.received.append(contentsOf: buffer[..<count])
                    usleep(1000)
                }
                close(descriptor)
            }
            self.done.signal()
        }.start()
    }

    /// Everything read, once the writer has closed its end.
    func bytes() -> Data {
        done.wait()
        if failure != 0 { fail("reading the FIFO: errno \(failure)") }
        return received
    }
}

/// Holds the catalog's write lock from a second connection for a while, on its own thread; the
/// initializer returns once the lock is taken.
final class LockHolder: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)

    init(catalog path: String, seconds: Double) {
        let locked = DispatchSemaphore(value: 0)
        Thread {
            var db: OpaquePointer?
            guard sqlite3_open(path, &db) == SQLITE_OK else { fail("cannot open \(path)") }
            sqlite3_busy_timeout(db, 10_000)
            guard sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK else { fail("cannot lock \(path)") }
            locked.signal()
            let until = Date().addingTimeInterval(seconds)
            while Date() < until { usleep(10_000) }
            sqlite3_exec(db, "COMMIT", nil, nil, nil)
            sqlite3_close(db)
            self.done.signal()
        }.start()
        locked.wait()
    }

    func join() { done.wait() }
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: fault-child read|fsize|fsize-catalog|denied|eintr ...") }

switch arguments[1] {
case "read":
    guard arguments.count >= 4 else { fail("usage: fault-child read FILE MODE") }
    let path = arguments[2]
    let mode = arguments[3]
    outcome {
        // Saving reads the tensors unverified when they were loaded so (the writer copies them straight).
        let verify = !mode.hasPrefix("truncate-save:")
        let loaded = try StateValue(contentsOf: URL(fileURLWithPath: path), options: LoadOptions(verifyChecksums: verify))
        switch mode {
        case "truncate":
            guard truncate(path, 4096) == 0 else { fail("truncate: \(errno)") }
            return "sum \(try readTensors(loaded))"
        case _ where mode.hasPrefix("truncate-save:"):
            guard truncate(path, 4096) == 0 else { fail("truncate: \(errno)") }
            try loaded.write(to: URL(fileURLWithPath: String(mode.dropFirst("truncate-save:".count))))
            return "saved"
        case "shrink-while-reading":
            // Reads until the cut lands under a read; without verification after the first pass,
            // every pass touches the mapping again.
            let cutter = Thread {
                usleep(2000)
                if truncate(path, 4096) != 0 { fail("truncate: \(errno)") }
            }
            cutter.start()
            var passes = 0
            while true {
                _ = try readTensors(loaded)
                passes += 1
                if passes > 100_000 { fail("the file was cut but no read failed") }
            }
        default:
            guard mode.hasPrefix("rewrite:") else { fail("unknown mode \(mode)") }
            let replacement = try Data(contentsOf: URL(fileURLWithPath: String(mode.dropFirst("rewrite:".count))))
            guard let handle = FileHandle(forWritingAtPath: path) else { fail("cannot open \(path)") }
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: replacement)
            try handle.close()
            return "sum \(try readTensors(loaded))"
        }
    }

case "foreign-fault":
    guard arguments.count >= 4 else { fail("usage: fault-child foreign-fault CHECKPOINT FILE") }
    do {
        _ = try readTensors(try StateValue(contentsOf: URL(fileURLWithPath: arguments[2])))
    } catch {
        fail("\(error)")
    }
    say("loaded")
    let descriptor = open(arguments[3], O_RDONLY)
    guard descriptor >= 0, let mapped = mmap(nil, 1 << 16, PROT_READ, MAP_PRIVATE, descriptor, 0), mapped != MAP_FAILED else {
        fail("cannot map \(arguments[3])")
    }
    guard ftruncate(open(arguments[3], O_WRONLY), 0) == 0 else { fail("ftruncate: \(errno)") }
    let byte = mapped.load(fromByteOffset: 1 << 13, as: UInt8.self)
    say("read \(byte) past the end of a file this process mapped itself")

case "overwrite":
    let url = URL(fileURLWithPath: arguments[2])
    var seed = 0
    while true {
        seed += 1
        do {
            try state(seed: seed).write(to: url)
        } catch {
            fail("\(error)")
        }
        say("saved \(seed)")
    }

case "fsize", "fsize-catalog":
    guard arguments.count >= 4, let limit = rlim_t(arguments[3]) else { fail("usage: fault-child \(arguments[1]) PATH LIMIT") }
    // Ignored, SIGXFSZ no longer ends the process: the write that crosses the limit returns EFBIG.
    signal(SIGXFSZ, SIG_IGN)
    var cap = rlimit(rlim_cur: limit, rlim_max: limit)
    guard setrlimit(Int32(RLIMIT_FSIZE.rawValue), &cap) == 0 else { fail("setrlimit: \(errno)") }
    let big = try state(seed: 99, megabytes: Int(limit >> 20) + 2)
    outcome {
        if arguments[1] == "fsize" {
            try big.write(to: URL(fileURLWithPath: arguments[2]))
        } else {
            let manager = try CheckpointManager(directory: URL(fileURLWithPath: arguments[2]))
            let next = (try manager.latest()?.step ?? -1) + 1
            _ = try manager.save(step: next, state: big)
        }
        return "saved"
    }

case "denied":
    let directory = URL(fileURLWithPath: arguments[2])
    if geteuid() == 0 {
        // nobody: the files the parent made are root's, and no capability overrides their modes.
        guard setgroups(0, nil) == 0, setgid(65534) == 0, setuid(65534) == 0 else { fail("cannot give up root: \(errno)") }
    }
    outcome { _ = try StateValue(contentsOf: directory.appendingPathComponent("unreadable.ckpt")); return "loaded" }
    outcome { try state(seed: 1).write(to: directory.appendingPathComponent("locked/model.ckpt")); return "saved" }
    outcome {
        let manager = try CheckpointManager(directory: directory.appendingPathComponent("locked-run"))
        _ = try manager.save(step: 1, state: try state(seed: 1))
        return "saved"
    }

case "eintr":
    guard arguments.count >= 4, let seconds = Double(arguments[3]) else { fail("usage: fault-child eintr DIR SECONDS") }
    let directory = URL(fileURLWithPath: arguments[2])
    signal_storm_install_interrupting_handler(SIGUSR1)
    let sent = NSLock()
    nonisolated(unsafe) var signals = 0
    let storm = Thread {
        while true {
            let count = Int(signal_storm_send(SIGUSR1))
            sent.withLock { signals += count }
            usleep(50)
        }
    }
    storm.start()
    let deadline = Date().addingTimeInterval(seconds)
    var rounds = 0
    let manager: CheckpointManager
    do {
        manager = try CheckpointManager(directory: directory.appendingPathComponent("run"), options: .init(retention: RetentionPolicy(keepLast: 2)))
    } catch {
        say(report(error))
        exit(0)
    }
    while Date() < deadline {
        let expected = try state(seed: rounds)
        for name in ["model.ckpt", "model.pt", "model.safetensors"] {
            let url = directory.appendingPathComponent(name)
            outcome {
                try expected.write(to: url)
                let loaded = try StateValue(contentsOf: url)
                try loaded.verifyChecksums()
                guard loaded == expected else { fail("\(name) round \(rounds) read back different values") }
                return "\(name)"
            }
        }
        // A FIFO: opening it blocks until the reader opens it, and writes block while the reader
        // is slow, so signals land inside open and write.
        let fifo = directory.appendingPathComponent("pipe-\(rounds).ckpt")
        guard mkfifo(fifo.path, 0o600) == 0 else { fail("mkfifo: \(errno)") }
        let received = SlowReader(path: fifo.path)
        outcome {
            try expected.write(to: fifo)
            let copy = directory.appendingPathComponent("from-pipe.ckpt")
            try received.bytes().write(to: copy)
            guard try StateValue(contentsOf: copy) == expected else { fail("round \(rounds): the FIFO carried other values") }
            return "fifo"
        }
        unlink(fifo.path)
        // Another connection holds the catalog's write lock for 0.3 s: the save waits for it, its
        // busy handler's sleeps interrupted over and over.
        let holder = LockHolder(catalog: CheckpointManager.catalogURL(in: manager.directory).path, seconds: 0.3)
        outcome {
            if rounds % 2 == 0 {
                _ = try manager.save(step: rounds, state: expected, metrics: ["loss": Double(rounds)])
            } else {
                try manager.saveAsync(step: rounds, state: expected, metrics: ["loss": Double(rounds)])
                _ = try manager.wait()
            }
            guard let restored = try manager.restore(), restored.entry.step == rounds, restored.state == expected else {
                fail("round \(rounds): restore did not return the step just saved")
            }
            _ = try manager.recordMetrics(step: rounds, metrics: ["eval": 1])
            return "catalog"
        }
        holder.join()
        rounds += 1
    }
    say("done rounds=\(rounds) signals=\(sent.withLock { signals })")

default:
    fail("unknown command \(arguments[1])")
}
