import CaptureSystem
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for systemd's notification socket: an AF_UNIX datagram socket bound to a path in
/// a temporary directory (or an abstract `@name`), read on a background thread. Give a child
/// `environment` (or `socketName` as NOTIFY_SOCKET) and wait for what it sends, always bounded.
///
/// Abstract names belong to a network namespace: for a collector started with
/// `ip netns exec`, use the path form (the default), which any namespace can reach.
final class NotifyListener: @unchecked Sendable {
    /// The value for NOTIFY_SOCKET.
    let socketName: String
    private let path: String?
    private let fd: Int32
    private let condition = NSCondition()
    private var received: [String] = []
    private var stopRequested = false
    private var finished = false

    /// A socket at `<directory>/notify.sock`.
    convenience init(directory: String) throws {
        try self.init(name: directory + "/notify.sock")
    }

    /// A socket in the abstract namespace, `@<name>`.
    convenience init(abstractName: String) throws {
        try self.init(name: "@" + abstractName)
    }

    private init(name: String) throws {
        socketName = name
        path = name.hasPrefix("@") ? nil : name
        if let path { unlink(path) }
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 } else { bytes.append(0) }
        guard bytes.count <= MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw SystemError(call: "bind", subject: name, errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let error = errno
            Glibc.close(fd)
            throw SystemError(call: "bind", subject: name, errno: error)
        }
        Thread.detachNewThread { [self] in receiveLoop() }
    }

    deinit { close() }

    var environment: [String: String] { ["NOTIFY_SOCKET": socketName] }

    private func receiveLoop() {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            condition.lock()
            let stop = stopRequested
            condition.unlock()
            if stop { break }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count >= 0 else { continue }
            let message = String(decoding: buffer[0..<count], as: UTF8.self)
            condition.lock()
            received.append(message)
            condition.broadcast()
            condition.unlock()
        }
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// Every datagram so far, in arrival order.
    var messages: [String] {
        condition.lock()
        defer { condition.unlock() }
        return received
    }

    /// Waits until `predicate` holds for the datagrams received (or `timeout` seconds pass)
    /// and returns them either way.
    @discardableResult
    func wait(timeout: Double, until predicate: ([String]) -> Bool) -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !predicate(received), condition.wait(until: deadline) {}
        return received
    }

    /// Waits for at least `count` datagrams (bounded).
    @discardableResult
    func waitForMessages(count: Int, timeout: Double = 10) -> [String] {
        wait(timeout: timeout) { $0.count >= count }
    }

    /// Waits for a datagram holding the assignment `line` (e.g. `READY=1`), bounded.
    func waitForAssignment(_ line: String, timeout: Double = 10) -> Bool {
        wait(timeout: timeout) { $0.contains { $0.split(separator: "\n").contains(Substring(line)) } }
            .contains { $0.split(separator: "\n").contains(Substring(line)) }
    }

    /// Stops the thread, closes the socket and removes its path (also done by deinit).
    func close() {
        condition.lock()
        if stopRequested {
            condition.unlock()
            return
        }
        stopRequested = true
        let deadline = Date().addingTimeInterval(5)
        while !finished, condition.wait(until: deadline) {}
        condition.unlock()
        Glibc.close(fd)
        if let path { unlink(path) }
    }
}

@Suite struct SystemdTests {
    // MARK: The notifier

    @Test func notifierSendsOneDatagramPerCallToAPathSocket() throws {
        let directory = try TestSupport.makeTemporaryDirectory("notify")
        defer { TestSupport.removeDirectory(directory) }
        let listener = try NotifyListener(directory: directory)
        defer { listener.close() }
        let notifier = SystemdNotifier(environment: listener.environment)
        #expect(notifier.isEnabled)
        #expect(notifier.setupError == nil)
        try sendEveryKind(notifier, to: listener)
    }

    @Test func notifierReachesAnAbstractSocket() throws {
        let name = "span-collector-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        let listener = try NotifyListener(abstractName: name)
        defer { listener.close() }
        #expect(listener.socketName == "@" + name)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name])
        try sendEveryKind(notifier, to: listener)
    }

    private func sendEveryKind(_ notifier: SystemdNotifier, to listener: NotifyListener) throws {
        #expect(notifier.ready() == nil)
        #expect(notifier.status("received 10 (5 pps)\nwritten 10") == nil)
        #expect(notifier.watchdog() == nil)
        #expect(notifier.reloading() == nil)
        #expect(notifier.ready(status: "reloaded") == nil)
        #expect(notifier.stopping() == nil)
        #expect(notifier.notify("STATUS=x\nERRNO=5") == nil)
        let expected = [
            "READY=1", "STATUS=received 10 (5 pps) written 10", "WATCHDOG=1", "RELOADING=1",
            "READY=1\nSTATUS=reloaded", "STOPPING=1", "STATUS=x\nERRNO=5",
        ]
        let got = listener.waitForMessages(count: expected.count)
        #expect(got == expected)
        #expect(notifier.sent == expected.count)
        #expect(notifier.failures == 0)
        // Nothing extra arrives afterwards.
        usleep(100_000)
        #expect(listener.messages.count == expected.count)
    }

