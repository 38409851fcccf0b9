/// A large buffer of finished records for one file: the capture thread fills it (the single
/// copy of each frame), a writer thread writes it with one write(2) and returns it to the pool.
final class BatchBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    /// Bytes filled.
    var used = 0
    /// Records (frames) in the buffer, and the sum of their captured lengths.
    var records = 0
    var dataBytes = 0
    /// When the first record went in (monotonic ns), for the flush interval.
    var firstAppendTime: UInt64 = 0
    /// The file the bytes belong to.
    var target: FileTarget?

    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit { base.deallocate() }

    @inline(__always)
    var remaining: Int { capacity - used }

    var isEmpty: Bool { used == 0 }

    func reset() {
        used = 0
        records = 0
        dataBytes = 0
        target = nil
    }

    var contents: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: used) }
}
