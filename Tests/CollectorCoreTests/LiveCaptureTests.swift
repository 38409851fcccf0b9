import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Live capture for real: `span-collector run` in one network namespace, tcpreplay of scapy
/// fixtures from the other, SIGTERM, then every written frame and the JSON compared with what
/// was sent. Needs root (CI runs as root); every wait is bounded, namespaces are removed even
/// when a test fails.
@Suite(.serialized, .enabled(if: NamespacePair.isAvailable, "needs root and iproute2"))
struct LiveCaptureTests {
    /// Fixtures with pairwise distinct sessions, every encapsulation and both IP versions.
    static let fixtures = [
        "v02_erspan2", "v04_erspan3", "v06_erspan3_platform", "v08_ipv6_erspan2", "v12_outer_vlan", "v17_teb_nokey",
        "v19_nvgre", "v20_vxlan", "v23_rspan", "vxlan_ipv6", "s03_seq_loss", "m19_gre_not_mirror",
        // Geneve (options, IPv6, raw IP, OAM, discards), VXLAN reserved bits on 4789, GPE on 4790.
        "geneve_basic", "geneve_options", "geneve_ipv6", "geneve_raw_ip", "geneve_oam", "geneve_malformed",
        "vxlan_reserved_bits", "vxlan_gpe",
    ]

    @Test func everyEncapsulationLiveMatchesTheGenerator() throws {
        let manifest = FixtureManifest.shared.fixtures
        // Which sessions come from which fixture; the chosen fixtures must not share any.
        var expected: [String: (session: FixtureManifest.ExpectedSession, frames: [TestSupport.Record])] = [:]
        var sentMirror: Int64 = 0
        var files: [String] = []
        for name in Self.fixtures {
            let fixture = try #require(manifest[name], "\(name) missing from the manifest")
            files.append(TestSupport.fixtures.appendingPathComponent(fixture.input).path)
            sentMirror += fixture.packetsWritten
            for (session, info) in fixture.sessions {
                let live = session.replacingOccurrences(of: "replay-vlan-", with: "vB-vlan-")
                #expect(expected[live] == nil, "\(live) appears in two fixtures")
                let reference = try TestSupport.readPcap(TestSupport.fixtures.appendingPathComponent(info.frames).path)
                expected[live] = (info, reference.records)
            }
        }

        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let output = try TestSupport.makeTemporaryDirectory("live")
        defer { TestSupport.removeDirectory(output) }
        let collector = try CollectorProcess(
            namespace: namespaces.collector, output: output + "/out", arguments: ["--rspan-vlan", "999", "--workers", "2"])
        try namespaces.replay(files)
        usleep(300_000)
        let summary = try #require(collector.stop(), "no JSON summary; stderr: \(collector.stderrText)")

        // The accounting law, live, and nothing lost on the way.
        let received = try #require(summary["packets_received"] as? Int)
        let written = try #require(summary["packets_written"] as? Int)
        let dropped = try #require(summary["dropped"] as? [String: Int])
        let discarded = try #require(summary["discarded"] as? [String: Int])
        #expect(received == written + dropped.values.reduce(0, +) + discarded.values.reduce(0, +))
        #expect(dropped.values.reduce(0, +) == 0)
        #expect(written == Int(sentMirror))

        let sessions = try #require(summary["sessions"] as? [[String: Any]])
        #expect(Set(sessions.compactMap { $0["name"] as? String }) == Set(expected.keys))
        for session in sessions {
            let name = try #require(session["name"] as? String)
            guard let (info, frames) = expected[name] else { continue }
            #expect(session["packets"] as? Int == Int(info.packets), "\(name)")
            #expect(session["bytes"] as? Int == Int(info.bytes), "\(name)")
            #expect(session["lost"] as? Int == Int(info.lost), "\(name)")
            #expect(session["encapsulation"] as? String == info.encapsulation, "\(name)")
            let written = try TestSupport.captureFiles(in: output + "/out/" + name).flatMap { try TestSupport.readPcap($0).records }
            #expect(written.count == frames.count, "\(name)")
            for (index, (got, want)) in zip(written, frames).enumerated() {
                // Live records carry the receive time; bytes and lengths must match exactly.
                #expect(got.data == want.data && got.wireLength == want.wireLength, "\(name) frame \(index)")
            }
            let times = written.map(\.timestampNanoseconds)
            #expect(times == times.sorted(), "\(name) receive times go backwards")
            let now = UInt64(Date().timeIntervalSince1970 * 1e9)
            #expect(times.allSatisfy { $0 <= now && now - $0 < 600_000_000_000 }, "\(name) not stamped with receive time")
        }
        let allFiles = TestSupport.captureFiles(in: output + "/out")
        #expect(!allFiles.contains { $0.hasSuffix(".part") })
        let counts = try TestSupport.capinfosPacketCounts(allFiles)
        #expect(counts.values.reduce(0, +) == written)
    }