    @Test func withoutNotifySocketEverythingIsANoOp() {
        for environment in [[:], ["NOTIFY_SOCKET": ""], ["WATCHDOG_USEC": "1000000"]] {
            let notifier = SystemdNotifier(environment: environment)
            #expect(!notifier.isEnabled)
            #expect(notifier.ready() == nil)
            #expect(notifier.watchdog() == nil)
            #expect(notifier.stopping() == nil)
            #expect(notifier.sent == 0 && notifier.failures == 0)
        }
    }

    @Test func theProcessEnvironmentDecides() {
        // The test runner normally has no NOTIFY_SOCKET; whatever it has, the notifier agrees.
        let notifier = SystemdNotifier()
        let value = getenv("NOTIFY_SOCKET").map { String(cString: $0) } ?? ""
        #expect(notifier.isEnabled == !value.isEmpty)
        #expect(notifier.socketName == (value.isEmpty ? nil : value))
    }

    @Test func failuresAreReturnedAndCountedNotThrown() throws {
        let directory = try TestSupport.makeTemporaryDirectory("notify-missing")
        defer { TestSupport.removeDirectory(directory) }
        // Nobody listens at that path.
        let missing = SystemdNotifier(environment: ["NOTIFY_SOCKET": directory + "/nobody.sock"])
        let error = try #require(missing.ready())
        #expect(error.call == "sendto")
        #expect(error.errno == ENOENT)
        #expect(missing.watchdog() != nil)
        #expect(missing.failures == 2 && missing.sent == 0)

        let relative = SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/notify.sock"])
        #expect(relative.setupError?.errno == EAFNOSUPPORT)
        #expect(relative.ready()?.errno == EAFNOSUPPORT)
        #expect(relative.failures == 1)

        let long = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)])
        #expect(long.setupError?.errno == ENAMETOOLONG)
        #expect(long.status("x") != nil)
    }

    @Test func aManagerThatDoesNotReadNeverBlocksTheSender() throws {
        let directory = try TestSupport.makeTemporaryDirectory("notify-full")
        defer { TestSupport.removeDirectory(directory) }
        // A bound socket nobody reads: its queue fills after a few datagrams.
        let path = directory + "/full.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { Glibc.close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        let start = Date()
        var errors: [SystemError] = []
        for index in 0..<2000 {
            if let error = notifier.status("message \(index) " + String(repeating: "x", count: 1000)) { errors.append(error) }
        }
        #expect(Date().timeIntervalSince(start) < 5, "sending blocked")
        #expect(notifier.sent > 0)
        #expect(!errors.isEmpty, "the queue never filled; the test proves nothing")
        #expect(errors.allSatisfy { $0.errno == EAGAIN })
        #expect(notifier.failures == errors.count)
    }

    @Test(arguments: [
        ([String: String](), nil),
        (["WATCHDOG_USEC": "30000000"], 30_000_000),
        (["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"], 30_000_000),
        (["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"], nil),
        (["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "self"], nil),
        (["WATCHDOG_USEC": "0"], nil),
        (["WATCHDOG_USEC": "-5"], nil),
        (["WATCHDOG_USEC": "30s"], nil),
        (["WATCHDOG_USEC": ""], nil),
        (["WATCHDOG_PID": "4242"], nil),
    ] as [([String: String], UInt64?)])
    func watchdogIntervalFollowsTheEnvironment(environment: [String: String], expected: UInt64?) {
        let notifier = SystemdNotifier(environment: environment, processID: 4242)
        #expect(notifier.watchdogInterval == expected)
        #expect(notifier.watchdogPingIntervalNanoseconds == expected.map { $0 * 500 })
    }

    @Test func watchdogPIDDefaultsToThisProcess() {
        let mine = SystemdNotifier(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "\(getpid())"])
        #expect(mine.watchdogInterval == 2_000_000)
        #expect(mine.watchdogPingIntervalNanoseconds == 1_000_000_000)
        let other = SystemdNotifier(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "\(getpid() + 1)"])
        #expect(other.watchdogInterval == nil)
    }

    // MARK: The listener itself (reused by the end-to-end tests)

    @Test func listenerCollectsDatagramsAndWaitsBounded() throws {
        let directory = try TestSupport.makeTemporaryDirectory("listener")
        defer { TestSupport.removeDirectory(directory) }
        let listener = try NotifyListener(directory: directory)
        #expect(FileManager.default.fileExists(atPath: directory + "/notify.sock"))
        // Nothing sent: the wait gives up at its timeout.
        let start = Date()
        #expect(listener.waitForMessages(count: 1, timeout: 0.3).isEmpty)
        let waited = Date().timeIntervalSince(start)
        #expect(waited >= 0.25 && waited < 3)
        #expect(!listener.waitForAssignment("READY=1", timeout: 0.1))

        // Sent from another thread, a little later.
        let notifier = SystemdNotifier(environment: listener.environment)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) {
            notifier.status("starting")
            notifier.ready()
        }
        #expect(listener.waitForAssignment("READY=1", timeout: 10))
        #expect(listener.messages == ["STATUS=starting", "READY=1"])
        listener.close()
        listener.close()  // idempotent
        #expect(!FileManager.default.fileExists(atPath: directory + "/notify.sock"))
        #expect(notifier.ready() != nil, "the socket is gone, so sending fails")
    }

    // MARK: The unit file

    static let unitFile = TestSupport.packageRoot.appendingPathComponent("config/span-collector.service").path

    /// `systemd-analyze verify` on `unit` (written as span-collector.service in a fresh
    /// directory): passes only with exit status 0 and no diagnostic about the unit, since
    /// verify merely warns (exit 0) about unknown keys and unparsable values.
    static func verify(_ unit: String) throws -> (passed: Bool, diagnostics: String) {
        let directory = try TestSupport.makeTemporaryDirectory("unit")
        defer { TestSupport.removeDirectory(directory) }
        let path = directory + "/span-collector.service"
        try unit.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try TestSupport.run(["systemd-analyze", "verify", path], timeout: 60)
        let diagnostics = (result.standardError + result.standardOutput).split(separator: "\n")
            .filter { $0.contains("span-collector.service") }.joined(separator: "\n")
        return (result.status == 0 && diagnostics.isEmpty, diagnostics + "\n(exit \(result.status)) " + result.standardError)
    }

    /// `unit` (by default the shipped one) with its commands pointing at `binary` (by default
    /// the collector this build made): verify insists that the binary exists and is executable.
    static func unitForVerification(
        _ unit: String? = nil, binary: String = TestSupport.collectorBinary
    ) throws -> String {
        let text = try unit ?? String(contentsOfFile: unitFile, encoding: .utf8)
        try #require(FileManager.default.isExecutableFile(atPath: binary), "no built span-collector at \(binary)")
        let rewritten = text.replacingOccurrences(of: "=/usr/bin/span-collector ", with: "=\(binary) ")
        #expect(rewritten != text, "ExecStart= no longer names /usr/bin/span-collector")
        return rewritten
    }

    /// The overall exposure `systemd-analyze security --offline=true` gives `unit` (0 best,
    /// 10 worst), with its table for failure messages.
    static func exposure(of unit: String) throws -> (score: Double, table: String) {
        let directory = try TestSupport.makeTemporaryDirectory("unit")
        defer { TestSupport.removeDirectory(directory) }
        let path = directory + "/span-collector.service"
        try unit.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try TestSupport.run(["systemd-analyze", "security", "--offline=true", "--no-pager", path], timeout: 60)
        let marker = "Overall exposure level for span-collector.service: "
        let line = try #require(
            result.standardOutput.split(separator: "\n").first { $0.contains(marker) },
            "no overall exposure in: \(result.standardOutput) \(result.standardError)")
        let value = line.components(separatedBy: marker)[1].split(separator: " ").first.map(String.init) ?? ""
        return (try #require(Double(value), "unparsable exposure in '\(line)'"), result.standardOutput)
    }

    /// The ceiling issue 14 sets for the unit (3.6 before the sandboxing of ProtectProc=,
    /// ProcSubset=, PrivateMounts= and SystemCallFilter=).
    static let maximumExposure = 2.0

    static var systemdAnalyzeAvailable: Bool {
        ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test func theUnitFileVerifies() throws {
        try #require(Self.systemdAnalyzeAvailable, "systemd-analyze missing: apt-get install systemd (make deps)")
        let unit = try Self.unitForVerification()
        let result = try Self.verify(unit)
        #expect(result.passed, "systemd-analyze verify: \(result.diagnostics)")
    }

    @Test func theUnitIsRatedAtMostTwoBySystemdAnalyzeSecurity() throws {
        try #require(Self.systemdAnalyzeAvailable, "systemd-analyze missing: apt-get install systemd (make deps)")
        let unit = try Self.unitForVerification()
        let rating = try Self.exposure(of: unit)
        #expect(rating.score <= Self.maximumExposure, "exposure \(rating.score):\n\(rating.table)")
        // The measure is sensitive: without the system call filter the same unit rates worse.
        let unfiltered = unit.replacingOccurrences(of: "\nSystemCallFilter=", with: "\n#SystemCallFilter=")
        #expect(try Self.exposure(of: unfiltered).score > rating.score)
    }

    @Test(arguments: [
        ("a misspelled key", "ProtectSystem=strict", "ProtectSystm=strict"),
        ("an unparsable value", "WatchdogSec=30", "WatchdogSec=thirty"),
        ("an unknown service type", "Type=notify", "Type=notifyy"),
        ("an unknown address family", "RestrictAddressFamilies=AF_PACKET", "RestrictAddressFamilies=AF_PAKET"),
        ("no ExecStart", "ExecStart=", "#ExecStart="),
        ("an unknown system call group", "SystemCallFilter=@system-service", "SystemCallFilter=@system-servic"),
        ("an unknown ProcSubset", "ProcSubset=pid", "ProcSubset=pids"),
        // verify checks the first command of each Exec*= list: the check-config one here.
        ("a missing program", "ExecReload=/", "ExecReload=/nonexistent/"),
    ])
    func aBrokenUnitFileFailsVerification(breakage: (String, String, String)) throws {
        let (what, original, broken) = breakage
        try #require(Self.systemdAnalyzeAvailable, "systemd-analyze missing: apt-get install systemd (make deps)")
        let unit = try Self.unitForVerification()
        #expect(unit.contains("\n" + original), "\(what): the unit no longer has '\(original)'")
        let result = try Self.verify(unit.replacingOccurrences(of: "\n" + original, with: "\n" + broken))
        #expect(!result.passed, "verification accepted a unit with \(what)")
    }

    /// The settings the design promises (docs/DESIGN.md section 5), each present exactly once
    /// in [Service]: verify accepts a unit without any of them.
    @Test func theUnitFileCarriesTheDesignSettings() throws {
        let text = try String(contentsOfFile: Self.unitFile, encoding: .utf8)
        var section = ""
        var settings: [String: [String]] = [:]
        for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if line.hasPrefix("[") { section = line; continue }
            guard section == "[Service]", !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            settings[String(line[..<equals]), default: []].append(String(line[line.index(after: equals)...]))
        }
        let required: [String: String] = [
            "Type": "notify",
            "ExecStartPre": "/usr/bin/span-collector check-config /etc/span-collector/span-collector.toml",
            "ExecStart": "/usr/bin/span-collector run --config /etc/span-collector/span-collector.toml",
            "User": "span-collector", "Group": "span-collector",
            "AmbientCapabilities": "CAP_NET_RAW", "CapabilityBoundingSet": "CAP_NET_RAW",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/span-collector",
            "StateDirectory": "span-collector", "StateDirectoryMode": "0750", "UMask": "0027",
            "PrivateTmp": "yes", "ProtectHome": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
            "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
            "RestrictAddressFamilies": "AF_PACKET AF_UNIX AF_INET AF_INET6 AF_NETLINK",
            "RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
            "SystemCallArchitectures": "native", "WatchdogSec": "30", "Restart": "on-failure",
            "TimeoutStopSec": "60", "KillSignal": "SIGTERM", "LimitMEMLOCK": "infinity",
        ]
        for (key, value) in required {
            #expect(settings[key] == [value], "\(key)=")
        }
        // A reload that check-config rejects fails before the collector sees SIGHUP.
        #expect(settings["ExecReload"] == [
            "/usr/bin/span-collector check-config /etc/span-collector/span-collector.toml", "/bin/kill -HUP $MAINPID",
        ])
        // A configuration error (exit 1) is not restarted, and failures cannot loop forever.
        #expect(settings["RestartPreventExitStatus"] == ["1"])
        #expect(settings["SystemCallFilter"] == ["@system-service", "~@privileged @resources"])
        #expect(settings["ProtectProc"] == ["invisible"])
        #expect(settings["ProcSubset"] == ["pid"])
        #expect(settings["PrivateMounts"] == ["yes"])
        #expect(text.contains("\nStartLimitIntervalSec=60\nStartLimitBurst=5\n"))
        #expect(settings["DynamicUser"] == nil)
        #expect(!(settings["CapabilityBoundingSet"] ?? []).joined().contains("CAP_IPC_LOCK"))
    }
}
