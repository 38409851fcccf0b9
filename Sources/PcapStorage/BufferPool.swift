import CaptureSystem

/// The bounded set of batch buffers. Buffers are allocated on first use up to the limit and
/// recycled; the number in flight (queued or being written) is what back-pressure looks at.
final class BufferPool: @unchecked Sendable {
    private let lock = ConditionLock()
    private var free: [BatchBuffer] = []
    private var allocated = 0
    private(set) var inFlight = 0
    let limit: Int
    let bufferSize: Int

    init(limit: Int, bufferSize: Int, preallocate: Int = 0) {
        self.limit = limit
        self.bufferSize = bufferSize
        free.reserveCapacity(limit)
        // The buffers a busy steady state cycles through, made now instead of on the capture
        // path (each first use would also fault its pages in there).
        for _ in 0..<min(preallocate, limit) { free.append(BatchBuffer(capacity: bufferSize)) }
        allocated = free.count
    }

    /// A free buffer, or nil when all `limit` buffers are taken.
    func tryAcquire() -> BatchBuffer? {
        lock.withLock {
            if let buffer = free.popLast() { return buffer }
            guard allocated < limit else { return nil }
            allocated += 1
            return BatchBuffer(capacity: bufferSize)
        }
    }

    /// Waits until a buffer is released; returns false when nothing is in flight, in which
    /// case waiting would never end (every buffer sits half-full in a session).
    func waitForRelease() -> Bool {
        lock.withLock {
            guard free.isEmpty else { return true }
            guard inFlight > 0 else { return false }
            lock.wait()
            return true
        }
    }

    /// Whether `limit` buffers are queued or being written.
    func inFlightAtLeast(_ limit: Int) -> Bool { lock.withLock { inFlight >= limit } }

    /// Waits until fewer than `limit` buffers are in flight.
    func waitForInFlightBelow(_ limit: Int) {
        lock.withLock {
            while inFlight >= limit { lock.wait() }
        }
    }

    /// A buffer handed to a writer.
    func markInFlight() { lock.withLock { inFlight += 1 } }

    /// A writer is done with a buffer.
    func release(_ buffer: BatchBuffer) {
        buffer.reset()
        lock.withLock {
            free.append(buffer)
            inFlight -= 1
            lock.broadcast()
        }
    }

    /// Returns a buffer that was never handed to a writer.
    func giveBack(_ buffer: BatchBuffer) {
        buffer.reset()
        lock.withLock {
            free.append(buffer)
            lock.broadcast()
        }
    }

    var allocatedBytes: Int { lock.withLock { allocated * bufferSize } }
}
