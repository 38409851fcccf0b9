import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What users do (issue 10): record the mirror stream with `tcpdump -i any -w` (a Linux cooked
/// capture, VLAN tags and IP fragments included) while `span-collector run` captures it, then
/// `replay` the recording: every session must hold the same frames in the same order as `run`
/// wrote. Needs root; namespaces removed and processes stopped whatever happens.
@Suite(.serialized, .enabled(if: NamespacePair.isAvailable, "needs root and iproute2"))
struct LiveReplayTests {
    /// Every transport, both IP versions, an outer VLAN tag, fragments of both IP versions.
    static let fixtures = [
        "v02_erspan2", "v04_erspan3", "v08_ipv6_erspan2", "v12_outer_vlan", "v17_teb_nokey", "v19_nvgre", "v20_vxlan",
        "vxlan_ipv6", "s03_seq_loss", "m19_gre_not_mirror", "m01_ipv4_fragments", "m03_ipv6_fragments",
    ]

    @Test func replayOfATcpdumpAnyRecordingEqualsWhatRunWrote() throws {
        let manifest = FixtureManifest.shared
        let files = try Self.fixtures.map { name in
            let fixture = try #require(manifest.fixtures[name] ?? manifest.fixturesReassembly?[name], "\(name) missing")
            return TestSupport.fixtures.appendingPathComponent(fixture.input).path
        }
        let namespaces = try NamespacePair()
        defer { namespaces.remove() }
        let output = try TestSupport.makeTemporaryDirectory("live-replay")
        defer { TestSupport.removeDirectory(output) }

        let recording = output + "/any.pcap"
        let tcpdump = Process()
        tcpdump.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // Through sh, which writes tcpdump's own pid (`ip netns exec` may fork) and execs it.
        let pidFile = output + "/tcpdump.pid"
        tcpdump.arguments = [
            "ip", "netns", "exec", namespaces.collector, "sh", "-c", "echo $$ > \"$0\"; exec tcpdump -i any -U -Z root -w \"$1\"",
            pidFile, recording,
        ]
        let tcpdumpLog = output + "/tcpdump.stderr"
        _ = FileManager.default.createFile(atPath: tcpdumpLog, contents: nil)
        tcpdump.standardError = FileHandle(forWritingAtPath: tcpdumpLog)
        tcpdump.standardOutput = FileHandle.nullDevice
        try tcpdump.run()
        func tcpdumpPID() -> pid_t? {
            (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        defer {
            if tcpdump.isRunning {
                if let pid = tcpdumpPID() { kill(pid, SIGKILL) }
                kill(tcpdump.processIdentifier, SIGKILL)
                tcpdump.waitUntilExit()
            }
        }
        let collector = try CollectorProcess(namespace: namespaces.collector, output: output + "/run", arguments: [])
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !((try? String(contentsOfFile: tcpdumpLog, encoding: .utf8)) ?? "").contains("listening on") {
            usleep(50_000)
        }
        try namespaces.replay(files)
        usleep(500_000)
        let runSummary = try #require(collector.stop(), "no JSON summary from run: \(collector.stderrText)")
        // Under load tcpdump may still be writing: wait (bounded) until the recording holds
        // records and has stopped growing for half a second.
        var (lastSize, stableSince) = (-1, Date())
        let settleBy = Date().addingTimeInterval(15)
        while Date() < settleBy {
            let size = ((try? FileManager.default.attributesOfItem(atPath: recording))?[.size] as? Int) ?? 0
            if size != lastSize { (lastSize, stableSince) = (size, Date()) }
            if size > 24, Date().timeIntervalSince(stableSince) >= 0.5 { break }
            usleep(100_000)
        }
        // SIGKILL: children of the test process inherit its blocked SIGTERM/SIGINT. With -U
        // every packet is already in the file when tcpdump has it.
        if let pid = tcpdumpPID() { kill(pid, SIGKILL) }
        let stopBy = Date().addingTimeInterval(20)
        while tcpdump.isRunning, Date() < stopBy { usleep(20_000) }
        #expect(!tcpdump.isRunning, "tcpdump did not stop")

        // tcpdump -i any writes a Linux cooked capture (SLL, or SLL2 with newer libpcap).
        let header = try [UInt8](Data(contentsOf: URL(fileURLWithPath: recording)).prefix(24))
        let linkType = header.count == 24 ? UInt32(header[20]) | UInt32(header[21]) << 8 : 0
        #expect(linkType == 113 || linkType == 276, "tcpdump -i any wrote link type \(linkType)")

        let replayed = try TestSupport.run(
            [TestSupport.collectorBinary, "replay", recording, "--output", output + "/replay", "--json"], timeout: 120)
        #expect(replayed.status == 0, "\(replayed.standardError)")
        let replaySummary = try #require(try JSONSerialization.jsonObject(with: Data(replayed.standardOutput.utf8)) as? [String: Any])
        #expect((replaySummary["input"] as? [String: Int])?["corrupt_bytes"] == 0)
        #expect((runSummary["dropped"] as? [String: Int])?.values.reduce(0, +) == 0)

        let runWritten = try #require(runSummary["packets_written"] as? Int)
        #expect(runWritten > 0)
        #expect(replaySummary["packets_written"] as? Int == runWritten)
        let runSessions = Set(TestSupport.sessionNames(runSummary))
        #expect(runSessions == Set(TestSupport.sessionNames(replaySummary)))
        #expect(runSessions.contains("198.51.100.1-erspan-1") && runSessions.contains("2001:db8::1-erspan-3"), "\(runSessions)")
        for session in runSessions.sorted() {
            let live = try TestSupport.captureFiles(in: output + "/run/" + session).flatMap { try TestSupport.readPcap($0).records }
            let again = try TestSupport.captureFiles(in: output + "/replay/" + session).flatMap { try TestSupport.readPcap($0).records }
            #expect(live.count == again.count, "\(session): run wrote \(live.count), replay \(again.count)")
            for (index, (a, b)) in zip(live, again).enumerated() {
                // The bytes and lengths; both times are receive times, of two different sockets.
                #expect(a.data == b.data && a.wireLength == b.wireLength, "\(session) frame \(index)")
            }
        }
    }
}

extension TestSupport {
    static func sessionNames(_ summary: [String: Any]) -> [String] {
        ((summary["sessions"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
    }
}
