import CollectorCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A running collector and its resources (issue 10): a SIGHUP with a bad configuration file,
/// and a descriptor limit too low for the session cap. Live, in namespaces like
/// LiveCaptureTests; every wait bounded.
@Suite(.serialized, .enabled(if: NamespacePair.isAvailable, "needs root and iproute2"))
struct ResourceTests {
    static func lawHolds(_ summary: [String: Any]) -> Bool {
        guard let received = summary["packets_received"] as? Int, let written = summary["packets_written"] as? Int,
            let dropped = summary["dropped"] as? [String: Int], let discarded = summary["discarded"] as? [String: Int]
        else { return false }
        return received == written + dropped.values.reduce(0, +) + discarded.values.reduce(0, +)
    }

    static let sessions7And9 = ["v02_erspan2.pcap", "v04_erspan3.pcap"].map { TestSupport.fixtures.appendingPathComponent($0).path }

    /// Item 8: values check-config took crashed a running collector on SIGHUP (it left its
    /// files as .part). Now every bad file keeps the running configuration and capture goes on.
    @Test func aBadFileOnSIGHUPKeepsTheRunningConfiguration() throws {
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let output = try TestSupport.makeTemporaryDirectory("badreload")
        defer { TestSupport.removeDirectory(output) }
        let config = output + "/collector.toml"
        let good = """
            idle_timeout = 300
            [[session]]
            name = "core-switch"
            transport = "erspan"
            id = 7
            """
        try good.write(toFile: config, atomically: true, encoding: .utf8)
        let collector = try CollectorProcess(namespace: namespaces.collector, output: output + "/out", arguments: ["--config", config])
        try namespaces.replay(Self.sessions7And9)
        usleep(300_000)

        let bad = [
            "idle_timeout = 18446744074\n", "rotate_interval = 18446744074\n", "max_buffer_memory = 9223372036854775807\n",
            "buffer_size = 9223372036854775807\n", String(repeating: "# padding\n", count: 110_000),
        ]
        for text in bad {
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            #expect(collector.signal(SIGHUP, thenWaitFor: "configuration not reloaded"), "\(text.prefix(40)): \(collector.stderrText.suffix(2000))")
            #expect(collector.process.isRunning)
        }
        // A device in its place: refused without reading it.
        try FileManager.default.removeItem(atPath: config)
        try FileManager.default.createSymbolicLink(atPath: config, withDestinationPath: "/dev/zero")
        #expect(collector.signal(SIGHUP, thenWaitFor: "configuration not reloaded"), "\(collector.stderrText.suffix(2000))")
        #expect(collector.process.isRunning)

        try namespaces.replay(Self.sessions7And9)
        usleep(300_000)
        let summary = try #require(collector.stop())
        #expect(collector.process.terminationStatus == 0)
        let sessions = try #require(summary["sessions"] as? [[String: Any]])
        let packets = Dictionary(uniqueKeysWithValues: sessions.map { ($0["name"] as? String ?? "", $0["packets"] as? Int ?? 0) })
        // The running rules stayed: session 7 named, session 9 by default.
        #expect(packets == ["core-switch": 6, "198.51.100.1-erspan-9": 4])
        #expect(Self.lawHolds(summary), "\(summary)")
        let files = TestSupport.captureFiles(in: output + "/out")
        #expect(!files.isEmpty && files.allSatisfy { !$0.hasSuffix(".part") })
        #expect(try TestSupport.capinfosPacketCounts(files).values.reduce(0, +) == 10)
    }

