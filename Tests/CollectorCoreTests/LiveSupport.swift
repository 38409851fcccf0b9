import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two network namespaces joined by a veth pair: `sender` (vA, 198.51.100.1, 2001:db8::1,
/// MAC 02:00:00:00:00:aa) and `collector` (vB, 198.51.100.2, 2001:db8::2, 02:00:00:00:00:bb),
/// the addresses the fixtures use. Traffic never leaves them; `remove()` (also from deinit)
/// deletes both, so cleanup runs whatever the test did.
final class NamespacePair {
    nonisolated(unsafe) private static var counter = 0
    let sender: String
    let collector: String
    private var removed = false

    static var isAvailable: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/usr/bin/ip") }

    init() throws {
        Self.counter += 1
        let tag = "sc\(getpid() % 100_000)x\(Self.counter)"
        sender = tag + "a"
        collector = tag + "b"
        let steps: [[String]] = [
            ["ip", "netns", "add", sender],
            ["ip", "netns", "add", collector],
            ["ip", "link", "add", "vA", "netns", sender, "type", "veth", "peer", "name", "vB", "netns", collector],
            ["ip", "-n", sender, "link", "set", "vA", "address", "02:00:00:00:00:aa", "up"],
            ["ip", "-n", collector, "link", "set", "vB", "address", "02:00:00:00:00:bb", "up"],
            ["ip", "-n", sender, "addr", "add", "198.51.100.1/24", "dev", "vA"],
            ["ip", "-n", collector, "addr", "add", "198.51.100.2/24", "dev", "vB"],
            ["ip", "-n", sender, "addr", "add", "2001:db8::1/64", "dev", "vA", "nodad"],
            ["ip", "-n", collector, "addr", "add", "2001:db8::2/64", "dev", "vB", "nodad"],
            ["ip", "-n", sender, "link", "set", "lo", "up"],
            ["ip", "-n", collector, "link", "set", "lo", "up"],
        ]
        for step in steps {
            let result = try TestSupport.run(step, timeout: 20)
            if result.status != 0 {
                remove()
                throw SetupError(message: "\(step.joined(separator: " ")): \(result.standardError)")
            }
        }
    }

    struct SetupError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    deinit { remove() }

    func remove() {
        guard !removed else { return }
        removed = true
        _ = try? TestSupport.run(["ip", "netns", "del", sender], timeout: 20)
        _ = try? TestSupport.run(["ip", "netns", "del", collector], timeout: 20)
    }

    /// Sends capture files from the sender side, as fast as possible, in order.
    func replay(_ files: [String]) throws {
        let result = try TestSupport.run(["ip", "netns", "exec", sender, "tcpreplay", "-q", "-t", "-i", "vA"] + files, timeout: 120)
        #expect(result.status == 0, "tcpreplay: \(result.standardError)")
    }

    /// A counter of /proc/net/snmp (`Icmp` row) or /proc/net/snmp6 inside the collector namespace.
    func icmpOutDestUnreachables() throws -> (v4: Int, v6: Int) {
        let snmp = try TestSupport.run(["ip", "netns", "exec", collector, "cat", "/proc/net/snmp", "/proc/net/snmp6"], timeout: 20)
        var v4 = 0
        var v6 = 0
        let lines = snmp.standardOutput.split(separator: "\n")
        if let header = lines.firstIndex(where: { $0.hasPrefix("Icmp:") }), header + 1 < lines.count {
            let names = lines[header].split(separator: " ")
            let values = lines[header + 1].split(separator: " ")
            if let column = names.firstIndex(of: "OutDestUnreachs") { v4 = Int(values[column]) ?? 0 }
        }
        // IPv6 answers unknown next headers with Parameter Problem, closed ports with Unreachable.
        for line in lines where line.hasPrefix("Icmp6OutDestUnreachs") || line.hasPrefix("Icmp6OutParmProblems") {
            v6 += Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last ?? "0") ?? 0
        }
        return (v4, v6)
    }
}

/// `span-collector run` inside a namespace, started and stopped like systemd would.
final class CollectorProcess: @unchecked Sendable {
    let process = Process()
    let errorLog: String
    let output: String
    private let stdoutPipe = Pipe()
    nonisolated(unsafe) private var stdoutData = Data()
    private let readDone = DispatchSemaphore(value: 0)

    /// `wrapper`: a command the collector runs under (e.g. `prlimit --nofile=64:64`), which
    /// must exec it so that `process` stays the collector.
    init(namespace: String, output: String, arguments: [String], environment: [String: String] = [:], wrapper: [String] = []) throws {
        self.output = output
        errorLog = output + ".stderr"
        FileManager.default.createFile(atPath: errorLog, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = wrapper + ["ip", "netns", "exec", namespace, TestSupport.collectorBinary, "run", "--interface", "vB",
            "--output", output, "--json", "--ring-size", "8M", "--block-size", "1M", "--status-interval", "1"] + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = stdoutPipe
        process.standardError = FileHandle(forWritingAtPath: errorLog)
        try process.run()
        let pipe = stdoutPipe
        DispatchQueue.global().async { [self] in
            stdoutData = TestSupport.readToEnd(pipe.fileHandleForReading.fileDescriptor)
            readDone.signal()
        }
        // Ready once it logs "capturing" (bounded).
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if stderrText.contains("capturing") { return }
            if !process.isRunning { break }
            usleep(50_000)
        }
        stop()
        throw NamespacePair.SetupError(message: "collector did not start: \(stderrText)")
    }

    var stderrText: String { (try? String(contentsOfFile: errorLog, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits (bounded) until standard error contains `marker`.
    func signal(_ signal: Int32, thenWaitFor marker: String, seconds: Double = 10) -> Bool {
        let before = stderrText.components(separatedBy: marker).count
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if stderrText.components(separatedBy: marker).count > before { return true }
            usleep(50_000)
        }
        return false
    }

    /// Kills the collector outright, as a crash would: nothing is finished or renamed.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        _ = readDone.wait(timeout: .now() + 10)
    }

    /// SIGTERM, then waits (bounded; SIGKILL after 30 s) and returns the JSON summary.
    @discardableResult
    func stop() -> [String: Any]? {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("collector did not stop within 30 s after SIGTERM")
        }
        process.waitUntilExit()
        _ = readDone.wait(timeout: .now() + 10)
        return try? JSONSerialization.jsonObject(with: stdoutData) as? [String: Any]
    }
}
