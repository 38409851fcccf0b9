import CLinuxPacket
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The service manager's readiness protocol, sd_notify(3), without libsystemd.
///
/// systemd (for `Type=notify`, or whenever `NotifyAccess=` allows it) puts the path of a
/// datagram socket in `$NOTIFY_SOCKET`: a file system path, or `@name` for a socket in the
/// abstract namespace (the `@` stands for a leading NUL byte). A service reports its state by
/// sending one AF_UNIX datagram of newline-separated `KEY=VALUE` assignments:
///
/// - `READY=1`: start-up is finished; `systemctl start` returns and dependents start.
/// - `STATUS=...`: one line of free text shown by `systemctl status`.
/// - `WATCHDOG=1`: keep-alive. With `WatchdogSec=` the manager sets `$WATCHDOG_USEC` (and
///   `$WATCHDOG_PID`: the variables are meant for that process only) and kills the service
///   when no keep-alive arrives within that time; sd_watchdog_enabled(3) advises sending
///   one every half interval.
/// - `STOPPING=1`: shutdown has begun (the manager then waits up to `TimeoutStopSec=`).
/// - `RELOADING=1`: a reload has begun; `READY=1` ends it.
///
/// Without `$NOTIFY_SOCKET` (run by hand, from a test, under another supervisor) every call
/// is a no-op. Sending never blocks (MSG_DONTWAIT): a manager that is not reading cannot stall
/// the collector. Failures are not thrown, since a lost notification must not stop capture, but
/// each one is counted and returned so the caller can log it.
public final class SystemdNotifier: Sendable {
    /// `$NOTIFY_SOCKET` as given (a path or `@name`), or nil when notifications are off.
    public let socketName: String?
    /// `$WATCHDOG_USEC` in microseconds when the watchdog is on for this process: set, a
    /// positive decimal number, and `$WATCHDOG_PID` absent or equal to our process ID.
    public let watchdogInterval: UInt64?
    /// Why `$NOTIFY_SOCKET` could not be used (unsupported form, name too long, socket(2)
    /// failed); every `notify` then returns it.
    public let setupError: SystemError?

    private let descriptor: FileDescriptor?
    private let address: sockaddr_un
    private let addressLength: socklen_t
    private let failureCount = Atomic<Int>(0)
    private let sentCount = Atomic<Int>(0)

    /// A notifier from the process environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    /// `WATCHDOG_PID`), read with getenv(3).
    public convenience init() {
        var environment: [String: String] = [:]
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        self.init(environment: environment)
    }

    /// A notifier from `environment` (for tests and for callers that already hold one).
    /// `processID` is compared with `WATCHDOG_PID`.
    public init(environment: [String: String], processID: Int32 = getpid()) {
        watchdogInterval = Self.watchdogInterval(environment: environment, processID: processID)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard let name = environment["NOTIFY_SOCKET"], !name.isEmpty else {
            (socketName, setupError, descriptor, self.address, addressLength) = (nil, nil, nil, address, 0)
            return
        }
        socketName = name
        // sun_path holds 108 bytes; a path needs its terminating NUL, an abstract name does not.
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        var bytes = Array(name.utf8)
        let isAbstract = bytes.first == UInt8(ascii: "@")
        var problem: Int32 = 0
        if isAbstract {
            bytes[0] = 0
            if bytes.count < 2 || bytes.count > capacity { problem = ENAMETOOLONG }
        } else if bytes.first != UInt8(ascii: "/") {
            problem = EAFNOSUPPORT  // e.g. systemd 254's vsock: addresses; not supported here
        } else {
            bytes.append(0)
            if bytes.count > capacity { problem = ENAMETOOLONG }
        }
        if problem != 0 {
            (setupError, descriptor, self.address, addressLength) = (
                SystemError(call: "sd_notify", subject: name, errno: problem), nil, address, 0
            )
            return
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        self.address = address
        addressLength = socklen_t(pathOffset + bytes.count)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 {
            setupError = SystemError(call: "socket", subject: name, errno: Glibc.errno)
            descriptor = nil
        } else {
            setupError = nil
            descriptor = FileDescriptor(adopting: fd)
        }
    }

    /// Whether `$NOTIFY_SOCKET` was set (notifications go somewhere, or fail and are counted).
    public var isEnabled: Bool { socketName != nil }

    /// Notifications that could not be sent.
    public var failures: Int { failureCount.load(ordering: .relaxed) }

    /// Notifications sent.
    public var sent: Int { sentCount.load(ordering: .relaxed) }

    /// Sends `state` (newline-separated `KEY=VALUE` assignments) as one datagram. The
    /// corresponding C function is `sendto(2)` with `MSG_DONTWAIT|MSG_NOSIGNAL`; EINTR is
    /// retried, any other failure is counted and returned (nil: sent, or notifications off).
    @discardableResult
    public func notify(_ state: String) -> SystemError? {
        guard let name = socketName else { return nil }
        guard let descriptor else {
            failureCount.add(1, ordering: .relaxed)
            return setupError ?? SystemError(call: "sd_notify", subject: name, errno: EBADF)
        }
        var address = self.address
        let length = addressLength
        var message = Array(state.utf8)
        do throws(SystemError) {
            let sentBytes = try Syscall.retrying("sendto", name) {
                message.withUnsafeMutableBytes { buffer in
                    withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(descriptor.rawValue, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), $0, length)
                        }
                    }
                }
            }
            // A datagram goes whole or not at all; anything else is a kernel surprise.
            if sentBytes != message.count { throw SystemError(call: "sendto", subject: name, errno: EMSGSIZE) }
        } catch {
            failureCount.add(1, ordering: .relaxed)
            return error
        }
        sentCount.add(1, ordering: .relaxed)
        return nil
    }

    /// `READY=1`, optionally with a status line in the same datagram.
    @discardableResult
    public func ready(status: String? = nil) -> SystemError? {
        notify(status.map { "READY=1\nSTATUS=\(Self.oneLine($0))" } ?? "READY=1")
    }

    /// `STATUS=...`; line breaks become spaces (the value is one line).
    @discardableResult
    public func status(_ text: String) -> SystemError? { notify("STATUS=\(Self.oneLine(text))") }

    /// `WATCHDOG=1`: send every `watchdogInterval / 2`, and only while every capture thread is
    /// alive (that is the point of the watchdog).
    @discardableResult
    public func watchdog() -> SystemError? { notify("WATCHDOG=1") }

    /// `STOPPING=1`: on SIGTERM, before draining.
    @discardableResult
    public func stopping() -> SystemError? { notify("STOPPING=1") }

    /// `RELOADING=1`: on SIGHUP; send `ready()` when the reload is done.
    @discardableResult
    public func reloading() -> SystemError? { notify("RELOADING=1") }

    /// How often to send `WATCHDOG=1` in nanoseconds (half the interval, as
    /// sd_watchdog_enabled(3) advises), or nil when the watchdog is off.
    public var watchdogPingIntervalNanoseconds: UInt64? {
        watchdogInterval.map { $0.multipliedReportingOverflow(by: 500).partialValue }
    }

    /// `$WATCHDOG_USEC` when it applies to `processID`; nil when unset, unparsable, zero, or
    /// meant for another process (`$WATCHDOG_PID`).
    static func watchdogInterval(environment: [String: String], processID: Int32) -> UInt64? {
        guard let text = environment["WATCHDOG_USEC"], let microseconds = UInt64(text), microseconds > 0 else { return nil }
        if let pidText = environment["WATCHDOG_PID"] {
            guard let pid = Int32(pidText), pid == processID else { return nil }
        }
        return microseconds
    }

    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
    }
}