    @Test func noICMPLeavesTheCollectorNamespace() throws {
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let traffic = ["v02_erspan2.pcap", "v08_ipv6_erspan2.pcap", "v20_vxlan.pcap", "vxlan_ipv6.pcap"].map {
            TestSupport.fixtures.appendingPathComponent($0).path
        }
        // Control: without the collector the kernel answers with unreachables, so this test
        // would see them.
        let before = try namespaces.icmpOutDestUnreachables()
        try namespaces.replay(traffic)
        usleep(200_000)
        let control = try namespaces.icmpOutDestUnreachables()
        #expect(control.v4 > before.v4 && control.v6 > before.v6, "control: the kernel did not answer; the check below proves nothing")

        let output = try TestSupport.makeTemporaryDirectory("hygiene")
        defer { TestSupport.removeDirectory(output) }
        let collector = try CollectorProcess(namespace: namespaces.collector, output: output + "/out", arguments: [])
        // Wait out the ICMP rate limit from the control run (1 s), then send again.
        usleep(1_100_000)
        let start = try namespaces.icmpOutDestUnreachables()
        try namespaces.replay(traffic)
        usleep(300_000)
        let end = try namespaces.icmpOutDestUnreachables()
        let summary = collector.stop()
        #expect(end.v4 == start.v4, "ICMPv4 unreachables sent while the collector ran")
        #expect(end.v6 == start.v6, "ICMPv6 unreachables sent while the collector ran")
        #expect((summary?["packets_written"] as? Int ?? 0) > 0)
    }

    /// The same for the Geneve and VXLAN-GPE ports (and VXLAN with reserved bits): without the
    /// collector the kernel answers them with port unreachables, with it nothing.
    @Test func noICMPForGeneveAndGPETraffic() throws {
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let names = ["geneve_basic", "geneve_ipv6", "vxlan_gpe", "vxlan_reserved_bits"]
        let traffic = names.map { TestSupport.fixtures.appendingPathComponent($0 + ".pcap").path }
        let before = try namespaces.icmpOutDestUnreachables()
        try namespaces.replay(traffic)
        usleep(200_000)
        let control = try namespaces.icmpOutDestUnreachables()
        #expect(control.v4 > before.v4 && control.v6 > before.v6, "control: the kernel did not answer; the check below proves nothing")

        let output = try TestSupport.makeTemporaryDirectory("hygiene-geneve")
        defer { TestSupport.removeDirectory(output) }
        let collector = try CollectorProcess(namespace: namespaces.collector, output: output + "/out", arguments: [])
        usleep(1_100_000)
        let start = try namespaces.icmpOutDestUnreachables()
        try namespaces.replay(traffic)
        usleep(300_000)
        let end = try namespaces.icmpOutDestUnreachables()
        let summary = collector.stop()
        #expect(end.v4 == start.v4, "ICMPv4 unreachables sent while the collector ran")
        #expect(end.v6 == start.v6, "ICMPv6 unreachables sent while the collector ran")
        let written = names.compactMap { FixtureManifest.shared.fixtures[$0]?.packetsWritten }.reduce(0, +)
        #expect(summary?["packets_written"] as? Int == Int(written))
    }

