import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes behind one or more tensors: owned memory, or a read-only window into a
/// memory-mapped file.
///
/// Tensors that share a `Storage` object share memory, as tied weights do in PyTorch, and are
/// saved as one blob. Writing to a mapped storage first copies its bytes into owned memory (the
/// file is never modified); every tensor viewing the storage sees the write. A reader that is
/// inside ``withUnsafeBytes(_:)`` when that happens keeps reading the mapped bytes, which stay
/// mapped until it returns.
///
/// A storage read from a checkpoint may carry a pending CRC-32 check. It runs the first time the
/// bytes are read, and a mismatch is thrown from that read.
public final class Storage: @unchecked Sendable {
    /// Bytes in the storage.
    public let byteCount: Int

    private enum Backing {
        case owned(UnsafeMutableRawPointer?)
        case mapped(MappedFile, UnsafeRawPointer?)
    }

    /// A check to run once, before anyone reads the bytes.
    public typealias Verification = @Sendable (UnsafeRawBufferPointer) throws -> Void

    /// A pending check that is a CRC-32 (a zip entry's): the checksum the bytes must have and the
    /// error for any other. A reader that checksums the bytes itself, in pieces on several threads
    /// as it goes through them, settles it with ``settleChecksum(_:)`` instead of a separate pass.
    package struct ExpectedChecksum: Sendable {
        /// The CRC-32 of all the storage's bytes.
        package let crc32: UInt32
        /// The error to throw when the bytes checksum to `found` instead.
        package let mismatch: @Sendable (_ found: UInt32) -> any Error

        package init(crc32: UInt32, mismatch: @escaping @Sendable (_ found: UInt32) -> any Error) {
            self.crc32 = crc32
            self.mismatch = mismatch
        }

        /// Throws ``mismatch`` unless `found` is ``crc32``.
        package func check(_ found: UInt32) throws {
            if found != crc32 { throw mismatch(found) }
        }
    }

    private struct State {
        var backing: Backing
        var pendingVerification: Verification?
        /// Set with `pendingVerification` when that check is this CRC-32.
        var pendingChecksum: ExpectedChecksum?
        /// True while the pending check is a deferred fill, which skipping must not drop.
        var pendingIsFill = false
        var writeBarriers: [ObjectIdentifier: @Sendable () -> Void] = [:]
    }

    // A lock rather than Synchronization.Mutex: the state holds raw pointers, which Mutex would
    // require to be Sendable.
    private let lock = NSLock()
    nonisolated(unsafe) private var stateValue: State

