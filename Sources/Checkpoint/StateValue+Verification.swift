extension StateValue {
    /// Runs every storage's pending CRC-32 check now, spreading storages over the CPU cores.
    ///
    /// Checks otherwise run lazily, the first time each tensor's bytes are read. Call this to fail
    /// fast on a damaged file, or to read a whole checkpoint at full speed before training resumes.
    ///
    /// - Throws: The first ``CheckpointError`` (`.checksumMismatch`) found, in storage order.
    public func verifyChecksums() throws {
        let storages = storagesInOrder.filter { !$0.isVerified }
        // Largest first, so one big storage does not start last and leave a core idle.
        let order = storages.indices.sorted { storages[$0].byteCount > storages[$1].byteCount }
        for result in ParallelWork.map(count: storages.count, order: order, { try storages[$0].verify() }) {
            try result.get()
        }
    }
}