    @Test func sessionsStayOnOneWorkerWhateverTheVXLANSourcePort() throws {
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let output = try TestSupport.makeTemporaryDirectory("affinity")
        defer { TestSupport.removeDirectory(output) }
        let perSession = 300
        let traffic = output + "/affinity.pcap"
        let generated = try TestSupport.run([
            "python3", TestSupport.fixtures.appendingPathComponent("make_affinity.py").path, traffic, "--per-session", "\(perSession)",
        ])
        #expect(generated.status == 0, "\(generated.standardError)")
        let names = generated.standardOutput.split(separator: "\n").map(String.init)
        #expect(names.count == 12)

        let collector = try CollectorProcess(namespace: namespaces.collector, output: output + "/out", arguments: ["--workers", "4"])
        try namespaces.replay([traffic])
        usleep(300_000)
        let summary = try #require(collector.stop())
        let sessions = try #require(summary["sessions"] as? [[String: Any]])
        // A session split over two workers would show up twice (as NAME and NAME~2).
        #expect(Set(sessions.compactMap { $0["name"] as? String }) == Set(names))
        #expect(summary["packets_written"] as? Int == names.count * perSession)

        for (number, name) in names.enumerated() {
            let frames = try TestSupport.captureFiles(in: output + "/out/" + name).flatMap { try TestSupport.readPcap($0).records }
            // Inner payload (after 14 + 20 + 8 bytes of headers): session number, counter.
            let counters = frames.map { frame -> (Int, Int) in
                let payload = Array(frame.data[42..<50])
                let session = payload[0..<4].reduce(0) { $0 << 8 | Int($1) }
                let counter = payload[4..<8].reduce(0) { $0 << 8 | Int($1) }
                return (session, counter)
            }
            #expect(counters.allSatisfy { $0.0 == number }, "\(name) holds another session's frames")
            #expect(counters.map(\.1) == Array(0..<perSession), "\(name) frames missing or out of order")
        }
        // Several workers really took part: each logs what it handled when it stops.
        let busy = collector.stderrText.split(separator: "\n").filter { $0.contains("capture thread done") && !$0.contains("received=0") }
        #expect(busy.count >= 2, "sessions were not spread over workers: \(busy)")
    }

    @Test func sighupFinishesFilesAndReloadsSessionRules() throws {
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let output = try TestSupport.makeTemporaryDirectory("reload")
        defer { TestSupport.removeDirectory(output) }
        let config = output + "/collector.toml"
        let only7 = """
            accept_unknown_sessions = false
            [[session]]
            name = "core-switch"
            transport = "erspan"
            exporter = "198.51.100.1/32"
            id = 7
            """
        try only7.write(toFile: config, atomically: true, encoding: .utf8)
        let collector = try CollectorProcess(namespace: namespaces.collector, output: output + "/out", arguments: ["--config", config])
        let sessions7And9 = ["v02_erspan2.pcap", "v04_erspan3.pcap"].map { TestSupport.fixtures.appendingPathComponent($0).path }
        try namespaces.replay(sessions7And9)
        usleep(300_000)

        // Name session 9 too, reload, send the same traffic again.
        try (only7 + "\n[[session]]\nname = \"access-switch\"\ntransport = \"erspan\"\nid = 9\n").write(toFile: config, atomically: true, encoding: .utf8)
        #expect(collector.signal(SIGHUP, thenWaitFor: "configuration reloaded"), "\(collector.stderrText)")
        usleep(300_000)
        try namespaces.replay(sessions7And9)
        usleep(300_000)
        let summary = try #require(collector.stop())

        let sessions = try #require(summary["sessions"] as? [[String: Any]])
        let packets = Dictionary(uniqueKeysWithValues: sessions.map { ($0["name"] as? String ?? "", $0["packets"] as? Int ?? 0) })
        // v02 has 3 frames of session 7, v04 2 of session 9: 7 twice, 9 only after the reload.
        #expect(packets == ["core-switch": 6, "access-switch": 2])
        let discarded = try #require(summary["discard_reasons"] as? [String: Int])
        #expect(discarded["unknown_session.not_configured"] == 2)
        // SIGHUP finished the first file of core-switch; the second run made another.
        let files = TestSupport.captureFiles(in: output + "/out/core-switch")
        #expect(files.count == 2)
        #expect(try files.map { try TestSupport.readPcap($0).records.count } == [3, 3])
    }

    @Test func notifyProtocolThroughARealDatagramSocket() throws {
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let output = try TestSupport.makeTemporaryDirectory("notify")
        defer { TestSupport.removeDirectory(output) }
        // A path socket: abstract names do not cross into another network namespace.
        let listener = try NotifyListener(directory: output)
        defer { listener.close() }
        var environment = listener.environment
        environment["WATCHDOG_USEC"] = "400000"
        let collector = try CollectorProcess(
            namespace: namespaces.collector, output: output + "/out", arguments: [], environment: environment)
        #expect(listener.waitForAssignment("READY=1"), "no READY=1: \(listener.messages)")
        #expect(listener.waitForAssignment("WATCHDOG=1"), "no WATCHDOG=1 while capturing: \(listener.messages)")
        #expect(listener.messages.contains { $0.contains("STATUS=") }, "no STATUS line")
        #expect(collector.signal(SIGHUP, thenWaitFor: "SIGHUP"))
        #expect(listener.waitForAssignment("RELOADING=1"))
        collector.stop()
        #expect(listener.waitForAssignment("STOPPING=1"), "no STOPPING=1: \(listener.messages)")
    }