    private func withState<R>(_ body: (inout State) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&stateValue)
    }

    /// Owned memory is aligned to a cache line so SIMD kernels and zero-copy writes are happy.
    public static let alignment = 64

    /// Allocates zeroed, 64-byte-aligned owned memory.
    ///
    /// - Parameter byteCount: Size in bytes.
    public init(byteCount: Int) {
        precondition(byteCount >= 0, "negative storage size")
        self.byteCount = byteCount
        stateValue = (State(backing: .owned(Storage.allocate(byteCount, zeroed: true)), pendingVerification: nil))
    }

    /// Copies bytes into new owned memory.
    ///
    /// - Parameter bytes: The contents.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(uninitializedByteCount: bytes.count)
        if let base = bytes.baseAddress, bytes.count > 0 {
            withState { state in
                if case .owned(let pointer?) = state.backing { pointer.copyMemory(from: base, byteCount: bytes.count) }
            }
        }
    }

    /// Copies an array's bytes into new owned memory.
    public convenience init(bytes: [UInt8]) {
        self.init(uninitializedByteCount: bytes.count)
        bytes.withUnsafeBytes { source in
            withState { state in
                if case .owned(let pointer?) = state.backing, let base = source.baseAddress {
                    pointer.copyMemory(from: base, byteCount: source.count)
                }
            }
        }
    }

    private init(uninitializedByteCount byteCount: Int) {
        self.byteCount = byteCount
        stateValue = (State(backing: .owned(Storage.allocate(byteCount, zeroed: false)), pendingVerification: nil))
    }

    /// A read-only, zero-copy view of part of a mapped file.
    ///
    /// - Parameters:
    ///   - file: The mapping, kept alive by this storage.
    ///   - offset: Offset of the first byte in the file.
    ///   - byteCount: Size in bytes.
    ///   - checksum: The CRC-32 to check the bytes against before they are first read.
    /// - Throws: ``CheckpointError`` `.outOfBounds` if the range is not inside the file.
    package init(mapping file: MappedFile, offset: Int, byteCount: Int, checksum: ExpectedChecksum? = nil) throws {
        let slice = try file.slice(offset: offset, length: byteCount)
        self.byteCount = byteCount
        var verification: Verification?
        if let checksum {
            verification = { bytes in try checksum.check(CRC32.checksum(bytes)) }
        }
        stateValue = State(backing: .mapped(file, slice.baseAddress), pendingVerification: verification, pendingChecksum: checksum)
    }

    /// Owned bytes that must pass `verification` before anyone reads them.
    public convenience init(copying bytes: UnsafeRawBufferPointer, verification: Verification?) {
        self.init(copying: bytes)
        withState { $0.pendingVerification = verification }
    }

    /// Owned memory that `fill` writes the first time anyone reads or writes the bytes (a tensor
    /// assembled from DCP chunks): until then nothing is read and no page is touched. A failed
    /// fill is thrown from that access and runs again on the next, as a failed check does.
    package convenience init(byteCount: Int, deferredFill fill: @escaping @Sendable (UnsafeMutableRawBufferPointer) throws -> Void) {
        self.init(uninitializedByteCount: byteCount)
        // The pending check is handed the owned bytes, which this storage may write.
        withState { state in
            state.pendingVerification = { bytes in try fill(UnsafeMutableRawBufferPointer(mutating: bytes)) }
            state.pendingIsFill = true
        }
    }

    /// A window of a mapped file that `fill` writes (through the file, not this read-only mapping)
    /// the first time anyone reads the bytes: a tensor assembled into a scratch file, so its pages
    /// can leave memory once used (see ``init(byteCount:deferredFill:)``).
    package convenience init(
        mapping file: MappedFile, offset: Int, byteCount: Int, deferredFill fill: @escaping @Sendable () throws -> Void
    ) throws {
        try self.init(mapping: file, offset: offset, byteCount: byteCount)
        withState { state in
            state.pendingVerification = { _ in try fill() }
            state.pendingIsFill = true
        }
    }

    /// A storage of `byteCount` bytes at `offset` of this one, sharing them without a copy, when
    /// this one is a window of a mapped file (the new one maps the same file); nil for owned
    /// memory, whose bytes may change. Any pending check runs first: the window has none.
    ///
    /// - Throws: What a pending check throws; `.outOfBounds` for a range past this storage.
    package func mappedWindow(offset: Int, byteCount: Int) throws -> Storage? {
        guard offset >= 0, byteCount >= 0, byteCount <= self.byteCount - offset else {
            throw CheckpointError(
                .outOfBounds, "window past the end of its storage", expected: "within \(self.byteCount) bytes",
                found: "offset \(offset), length \(byteCount)")
        }
        try verify()
        let mapped: (MappedFile, UnsafeRawPointer?)? = withState { state in
            if case .mapped(let file, let pointer) = state.backing { return (file, pointer) }
            return nil
        }
        guard let (file, pointer) = mapped else { return nil }
        let start = pointer.map { $0 - UnsafeRawPointer(file.bytes.baseAddress!) } ?? 0
        return try Storage(mapping: file, offset: start + offset, byteCount: byteCount)
    }

    deinit {
        withState { state in
            if case .owned(let pointer?) = state.backing { free(pointer) }
        }
    }

    private static func allocate(_ byteCount: Int, zeroed: Bool) -> UnsafeMutableRawPointer? {
        guard byteCount > 0 else { return nil }
        var raw: UnsafeMutableRawPointer?
        let rounded = (byteCount + alignment - 1) / alignment * alignment
        guard posix_memalign(&raw, alignment, rounded) == 0, let raw else {
            fatalError("out of memory allocating \(byteCount) bytes")
        }
        if zeroed { memset(raw, 0, byteCount) }
        return raw
    }

    /// True while the bytes are a window into a mapped file.
    public var isMapped: Bool {
        withState { if case .mapped = $0.backing { return true } else { return false } }
    }

    /// True once any pending checksum has run (or if there never was one).
    public var isVerified: Bool { withState { $0.pendingVerification == nil } }

    private static func buffer(_ backing: Backing, _ count: Int) -> UnsafeRawBufferPointer {
        switch backing {
        case .owned(let pointer): return UnsafeRawBufferPointer(start: pointer, count: count)
        case .mapped(_, let pointer): return UnsafeRawBufferPointer(start: pointer, count: count)
        }
    }

    /// Runs `body`, which reads the backing's bytes; for a mapped file, a read fault (the file
    /// shrank under the mapping) becomes `.truncated` (``MappedFile/reading(_:)``).
    private static func reading<R>(_ backing: Backing, _ body: () throws -> R) throws -> R {
        guard case .mapped(let file, _) = backing else { return try body() }
        return try file.reading(body)
    }

    /// Runs any pending verification now.
    ///
    /// - Throws: Whatever the verification throws (for checkpoints, ``CheckpointError`` with
    ///   `.checksumMismatch`), or `.truncated` if the mapped file shrank while it was read. The check
    ///   runs again on the next access if it failed.
    public func verify() throws {
        try withState { state in
            guard let check = state.pendingVerification else { return }
            let backing = state.backing
            try Storage.reading(backing) { try check(Storage.buffer(backing, byteCount)) }
            state.pendingVerification = nil
            state.pendingChecksum = nil
            state.pendingIsFill = false
        }
    }

    /// Drops any pending verification without running it (the caller asked to skip checks). A
    /// storage still to be assembled from its parts (a tensor of a DCP checkpoint) keeps its fill.
    public func skipVerification() {
        withState { state in
            guard !state.pendingIsFill else { return }
            state.pendingVerification = nil
            state.pendingChecksum = nil
        }
    }

    /// The pending check when it is a CRC-32; nil when none is pending or it is another kind.
    package var pendingChecksum: ExpectedChecksum? { withState { $0.pendingChecksum } }

    /// Settles the pending CRC-32 check with the checksum of all the bytes, which the caller
    /// computed while reading them through ``withUnverifiedBytes(_:)``.
    ///
    /// - Parameter found: The CRC-32 of the whole storage.
    /// - Throws: The check's mismatch error (the check stays pending then); nothing when no
    ///   CRC-32 check is pending.
    package func settleChecksum(_ found: UInt32) throws {
        try withState { state in
            guard let expected = state.pendingChecksum else { return }
            try expected.check(found)
            state.pendingVerification = nil
            state.pendingChecksum = nil
        }
    }

    /// Calls `body` with the bytes without running a pending check: for a reader that checksums
    /// what it reads and settles the check (``settleChecksum(_:)``) before it trusts any result.
    ///
    /// - Throws: ``CheckpointError`` `.truncated` if the mapped file shrank under the read, or what
    ///   `body` throws.
    package func withUnverifiedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        // The backing holds the mapping: kept here (the mapped file is `self` of the `reading` call
        // around `body`), a write that moves the bytes to owned memory meanwhile cannot unmap them
        // under `body`, which goes on reading the mapped bytes.
        let backing = withState { $0.backing }
        return try Storage.reading(backing) { try body(Storage.buffer(backing, byteCount)) }
    }

    /// Drops the mapped pages under `range` (bytes of this storage) from the process's resident
    /// memory, as ``MappedFile`` explains; a storage in owned memory is left alone.
    ///
    /// - Parameter range: Byte offsets in this storage.
    package func releasePages(_ range: Range<Int>) {
        let backing = withState { $0.backing }
        guard case .mapped(let file, let base?) = backing, range.lowerBound >= 0, range.upperBound <= byteCount else { return }
        file.releasePages(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    /// Adds a closure that every ``withUnsafeMutableBytes(_:)`` runs before it hands out the
    /// bytes, on the writer's thread, until `owner` removes it: what a copy-on-write snapshot
    /// needs to copy the bytes before anyone changes them. Each owner has at most one (adding
    /// again replaces it), so several snapshots of one storage each keep theirs. The closure must
    /// not write to this storage; it may remove itself.
    package func addWriteBarrier(owner: AnyObject, _ barrier: @escaping @Sendable () -> Void) {
        withState { $0.writeBarriers[ObjectIdentifier(owner)] = barrier }
    }

    /// Removes `owner`'s write barrier, if any.
    package func removeWriteBarrier(owner: AnyObject) {
        withState { _ = $0.writeBarriers.removeValue(forKey: ObjectIdentifier(owner)) }
    }

    /// Calls `body` with the bytes, verifying them first if a check is pending.
    ///
    /// If the bytes are mapped and the file shrinks while `body` reads them (truncated, or
    /// rewritten in place), the missing pages read as zeros and the call throws `.truncated` once
    /// `body` returns, whatever it returned.
    ///
    /// - Parameter body: Reads the bytes; the pointer is valid only during the call.
    /// - Returns: What `body` returns.
    /// - Throws: A failed verification, ``CheckpointError`` `.truncated` if the mapped file shrank
    ///   under the read, or what `body` throws.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try verify()
        return try withUnverifiedBytes(body)
    }

    /// Calls `body` with writable bytes, first copying a mapped window into owned memory.
    ///
    /// - Parameter body: Reads and writes the bytes; the pointer is valid only during the call.
    /// - Returns: What `body` returns.
    /// - Throws: A failed verification, ``CheckpointError`` `.truncated` if the mapped file shrank
    ///   under the copy (the storage then stays mapped), or what `body` throws.
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        try verify()
        let barriers = withState { $0.writeBarriers.isEmpty ? [] : Array($0.writeBarriers.values) }
        for barrier in barriers { barrier() }
        let pointer: UnsafeMutableRawPointer? = try withState { state in
            switch state.backing {
            case .owned(let pointer):
                return pointer
            case .mapped(let file, let source):
                let owned = Storage.allocate(byteCount, zeroed: false)
                do {
                    try file.reading { if let owned, let source { owned.copyMemory(from: source, byteCount: byteCount) } }
                } catch {
                    free(owned)
                    throw error
                }
                state.backing = .owned(owned)
                return owned
            }
        }
        return try body(UnsafeMutableRawBufferPointer(start: pointer, count: byteCount))
    }

    /// A new owned storage holding a copy of these bytes.
    public func copy() throws -> Storage {
        try withUnsafeBytes { Storage(copying: $0) }
    }
}