    /// Item 14: with 64 descriptors and hundreds of sessions the collector used to run out,
    /// and its metrics thread then spun at 100% CPU on accept. Now the session cap shrinks to
    /// fit (with a warning), the metrics endpoint answers, and the law holds.
    @Test func aLowDescriptorLimitCapsSessionsAndNothingSpins() throws {
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let output = try TestSupport.makeTemporaryDirectory("descriptors")
        defer { TestSupport.removeDirectory(output) }
        // 300 ERSPAN sessions (IDs 0-299) from 198.51.100.1, two frames each.
        let input = output + "/sessions.pcap"
        var pcap: [UInt8] = [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 1, 0, 0, 0]
        for round in 0..<2 {
            for id in 0..<300 {
                let frame = BackPressureTests.erspanFrame(id: UInt16(id), sequence: UInt32(round), counter: UInt32(id), innerPayload: 64)
                let length = withUnsafeBytes(of: UInt32(frame.count).littleEndian) { Array($0) }
                pcap += [0, 0, 0, 0, 0, 0, 0, 0] + length + length + frame
            }
        }
        try Data(pcap).write(to: URL(fileURLWithPath: input))
        let collector = try CollectorProcess(
            namespace: namespaces.collector, output: output + "/out",
            arguments: ["--workers", "1", "--metrics-listen", "127.0.0.1:9477"], wrapper: ["prlimit", "--nofile=64:64"])
        try namespaces.replay([input])
        usleep(500_000)
        #expect(collector.stderrText.contains("too few file descriptors for max_sessions"), "\(collector.stderrText.suffix(2000))")

        // The metrics endpoint answers; a connection left waiting never makes a thread spin.
        let fetch = """
            import socket, sys
            s = socket.create_connection(("127.0.0.1", 9477), timeout=3)
            s.sendall(b"GET /summary HTTP/1.0\\r\\n\\r\\n")
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk: break
                    data += chunk
            except Exception as error:
                print(error, file=sys.stderr)
            sys.stdout.write(data.decode(errors="replace"))
            """
        let answer = try TestSupport.run(["ip", "netns", "exec", namespaces.collector, "python3", "-c", fetch], timeout: 20)
        #expect(answer.standardOutput.hasPrefix("HTTP/1.1 200 OK"), "\(answer.standardOutput.prefix(300)) \(answer.standardError)")
        let pending = try TestSupport.run(
            ["ip", "netns", "exec", namespaces.collector, "python3", "-c",
             "import socket; [socket.create_connection(('127.0.0.1', 9477)) for _ in range(3)]"], timeout: 20)
        #expect(pending.status == 0)
        let before = TestSupport.processCPUTicks(collector.process.processIdentifier)
        sleep(2)
        let after = TestSupport.processCPUTicks(collector.process.processIdentifier)
        // Idle capture costs a few ticks in 2 s; a spinning thread 200.
        #expect(after - before < 60, "\(after - before) ticks of CPU in 2 s")

        let summary = try #require(collector.stop())
        let received = try #require(summary["packets_received"] as? Int)
        let written = try #require(summary["packets_written"] as? Int)
        let dropped = try #require(summary["dropped"] as? [String: Int])
        let discarded = try #require(summary["discarded"] as? [String: Int])
        // 600 mirror frames, and whatever the namespace's own stack sent (not_mirror).
        #expect(received >= 600 && received - (discarded["not_mirror"] ?? 0) == 600, "\(summary)")
        #expect(received == written + dropped.values.reduce(0, +) + discarded.values.reduce(0, +))
        // Sessions beyond the cap made room by eviction: every one of the 300 got its frames.
        let table = try #require(summary["session_table"] as? [String: Any])
        #expect((table["evicted"] as? Int ?? 0) > 0, "\(table)")
        // Each written or counted: evictions hand many small buffers to the writer at once, so
        // some frames find the queue full (dropped.queue).
        #expect(written + dropped.values.reduce(0, +) == 600, "\(dropped)")
        // An evicted session that comes back is the same session (same name, a new file).
        let names = try #require(summary["sessions"] as? [[String: Any]]).compactMap { $0["name"] as? String }
        #expect(names.count == 300 && !names.contains { $0.contains("~") }, "\(names.prefix(10))")
        #expect(written > 0)
        let files = TestSupport.captureFiles(in: output + "/out")
        #expect(try TestSupport.capinfosPacketCounts(files).values.reduce(0, +) == written)
    }
}
