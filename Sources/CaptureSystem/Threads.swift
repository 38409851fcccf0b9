import CLinuxPacket

#if canImport(Glibc)
import Glibc
#endif

/// A mutex with one condition variable (pthread). Capture and writer threads are OS threads,
/// not Swift concurrency tasks, and block on this only per buffer, never per packet.
public final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    @inline(__always)
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a signal; call with the lock held (inside `withLock`).
    public func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a signal or `nanoseconds`; call with the lock held. Returns false on timeout.
    @discardableResult
    public func wait(nanoseconds: UInt64) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let total = UInt64(deadline.tv_nsec) + nanoseconds
        deadline.tv_sec += Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        return pthread_cond_timedwait(condition, mutex, &deadline) == 0
    }

    public func broadcast() { pthread_cond_broadcast(condition) }
}

/// An OS thread running a closure; `join()` waits for it.
public final class OSThread: @unchecked Sendable {
    private var thread = pthread_t()

    private final class Box {
        let name: String
        let background: Bool
        let body: () -> Void
        init(name: String, background: Bool, _ body: @escaping () -> Void) {
            self.name = name
            self.background = background
            self.body = body
        }
    }

    /// Starts `body` on a new thread named `name` (at most 15 bytes are kept by Linux). A
    /// `background` thread runs under SCHED_BATCH: it gets its fair share of the CPU, but its
    /// wake-ups never preempt a running thread (a writer woken by a full buffer must not
    /// interrupt the capture thread that filled it, measured: that cost the capture thread
    /// its caches at every buffer).
    public init(name: String, background: Bool = false, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        let box = Unmanaged.passRetained(Box(name: String(name.utf8.prefix(15))!, background: background, body)).toOpaque()
        let status = pthread_create(&thread, nil, { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            CLinuxPacket_setThreadName(box.name)
            if box.background { _ = CLinuxPacket_setBatchScheduling() }
            box.body()
            return nil
        }, box)
        guard status == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError(call: "pthread_create", subject: name, errno: status)
        }
    }

    public func join() { pthread_join(thread, nil) }
}

/// Wall-clock and monotonic time in nanoseconds.
public enum Clock {
    public static func realtimeNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Sleeps at least `nanoseconds` (a signal may end it early). The corresponding C function
    /// is `nanosleep(2)`.
    public static func sleep(nanoseconds: UInt64) {
        var duration = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        _ = nanosleep(&duration, nil)
    }

    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
