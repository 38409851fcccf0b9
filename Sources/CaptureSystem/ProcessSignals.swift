import CLinuxPacket

#if canImport(Glibc)
import Glibc
#endif

/// Facts about this process and the machine.
public enum HostSystem {
    /// Online processors. The corresponding C function is `sysconf(_SC_NPROCESSORS_ONLN)`.
    public static var processorCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

/// The signals the collector handles synchronously: blocked in every thread (so no thread is
/// ever interrupted or killed by them) and taken one at a time on the main thread.
public enum ProcessSignals {
    public static let interrupt = SIGINT
    public static let terminate = SIGTERM
    public static let hangUp = SIGHUP
    static var handled: [Int32] { [SIGINT, SIGTERM, SIGHUP] }

    /// Blocks the handled signals in the calling thread and every thread it starts afterwards:
    /// call before any thread exists. The corresponding C function is `pthread_sigmask(3)`.
    public static func block() {
        var signals = handled
        _ = CLinuxPacket_blockSignals(&signals, Int32(signals.count))
    }

    /// Waits up to `milliseconds` for a handled signal; nil on timeout. The corresponding C
    /// function is `sigtimedwait(2)`.
    public static func wait(milliseconds: Int32) -> Int32? {
        var signals = handled
        let received = CLinuxPacket_waitSignal(&signals, Int32(signals.count), milliseconds)
        return received > 0 ? received : nil
    }
}
