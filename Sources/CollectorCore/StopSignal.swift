import CaptureSystem
import Synchronization

/// SIGINT and SIGTERM for a command whose main thread is busy working (replay): the signals are
/// blocked in every thread (`ProcessSignals.block()`, called before any thread exists) and a
/// small thread takes them one at a time; the work loop polls `isRequested` between batches of
/// records and then stops as if its input had ended.
public final class StopSignal: @unchecked Sendable {
    private let signal = Atomic<Int32>(0)
    private let done = Atomic<Bool>(false)
    private var thread: OSThread?

    /// Starts watching. `ProcessSignals.block()` must have been called before any thread.
    public init() throws(SystemError) {
        thread = try OSThread(name: "span-signals") { [unowned self] in
            while !done.load(ordering: .relaxed) {
                guard let received = ProcessSignals.wait(milliseconds: 100),
                    received == ProcessSignals.interrupt || received == ProcessSignals.terminate
                else { continue }
                _ = signal.compareExchange(expected: 0, desired: received, ordering: .relaxed)
            }
        }
    }

    /// A stop without a signal (tests, or a caller with its own reason).
    public func request(signal number: Int32) {
        _ = signal.compareExchange(expected: 0, desired: number, ordering: .relaxed)
    }

    /// The first SIGINT or SIGTERM received, if any.
    public var received: Int32? {
        let value = signal.load(ordering: .relaxed)
        return value == 0 ? nil : value
    }

    @inline(__always)
    public var isRequested: Bool { signal.load(ordering: .relaxed) != 0 }

    /// Stops the watching thread (signals stay blocked).
    public func finish() {
        done.store(true, ordering: .relaxed)
        thread?.join()
        thread = nil
    }
}
