import CollectorCore
import Foundation
import Testing

/// The executable as users and scripts meet it.
@Suite struct CommandLineTests {
    @Test func replayJSONIsOneDocumentWithTheContractKeys() throws {
        let output = try TestSupport.makeTemporaryDirectory("cli")
        defer { TestSupport.removeDirectory(output) }
        let input = TestSupport.fixtures.appendingPathComponent("mixed_sessions.pcap").path
        let result = try TestSupport.run([TestSupport.collectorBinary, "replay", input, "--output", output, "--json"])
        #expect(result.status == 0, "\(result.standardError)")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        for key in ["sessions", "packets_received", "packets_written", "dropped", "discarded"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        let dropped = try #require(object["dropped"] as? [String: Int])
        #expect(Set(dropped.keys) == ["kernel", "queue", "write"])
        let discarded = try #require(object["discarded"] as? [String: Int])
        #expect(Set(discarded.keys) == ["malformed", "not_mirror", "unknown_session", "unauthorized_exporter", "duplicate"])
        let sessions = try #require(object["sessions"] as? [[String: Any]])
        #expect(!sessions.isEmpty)
        for session in sessions {
            for key in ["name", "exporter", "encapsulation", "id", "packets", "bytes", "lost", "out_of_order", "duplicates", "truncated", "files"] {
                #expect(session.keys.contains(key), "session lacks \(key)")
            }
        }
        let received = try #require(object["packets_received"] as? Int)
        let written = try #require(object["packets_written"] as? Int)
        #expect(received == written + dropped.values.reduce(0, +) + discarded.values.reduce(0, +))
    }

    @Test func tableOutputNamesEverySession() throws {
        let output = try TestSupport.makeTemporaryDirectory("cli")
        defer { TestSupport.removeDirectory(output) }
        let input = TestSupport.fixtures.appendingPathComponent("v16_session_ids.pcap").path
        let result = try TestSupport.run([TestSupport.collectorBinary, "replay", input, "--output", output])
        #expect(result.status == 0)
        #expect(result.standardOutput.hasPrefix("SESSION"))
        for id in [0, 1, 2, 1023] { #expect(result.standardOutput.contains("198.51.100.1-erspan-\(id) ")) }
    }

    /// --geneve-port and --vxlan-gpe-port replace their defaults like --vxlan-port; a port given
    /// for two transports is refused, naming the flag.
    @Test func geneveAndGPEPortFlags() throws {
        let output = try TestSupport.makeTemporaryDirectory("cli-ports")
        defer { TestSupport.removeDirectory(output) }
        let input = TestSupport.fixtures.appendingPathComponent("geneve_basic.pcap").path
        func reasons(_ flags: [String]) throws -> [String: Int] {
            let result = try TestSupport.run(
                [TestSupport.collectorBinary, "replay", input, "--output", output + "/\(flags.count)", "--json"] + flags)
            #expect(result.status == 0, "\(result.standardError)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
            #expect(object["packets_written"] as? Int == (flags.isEmpty ? 3 : 0))
            return (object["discard_reasons"] as? [String: Int] ?? [:]).filter { $0.value != 0 }
        }
        #expect(try reasons([]).isEmpty)
        #expect(try reasons(["--geneve-port", "7000", "--geneve-port", "7001"]) == ["not_mirror.udp_port": 3])
        #expect(try reasons(["--geneve-port", "7000", "--vxlan-gpe-port", "6081"]) == ["malformed.vxlan_flags": 3])
        let clash = try TestSupport.run([TestSupport.collectorBinary, "replay", input, "--output", output, "--vxlan-gpe-port", "4789"])
        #expect(clash.status != 0)
        #expect(clash.standardError.contains("--vxlan-gpe-port: port 4789 is also a VXLAN port"), "\(clash.standardError)")
    }

    @Test func badOptionsNameTheFlagAndTheProblem() throws {
        let result = try TestSupport.run([
            TestSupport.collectorBinary, "replay", "x.pcap", "--output", "/tmp/x", "--rotate-size", "lots",
            "--allow-exporter", "300.1.1.1/8", "--rspan-vlan", "5000",
            "--force-erspan-type", "198.51.100.7/32=IV", "--force-erspan-type", "198.51.100.8/32=I",
            "--erspan-timestamps", "198.51.100.9=sometimes",
        ])
        #expect(result.status != 0)
        #expect(result.standardError.contains("--rotate-size: 'lots' is not a size"))
        #expect(result.standardError.contains("--allow-exporter: '300.1.1.1/8'"))
        #expect(result.standardError.contains("--rspan-vlan: 5000 is not a VLAN ID"))
        #expect(result.standardError.contains("--force-erspan-type: '198.51.100.7/32=IV' is not CIDR=I|II|III"))
        #expect(!result.standardError.contains("198.51.100.8/32=I'"), "a valid entry is not a problem")
        #expect(result.standardError.contains("--erspan-timestamps: '198.51.100.9=sometimes' is not CIDR=receive|relative|ptp|unix100us"))
    }

    @Test func unreadableInputIsAnErrorNotACrash() throws {
        let output = try TestSupport.makeTemporaryDirectory("cli")
        defer { TestSupport.removeDirectory(output) }
        let garbage = output + "/garbage.pcap"
        try Data("this is not a capture file at all".utf8).write(to: URL(fileURLWithPath: garbage))
        for input in [garbage, output + "/missing.pcap"] {
            let result = try TestSupport.run([TestSupport.collectorBinary, "replay", input, "--output", output + "/out"])
            #expect(result.status == 2)
            #expect(result.standardError.contains("cannot read"))
        }
        // A bad input among good ones: the good ones are written and accounted, exit status 2.
        let good = TestSupport.fixtures.appendingPathComponent("v02_erspan2.pcap").path
        let result = try TestSupport.run([TestSupport.collectorBinary, "replay", good, garbage, "--output", output + "/mixed", "--json"])
        #expect(result.status == 2)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        #expect(object["packets_written"] as? Int == 3)
        #expect(result.standardError.contains("garbage.pcap"))
    }
}