    @Test func sigkillMidCaptureLeavesOnlyValidFilesAfterRestart() throws {
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let output = try TestSupport.makeTemporaryDirectory("sigkill")
        defer { TestSupport.removeDirectory(output) }
        let collector = try CollectorProcess(
            namespace: namespaces.collector, output: output + "/out",
            arguments: ["--rotate-size", "100M", "--buffer-size", "128K", "--status-interval", "0"])
        // Traffic keeps coming while the collector is killed: 100k packets at a bounded rate.
        let sender = Process()
        sender.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        sender.arguments = ["ip", "netns", "exec", namespaces.sender, "tcpreplay", "-q", "--pps", "20000", "--limit", "60000", "-i", "vA", TestSupport.load100k.path]
        sender.standardOutput = FileHandle.nullDevice
        sender.standardError = FileHandle.nullDevice
        try sender.run()
        // Partly filled buffers are written every second: after 2.5 s the open files are on
        // disk as .part, cut wherever the last write ended.
        usleep(2_500_000)
        collector.kill9()
        sender.terminate()
        sender.waitUntilExit()
        let leftovers = TestSupport.captureFiles(in: output + "/out").filter { $0.hasSuffix(".part") }
        #expect(!leftovers.isEmpty, "the kill should have caught files being written")

        // The next start recovers them before capturing.
        let restarted = try CollectorProcess(namespace: namespaces.collector, output: output + "/out", arguments: ["--status-interval", "0"])
        restarted.stop()
        #expect(restarted.stderrText.contains("recovered unfinished file"))
        let files = TestSupport.captureFiles(in: output + "/out")
        #expect(!files.contains { $0.hasSuffix(".part") })
        #expect(!files.isEmpty)
        let counts = try TestSupport.capinfosPacketCounts(files)
        #expect(counts.count == files.count, "capinfos read every file")
        #expect(counts.values.reduce(0, +) > 0)
    }

    @Test func interfaceDownIsReportedAndCaptureResumesWhenItComesBack() throws {
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let output = try TestSupport.makeTemporaryDirectory("linkdown")
        defer { TestSupport.removeDirectory(output) }
        let collector = try CollectorProcess(namespace: namespaces.collector, output: output + "/out", arguments: ["--status-interval", "0"])
        let session7 = [TestSupport.fixtures.appendingPathComponent("v02_erspan2.pcap").path]
        try namespaces.replay(session7)

        // Down: the kernel sets ENETDOWN on the socket; it is reported, and taken (a pending
        // error would make every poll return at once).
        #expect(try TestSupport.run(["ip", "-n", namespaces.collector, "link", "set", "vB", "down"], timeout: 20).status == 0)
        var reported = false
        for _ in 0..<100 where !reported {
            reported = collector.stderrText.contains("capture socket error")
            usleep(50_000)
        }
        #expect(reported, "\(collector.stderrText)")
        let before = TestSupport.processCPUTicks(collector.process.processIdentifier)
        usleep(1_000_000)
        let after = TestSupport.processCPUTicks(collector.process.processIdentifier)
        #expect(after - before < 20, "the collector should sleep while its interface is down")

        // Up again: the same socket receives again.
        #expect(try TestSupport.run(["ip", "-n", namespaces.collector, "link", "set", "vB", "up"], timeout: 20).status == 0)
        var carrier = false
        for _ in 0..<100 where !carrier {
            let state = try TestSupport.run(["ip", "-n", namespaces.sender, "-br", "link", "show", "vA"], timeout: 20).standardOutput
            carrier = state.contains(" UP ")
            if !carrier { usleep(50_000) }
        }
        #expect(carrier)
        try namespaces.replay(session7)
        usleep(300_000)
        let summary = try #require(collector.stop())
        let sessions = try #require(summary["sessions"] as? [[String: Any]])
        #expect(sessions.map { $0["packets"] as? Int } == [6], "3 frames before the link went down, 3 after it came back")
        #expect(collector.stderrText.components(separatedBy: "capture socket error").count == 2, "reported once")
    }
}
