import CollectorCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The post-rotate hook and the status endpoint (`/metrics`, `/summary`, `span-collector stats`).
@Suite(.serialized) struct ServiceTests {
    @Test func postRotateCommandRunsOncePerFinishedFile() throws {
        let output = try TestSupport.makeTemporaryDirectory("hook")
        defer { TestSupport.removeDirectory(output) }
        let log = output + "/hook.log"
        let input = TestSupport.fixtures.appendingPathComponent("mixed_sessions.pcap").path
        let result = try TestSupport.run([
            TestSupport.collectorBinary, "replay", input, "--output", output + "/out", "--json",
            "--post-rotate-command", "echo \"$1\" >> \(log)",
        ])
        #expect(result.status == 0, "\(result.standardError)")
        let files = TestSupport.captureFiles(in: output + "/out")
        let logged = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        #expect(Set(logged) == Set(files), "the command saw every finished file, and only those")
        #expect(logged.count == files.count)
    }

    @Test func failingPostRotateCommandsAreCountedNotFatal() throws {
        let output = try TestSupport.makeTemporaryDirectory("hookfail")
        defer { TestSupport.removeDirectory(output) }
        let input = TestSupport.fixtures.appendingPathComponent("v16_session_ids.pcap").path
        let result = try TestSupport.run([
            TestSupport.collectorBinary, "replay", input, "--output", output, "--post-rotate-command", "exit 3",
        ])
        #expect(result.status == 0)
        #expect(result.standardError.components(separatedBy: "post-rotate command failed").count - 1 == 4)
    }

    @Test func statusEndpointServesMetricsAndTheSummary() throws {
        var summary = Summary()
        summary.packetsReceived = 10
        summary.packetsWritten = 7
        summary.discarded.notMirror = 3
        summary.discardReasons = ["not_mirror.udp_port": 3]
        let port = 20_000 + Int(getpid() % 20_000)
        let address = "127.0.0.1:\(port)"
        let served = summary
        let server = try StatusServer(listenOn: address, summary: { served }, service: { ServiceCounters() })
        defer { server.stop() }

        let metrics = try TestSupport.run(["python3", "-c", "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://\(address)/metrics').read().decode())"])
        #expect(metrics.status == 0, "\(metrics.standardError)")
        #expect(metrics.standardOutput.contains("span_collector_packets_received_total 10"))
        #expect(metrics.standardOutput.contains("span_collector_packets_discarded_total{bucket=\"not_mirror\",reason=\"not_mirror.udp_port\"} 3"))
        #expect(metrics.standardOutput.contains("# TYPE span_collector_packets_written_total counter"))

        let table = try TestSupport.run([TestSupport.collectorBinary, "stats", "--address", address])
        #expect(table.status == 0, "\(table.standardError)")
        #expect(table.standardOutput.contains("received 10  written 7"))
        let json = try TestSupport.run([TestSupport.collectorBinary, "stats", "--address", address, "--json"])
        #expect(try JSONDecoder().decode(Summary.self, from: Data(json.standardOutput.utf8)) == summary)

        let nobody = try TestSupport.run([TestSupport.collectorBinary, "stats", "--address", "127.0.0.1:1"])
        #expect(nobody.status != 0 && nobody.standardError.contains("no collector answers"))
    }
}
