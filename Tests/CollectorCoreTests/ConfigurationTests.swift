import CaptureSystem
import Foundation
import MirrorDecoding
import PcapFormat
import PcapStorage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import CollectorCore

/// The configuration file, `check-config`, flags over the file, and named sessions.
@Suite struct ConfigurationTests {
    static let example = TestSupport.packageRoot.appendingPathComponent("config/span-collector.toml").path
    static func fixture(_ name: String) -> String {
        TestSupport.fixtures.appendingPathComponent("config/\(name)").path
    }

    /// The example with every commented-out setting and session switched on (`# key = value`
    /// and `# [[session]]` lines lose their `# `).
    static func uncommentedExample() throws -> String {
        let text = try String(contentsOfFile: example, encoding: .utf8)
        let setting = try Regex(#"^# ?(\[\[?[a-z_.]+\]\]?|[a-z_]+ = .*)$"#)
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard let match = line.wholeMatch(of: setting), let body = match.output[1].substring else { return String(line) }
            return String(body)
        }.joined(separator: "\n")
    }

    // MARK: The example file

    @Test func exampleFileIsValidAsShipped() throws {
        let loaded = try ConfigurationFile.load(path: Self.example)
        #expect(loaded.outputDirectory == nil, "the shipped example leaves output to the command's default")
        #expect(loaded.configuration.sessionRules.isEmpty)
    }

    @Test func exampleFileDocumentsEveryKeyAndIsValidWithAllOfThemSet() throws {
        let loaded = try ConfigurationFile.parse(text: try Self.uncommentedExample(), path: "uncommented example")
        for key in ConfigurationFile.topLevelKeys {
            #expect(loaded.isSet(key), "the example does not show \(key)")
        }
        for key in ConfigurationFile.captureKeys {
            #expect(loaded.isSet("capture." + key), "the example does not show capture.\(key)")
        }
        let rules = loaded.configuration.sessionRules
        #expect(rules.map(\.name) == ["core-uplinks", "aws-web-tier", "lab-rspan"])
        let shown = Set(rules.flatMap { rule -> [String] in
            var keys = ["name"]
            if rule.transport != nil { keys.append("transport") }
            if rule.exporter != nil { keys.append("exporter") }
            if rule.id != nil { keys.append("id") }
            if rule.interface != nil { keys.append("interface") }
            if rule.rotateSize != nil { keys.append("rotate_size") }
            if rule.rotateIntervalSeconds != nil { keys.append("rotate_interval") }
            if rule.keepFiles != nil { keys.append("keep_files") }
            return keys
        })
        #expect(shown == Set(ConfigurationFile.sessionKeys), "the example sessions should show every session key")
        // The commented values are the defaults where there is one.
        let defaults = CollectorConfiguration(outputDirectory: "")
        #expect(loaded.configuration.bufferSize == defaults.bufferSize)
        #expect(loaded.configuration.maximumBufferMemory == defaults.maximumBufferMemory)
        #expect(loaded.configuration.vxlanPorts == defaults.vxlanPorts)
        #expect(loaded.configuration.metricsListen == defaults.metricsListen)
        #expect(loaded.configuration.postRotateConcurrency == defaults.postRotateConcurrency)
        #expect(loaded.configuration.acceptUnknownSessions == defaults.acceptUnknownSessions)
        // Rotation and free space show `run`'s defaults (issue 10, item 19).
        #expect(loaded.configuration.rotateSize == CollectorConfiguration.serviceRotateSize)
        #expect(loaded.configuration.rotateIntervalSeconds == CollectorConfiguration.serviceRotateIntervalSeconds)
        #expect(loaded.configuration.minimumFreeSpace == CollectorConfiguration.serviceMinimumFreeSpace)
        let live = LiveCapture.Options()
        #expect(loaded.ringSize == live.ring.ringSize)
        #expect(loaded.capture.ring == live.ring)
        #expect(loaded.capture.writerThreads == live.writerThreads)
        #expect(loaded.capture.queueDepth == live.queueDepth)
        #expect(loaded.capture.statusIntervalSeconds == live.statusIntervalSeconds)
    }

    // MARK: Reading values

    @Test func everyKeyIsRead() throws {
        let loaded = try ConfigurationFile.parse(
            text: """
                output = "/srv/mirror"
                format = "pcapng"
                rotate_size = "100M"
                rotate_interval = 600
                keep_files = 12
                rspan_vlans = [999, 1000]
                vxlan_ports = [4789, 8472]
                allow_exporters = ["198.51.100.0/24", "2001:db8::1"]
                buffer_size = 262144
                max_buffer_memory = "64M"
                max_disk_usage = "2T"
                min_free_space = "7.5%"
                post_rotate_command = "/usr/bin/true"
                post_rotate_concurrency = 4
                metrics_listen = "off"
                accept_unknown_sessions = false

                [capture]
                interfaces = ["eth1", "eth2"]
                workers = 3
                ring_size = "32M"
                block_size = "1M"
                block_timeout = 20
                writer_threads = 2
                queue_depth = 128
                filter = "not host 198.51.100.99"
                status_interval = 0

                [[session]]
                name = "sw1"
                transport = "erspan"
                exporter = "198.51.100.0/28"
                id = 7
                rotate_size = "10M"
                rotate_interval = 60
                keep_files = 3
                """)
        let configuration = loaded.configuration
        #expect(loaded.outputDirectory == "/srv/mirror")
        #expect(configuration.format == .pcapng)
        #expect(configuration.rotateSize == 100 << 20)
        #expect(configuration.rotateIntervalSeconds == 600)
        #expect(configuration.keepFiles == 12)
        #expect(configuration.rspanVLANs == [999, 1000])
        #expect(configuration.vxlanPorts == [4789, 8472])
        #expect(configuration.allowedExporters == [IPPrefix("198.51.100.0/24")!, IPPrefix("2001:db8::1")!])
        #expect(configuration.bufferSize == 262_144)
        #expect(configuration.maximumBufferMemory == 64 << 20)
        #expect(configuration.maximumDiskUsage == 2 << 40)
        #expect(configuration.minimumFreeSpace == .percent(7.5))
        #expect(configuration.postRotateCommand == "/usr/bin/true")
        #expect(configuration.postRotateConcurrency == 4)
        #expect(configuration.metricsListen == nil)
        #expect(configuration.acceptUnknownSessions == false)
        #expect(loaded.capture.interfaces == ["eth1", "eth2"])
        #expect(loaded.capture.workers == 3)
        #expect(loaded.ringSize == 32 << 20)
        #expect(loaded.capture.ring.blockSize == 1 << 20)
        #expect(loaded.capture.ring.blockCount == 32)
        #expect(loaded.capture.ring.retireTimeoutMilliseconds == 20)
        #expect(loaded.capture.writerThreads == 2)
        #expect(loaded.capture.queueDepth == 128)
        #expect(loaded.capture.filter == "not host 198.51.100.99")
        #expect(loaded.capture.statusIntervalSeconds == 0)
        var rule = SessionRule(name: "sw1")
        rule.transport = .erspan
        rule.exporter = IPPrefix("198.51.100.0/28")
        rule.id = 7
        rule.rotateSize = 10 << 20
        rule.rotateIntervalSeconds = 60
        rule.keepFiles = 3
        rule.line = 29
        #expect(configuration.sessionRules == [rule])
        #expect(loaded.keyLines["session[1].id"] == 33)
        #expect(loaded.keyLines["capture.workers"] == 20)
        #expect(loaded.isSet("capture.workers") && !loaded.isSet("capture.interface"))
    }

    @Test func anEmptyFileIsTheDefaults() throws {
        let loaded = try ConfigurationFile.parse(text: "# nothing\n")
        #expect(loaded.setKeys.isEmpty)
        #expect(loaded.outputDirectory == nil)
        #expect(loaded.configuration.metricsListen == "127.0.0.1:9477")
        #expect(loaded.configuration.acceptUnknownSessions)
    }

    // MARK: Problems

    @Test func manyMistakesAreAllReportedWithKeysAndLines() throws {
        let path = Self.fixture("mistakes.toml")
        let problems = try Self.problems(path)
        let found = Set(problems.map { "\($0.key)@\($0.line ?? 0)" })
        let expected: [String] = [
            "rotate_size@3",  // bad size
            "keep_file@4",  // unknown key
            "allow_exporters@5",  // bad CIDR
            "buffer_size@6",  // below the minimum
            "metrics_listen@7",  // not HOST:PORT
            "capture.workers@10",  // not an integer
            "capture.block_timeout@11",  // out of range
            "session[1].name@14",  // "/"
            "session[2].name@20",  // ".."
            "session[2].id@22",  // VNI out of range
            "session[3].exporter@27",  // bad CIDR
            "session[4].name@30",  // duplicate
            "session[4].transport@31",  // unknown transport
            "session[4].keep_files@32",  // below 1
        ]
        for entry in expected { #expect(found.contains(entry), "missing \(entry) in \(problems)") }
        // Nothing else: every line marked "problem" in the fixture, and only those.
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let marked = Set(
            text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
                .filter { $0.element.contains("# problem") }.map { $0.offset + 1 })
        #expect(Set(problems.compactMap(\.line)) == marked)
        #expect(problems.allSatisfy { $0.line != nil })
        #expect(problems.map(\.line) == problems.map(\.line).sorted { ($0 ?? 0) < ($1 ?? 0) }, "sorted by line")

        let messages = Dictionary(problems.map { ($0.key, $0.message) }, uniquingKeysWith: { $0 + " | " + $1 })
        #expect(messages["rotate_size"]?.contains("'lots' is not a size") == true)
        #expect(messages["keep_file"]?.contains("did you mean keep_files") == true)
        #expect(messages["allow_exporters"]?.contains("198.51.100.0/33") == true)
        #expect(messages["session[1].name"]?.contains("/") == true)
        #expect(messages["session[2].name"]?.contains("..") == true)
        #expect(messages["session[4].name"]?.contains("session[3]") == true)
    }

    @Test func aSyntaxErrorIsOneProblemWithItsLine() throws {
        let problems = try Self.problems(Self.fixture("syntax.toml"))
        #expect(problems.count == 1)
        #expect(problems.first?.line == 6)
        #expect(problems.first?.key == "capture.filter")
        #expect(problems.first?.message.hasPrefix("TOML syntax") == true)
    }

    @Test func wrongShapesAreProblemsNotCrashes() throws {
        let cases: [(String, String, Int?)] = [
            ("capture = 5", "capture", 1),
            ("[session]\nname = \"x\"", "session", 1),
            ("session = [1]", "session[1]", 1),
            ("rspan_vlans = 999", "rspan_vlans", 1),
            ("vxlan_ports = [0]", "vxlan_ports", 1),
            ("keep_files = \"3\"", "keep_files", 1),
            ("rotate_size = -1", "rotate_size", 1),
            ("accept_unknown_sessions = \"no\"", "accept_unknown_sessions", 1),
            ("format = \"pcapx\"", "format", 1),
            ("output = \"\"", "output", 1),
            ("post_rotate_command = \" \"", "post_rotate_command", 1),
            ("\n\nmetrics_listen = \"127.0.0.1:0\"", "metrics_listen", 3),
            ("[capture]\n  # comment\n\n  queue_depth = 1", "capture.queue_depth", 4),
            ("capture.workers = 99", "capture.workers", 1),
            ("[[session]]\ntransport = \"rspan\"\ninterface = \"eth1\"\nid = 5\nname = \"r\"", "session[1].id", 4),
            ("[[session]]\nname = \"x\"\ntransport = \"erspan1\"\nid = 1", "session[1].id", 4),
            ("[[session]]\nname = \"x\"\ntransport = \"gre\"\ninterface = \"eth0\"", "session[1].interface", 4),
            ("[[session]]\nname = \"x\"", "session[1]", 1),
        ]
        for (text, key, line) in cases {
            do {
                _ = try ConfigurationFile.parse(text: text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.problems.map(\.key) == [key], "\(text)")
                #expect(error.problems.first?.line == line, "\(text): \(error.problems)")
            }
        }
    }

    /// vxlan_ports, vxlan_gpe_ports and geneve_ports: read like each other, may be empty
    /// (except VXLAN), and a port in two lists is a problem named by the list that was changed.
    @Test func udpPortListsAreReadAndMustNotOverlap() throws {
        let loaded = try ConfigurationFile.parse(text: "vxlan_ports = [4789, 8472]\nvxlan_gpe_ports = [4791]\ngeneve_ports = [6081, 6082]")
        #expect(loaded.configuration.vxlanGPEPorts == [4791])
        #expect(loaded.configuration.genevePorts == [6081, 6082])
        let off = try ConfigurationFile.parse(text: "vxlan_gpe_ports = []\ngeneve_ports = []")
        #expect(off.configuration.vxlanGPEPorts.isEmpty && off.configuration.genevePorts.isEmpty)
        #expect(off.configuration.decoderConfiguration.genevePorts.ports.isEmpty)
        let defaults = CollectorConfiguration(outputDirectory: "")
        #expect(defaults.vxlanGPEPorts == [4790] && defaults.genevePorts == [6081])
        #expect(defaults.decoderConfiguration.genevePorts.ports == [6081])
        #expect(defaults.decoderConfiguration.vxlanGPEPorts.ports == [4790])

        let cases: [(String, String, Int, String)] = [
            ("geneve_ports = [4789]", "geneve_ports", 1, "port 4789 is also a VXLAN port"),
            ("\nvxlan_ports = [4789, 4790]", "vxlan_ports", 2, "port 4790 is also a VXLAN-GPE port"),
            ("vxlan_ports = [6081]", "vxlan_ports", 1, "port 6081 is also a Geneve port"),
            ("vxlan_gpe_ports = [7000]\ngeneve_ports = [7000]", "geneve_ports", 2, "port 7000 is also a VXLAN-GPE port"),
            ("geneve_ports = [0]", "geneve_ports", 1, "0 is not a UDP port"),
            ("vxlan_gpe_ports = [70000]", "vxlan_gpe_ports", 1, "70000 is not a UDP port"),
            ("geneve_ports = 6081", "geneve_ports", 1, "must be an array"),
        ]
        for (text, key, line, message) in cases {
            do {
                _ = try ConfigurationFile.parse(text: text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.problems.map(\.key) == [key], "\(text): \(error.problems)")
                #expect(error.problems.first?.line == line, "\(text)")
                #expect(error.problems.first?.message.contains(message) == true, "\(text): \(error.problems)")
            }
        }
        var flags = CollectorConfiguration(outputDirectory: "/tmp")
        flags.genevePorts = [4790]
        #expect(
            flags.problems().map(\.description) == ["geneve-port: port 4790 is also a VXLAN-GPE port; a UDP port carries one transport"])
    }

    /// Geneve sessions: named `<exporter>-geneve-<vni>` and matched by `transport = "geneve"`
    /// and the VNI, never by a VXLAN rule for the same number.
    @Test func geneveSessionRules() throws {
        let loaded = try ConfigurationFile.parse(
            text: """
                [[session]]
                name = "ovs-mirror"
                transport = "geneve"
                id = 4207
                [[session]]
                name = "aws"
                transport = "vxlan"
                id = 4207
                """)
        let rules = SessionRules(loaded.configuration.sessionRules)
        func match(_ family: SessionFamily, _ id: UInt32) -> String? {
            rules.firstMatch(family: family, exporter: IPAddress("198.51.100.1")!, identifier: id, interfaceName: "eth0")
                .map { rules.rules[$0].name }
        }
        #expect(match(.geneve, 4207) == "ovs-mirror")
        #expect(match(.vxlan, 4207) == "aws")
        #expect(match(.geneve, 4208) == nil)
        do {
            _ = try ConfigurationFile.parse(text: "[[session]]\nname = \"g\"\ntransport = \"geneve\"\nid = 16777216")
            Issue.record("a VNI above 24 bits was accepted")
        } catch {
            #expect(error.problems.map(\.key) == ["session[1].id"])
            #expect(error.problems.first?.message.contains("VNIs are 0-16777215") == true)
        }
    }

    @Test func sessionNames() {
        for good in ["core", "sw1-erspan-10", "überwachung", "a.b", String(repeating: "x", count: 128)] {
            #expect(SessionRule.nameProblem(good) == nil, "\(good)")
        }
        for bad in ["", ".", "..", "a/b", "/abs", "a..b", "../x", "tab\there", "nul\u{0}", String(repeating: "x", count: 129)] {
            #expect(SessionRule.nameProblem(bad) != nil, "\(bad)")
        }
        // 128 bytes, not 128 characters.
        #expect(SessionRule.nameProblem(String(repeating: "ü", count: 65)) != nil)
    }

    @Test func unreadableFiles() throws {
        let directory = try TestSupport.makeTemporaryDirectory("config")
        defer { TestSupport.removeDirectory(directory) }
        for path in [directory + "/missing.toml", directory] {
            #expect(throws: ConfigurationFileError.self) { try ConfigurationFile.load(path: path) }
        }
        let binary = directory + "/binary.toml"
        try Data([0x6F, 0x3D, 0xFF, 0xFE]).write(to: URL(fileURLWithPath: binary))
        do {
            _ = try ConfigurationFile.load(path: binary)
            Issue.record("accepted invalid UTF-8")
        } catch {
            #expect(error.lines == ["\(binary): is not UTF-8 text"])
        }
    }

    // MARK: Session rules

    @Test func sessionRulesMatchFirstWins() throws {
        let loaded = try ConfigurationFile.parse(
            text: """
                rspan_vlans = [999]
                [[session]]
                name = "core"
                transport = "erspan"
                exporter = "198.51.100.0/24"
                id = 10
                rotate_size = "8M"
                keep_files = 4
                [[session]]
                name = "any-erspan-10"
                id = 10
                [[session]]
                name = "aws"
                transport = "vxlan"
                id = 4207
                rotate_interval = 300
                [[session]]
                name = "v6-switch"
                exporter = "2001:db8:1::/48"
                [[session]]
                name = "lab"
                interface = "eth1"
                id = 999
                """)
        let rules = SessionRules(loaded.configuration.sessionRules)
        func match(_ family: SessionFamily, _ exporter: String, _ id: UInt32?, _ interface: String = "eth0") -> String? {
            rules.firstMatch(family: family, exporter: IPAddress(exporter)!, identifier: id, interfaceName: interface)
                .map { rules.rules[$0].name }
        }
        #expect(match(.erspan, "198.51.100.7", 10) == "core")
        #expect(match(.erspan, "203.0.113.7", 10) == "any-erspan-10", "outside the prefix: the next rule")
        #expect(match(.vxlan, "198.51.100.7", 10) == "any-erspan-10", "a rule without transport matches any")
        #expect(match(.erspan, "198.51.100.7", 11) == nil)
        #expect(match(.vxlan, "203.0.113.9", 4207) == "aws")
        #expect(match(.gre, "203.0.113.9", 4207) == nil)
        #expect(match(.erspan1, "2001:db8:1::5", nil) == "v6-switch")
        #expect(match(.gre, "2001:db8:2::5", nil) == nil)
        #expect(match(.rspan, "0.0.0.0", 999, "eth1") == "lab")
        #expect(match(.rspan, "0.0.0.0", 999, "eth2") == nil)
        #expect(match(.rspan, "0.0.0.0", 998, "eth1") == nil)
        #expect(match(.erspan, "0.0.0.0", 999, "eth1") == nil, "interface implies RSPAN")

        #expect(rules.overrides(0) == .init(rotateSize: 8 << 20, rotateIntervalSeconds: nil, keepFiles: 4))
        #expect(rules.overrides(2) == .init(rotateSize: nil, rotateIntervalSeconds: 300, keepFiles: nil))
        #expect(rules.overrides(1) == .init())
    }

    /// mixed_sessions.pcap through a pipeline that knows three named sessions and refuses the
    /// rest: the named ones are written under their names, everything else is
    /// unknown_session.not_configured, and the accounting law holds.
    @Test func unknownSessionsAreDiscardedWhenRefused() throws {
        let input = TestSupport.fixtures.appendingPathComponent("mixed_sessions.pcap").path
        let records = try TestSupport.readPcap(input).records

        func replay(_ configuration: CollectorConfiguration, into output: String) throws -> (Summary, Pipeline) {
            let storage = try Storage(configuration: StorageConfiguration(directory: output))
            let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["replay"])
            for record in records {
                record.data.withUnsafeBytes { bytes in
                    pipeline.process(bytes, wireLength: record.wireLength, timestampNanoseconds: record.timestampNanoseconds)
                }
            }
            storage.close()
            return (pipeline.summary(), pipeline)
        }

        let referenceOutput = try TestSupport.makeTemporaryDirectory("rules-reference")
        defer { TestSupport.removeDirectory(referenceOutput) }
        var reference = CollectorConfiguration(outputDirectory: referenceOutput)
        reference.rspanVLANs = [999]
        let (all, _) = try replay(reference, into: referenceOutput)
        let packets = Dictionary(uniqueKeysWithValues: all.sessions.map { ($0.name, $0.packets) })

        let output = try TestSupport.makeTemporaryDirectory("rules")
        defer { TestSupport.removeDirectory(output) }
        var configuration = try ConfigurationFile.load(path: Self.fixture("sessions.toml")).configuration
        configuration.outputDirectory = output
        #expect(configuration.problems().isEmpty)
        let (summary, pipeline) = try replay(configuration, into: output)

        #expect(summary.sessions.map(\.name) == ["aws", "core", "lab-rspan"])
        let named = Dictionary(uniqueKeysWithValues: summary.sessions.map { ($0.name, $0.packets) })
        #expect(named["core"] == packets["198.51.100.1-erspan-1"])
        #expect(named["aws"] == packets["198.51.100.4-vxlan-5000"])
        #expect(named["lab-rspan"] == packets["replay-vlan-999"])
        let refused = ["198.51.100.3-erspan-1", "198.51.100.3-erspan-2", "198.51.100.5-gre-7", "198.51.100.6-erspan1"]
            .reduce(Int64(0)) { $0 + (packets[$1] ?? 0) }
        #expect(refused > 0)
        #expect(summary.discardReasons["unknown_session.not_configured"] == refused)
        #expect(summary.discarded.unknownSession == refused + all.discarded.unknownSession)
        #expect(summary.packetsWritten == all.packetsWritten - refused)
        #expect(summary.packetsReceived == all.packetsReceived)
        #expect(summary.isConserved)
        #expect(pipeline.rejectedSessionKeyCount == 4, "each refused key is remembered once")

        // Only the named sessions have directories, holding exactly what was counted.
        let directories = try FileManager.default.contentsOfDirectory(atPath: output).filter { !$0.hasPrefix(".") }.sorted()
        #expect(directories == ["aws", "core", "lab-rspan"])
        for session in summary.sessions {
            let written = try TestSupport.captureFiles(in: output + "/" + session.name).flatMap { try TestSupport.readPcap($0).records }
            #expect(written.count == Int(session.packets), "\(session.name)")
        }
        // The files match the default-named ones of the reference run.
        for (name, reference) in [("core", "198.51.100.1-erspan-1"), ("aws", "198.51.100.4-vxlan-5000"), ("lab-rspan", "replay-vlan-999")] {
            let ours = try TestSupport.captureFiles(in: output + "/" + name).flatMap { try TestSupport.readPcap($0).records }
            let theirs = try TestSupport.captureFiles(in: referenceOutput + "/" + reference).flatMap { try TestSupport.readPcap($0).records }
            #expect(ours == theirs, "\(name)")
        }
    }

    /// A rule's rotation and retention apply to its session only.
    @Test func ruleOverridesRotationAndRetention() throws {
        let output = try TestSupport.makeTemporaryDirectory("overrides")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        var small = SessionRule(name: "small-files")
        small.transport = .erspan
        small.id = 1
        small.rotateSize = 16 << 10
        small.keepFiles = 2
        configuration.sessionRules = [small]
        let storage = try Storage(configuration: StorageConfiguration(directory: output))
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        for number in 0..<400 {
            let frame = BackPressureTests.erspanFrame(id: UInt16(number % 2 + 1), sequence: UInt32(number / 2), counter: UInt32(number))
            frame.withUnsafeBytes { bytes in
                pipeline.process(bytes, wireLength: bytes.count, timestampNanoseconds: 1_700_000_000_000_000_000 + UInt64(number))
            }
        }
        storage.close()
        let summary = pipeline.summary()
        #expect(summary.sessions.map(\.name) == ["198.51.100.1-erspan-2", "small-files"])
        #expect(summary.packetsWritten == 400)
        #expect(TestSupport.captureFiles(in: output + "/small-files").count == 2, "rotated at 16K, two kept")
        #expect(TestSupport.captureFiles(in: output + "/198.51.100.1-erspan-2").count == 1, "global: no rotation")
        #expect((summary.sessions.first { $0.name == "small-files" }?.files ?? 0) > 2)
    }

    /// Refused keys are remembered up to a bound; past it frames are still refused, by a rule
    /// scan.
    @Test func rememberedRefusalsAreBounded() throws {
        let output = try TestSupport.makeTemporaryDirectory("refused")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.acceptUnknownSessions = false
        var rule = SessionRule(name: "only")
        rule.exporter = IPPrefix("203.0.113.1")
        configuration.sessionRules = [rule]
        let storage = try Storage(configuration: StorageConfiguration(directory: output))
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        var frame = BackPressureTests.erspanFrame(id: 1, sequence: 0, counter: 0, innerPayload: 64)
        let sent = RejectedSessionKeys.limit + 1000
        for number in 0..<sent {
            // A different exporter (10.x.y.z) each frame; the IPv4 checksum is not checked.
            frame[26] = 10
            frame[27] = UInt8(number >> 16 & 0xFF)
            frame[28] = UInt8(number >> 8 & 0xFF)
            frame[29] = UInt8(number & 0xFF)
            frame.withUnsafeBytes { bytes in
                pipeline.process(bytes, wireLength: bytes.count, timestampNanoseconds: 1_700_000_000_000_000_000)
            }
        }
        storage.close()
        let summary = pipeline.summary()
        #expect(pipeline.rejectedSessionKeyCount == RejectedSessionKeys.limit)
        #expect(summary.discardReasons["unknown_session.not_configured"] == Int64(sent))
        #expect(summary.packetsWritten == 0 && summary.sessions.isEmpty)
        #expect(summary.isConserved)
    }

    // MARK: The command line

    @Test func checkConfigSaysOKForTheExample() throws {
        let result = try TestSupport.run([TestSupport.collectorBinary, "check-config", Self.example])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput == "\(Self.example): OK\n")

        let directory = try TestSupport.makeTemporaryDirectory("check")
        defer { TestSupport.removeDirectory(directory) }
        let full = directory + "/full.toml"
        try Self.uncommentedExample().write(toFile: full, atomically: true, encoding: .utf8)
        let all = try TestSupport.run([TestSupport.collectorBinary, "check-config", full])
        #expect(all.status == 0, "\(all.standardError)")
    }

    @Test func checkConfigPrintsEveryProblemWithPathLineAndKey() throws {
        let path = Self.fixture("mistakes.toml")
        let result = try TestSupport.run([TestSupport.collectorBinary, "check-config", path])
        #expect(result.status == 1)
        let lines = result.standardError.split(separator: "\n").map(String.init)
        let expected = try Self.problems(path)
        #expect(lines.count == expected.count, "\(result.standardError)")
        #expect(lines.contains("\(path):3: rotate_size: 'lots' is not a size (examples: 4096, 512K, 100M, 2G)"))
        #expect(lines.contains { $0.hasPrefix("\(path):4: keep_file: unknown key") })
        #expect(lines.contains { $0.hasPrefix("\(path):30: session[4].name: 'edge' is already the name of session[3]") })
        #expect(lines.allSatisfy { $0.hasPrefix(path + ":") })

        let syntax = try TestSupport.run([TestSupport.collectorBinary, "check-config", Self.fixture("syntax.toml")])
        #expect(syntax.status == 1)
        #expect(syntax.standardError.hasPrefix("\(Self.fixture("syntax.toml")):6: capture.filter: TOML syntax"))

        let missing = try TestSupport.run([TestSupport.collectorBinary, "check-config", "/nonexistent/span-collector.toml"])
        #expect(missing.status == 1)
        #expect(missing.standardError == "/nonexistent/span-collector.toml: no such file\n")
    }

    /// replay --config: the file's settings apply, and a flag overrides exactly its own key.
    @Test func flagsOverrideTheFile() throws {
        let directory = try TestSupport.makeTemporaryDirectory("override")
        defer { TestSupport.removeDirectory(directory) }
        let config = directory + "/collector.toml"
        let fileOutput = directory + "/from-file"
        let text = try String(contentsOfFile: Self.fixture("sessions.toml"), encoding: .utf8)
        try "output = \"\(fileOutput)\"\nformat = \"pcapng\"\n\(text)".write(toFile: config, atomically: true, encoding: .utf8)
        let input = TestSupport.fixtures.appendingPathComponent("mixed_sessions.pcap").path

        // The file alone: its output, its format, its sessions, unknown traffic refused.
        let plain = try TestSupport.run([TestSupport.collectorBinary, "replay", input, "--config", config, "--json"])
        #expect(plain.status == 0, "\(plain.standardError)")
        let plainSummary = try #require(try JSONSerialization.jsonObject(with: Data(plain.standardOutput.utf8)) as? [String: Any])
        let plainSessions = try #require(plainSummary["sessions"] as? [[String: Any]])
        #expect(Set(plainSessions.compactMap { $0["name"] as? String }) == ["core", "aws", "lab-rspan"])
        #expect(TestSupport.captureFiles(in: fileOutput).allSatisfy { $0.hasSuffix(".pcapng") })
        #expect(!TestSupport.captureFiles(in: fileOutput).isEmpty)

        // Flags win: another output, pcap, unknown sessions accepted; the sessions still apply.
        let flagOutput = directory + "/from-flags"
        let flagged = try TestSupport.run([
            TestSupport.collectorBinary, "replay", input, "--config", config, "--output", flagOutput, "--format", "pcap",
            "--accept-unknown-sessions", "true", "--json",
        ])
        #expect(flagged.status == 0, "\(flagged.standardError)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(flagged.standardOutput.utf8)) as? [String: Any])
        let sessions = try #require(summary["sessions"] as? [[String: Any]])
        let names = Set(sessions.compactMap { $0["name"] as? String })
        #expect(names.isSuperset(of: ["core", "aws", "lab-rspan", "198.51.100.3-erspan-1", "198.51.100.5-gre-7"]))
        let files = TestSupport.captureFiles(in: flagOutput)
        #expect(!files.isEmpty && files.allSatisfy { $0.hasSuffix(".pcap") })
        #expect(!FileManager.default.fileExists(atPath: fileOutput + "/198.51.100.3-erspan-1"))

        // A bad flag still names the flag; a bad file names the file, its line and key.
        let badFlag = try TestSupport.run([
            TestSupport.collectorBinary, "replay", input, "--config", config, "--rotate-size", "lots",
        ])
        #expect(badFlag.status != 0)
        #expect(badFlag.standardError.contains("--rotate-size: 'lots' is not a size"))
        let badFile = try TestSupport.run([
            TestSupport.collectorBinary, "replay", input, "--config", Self.fixture("mistakes.toml"), "--output", flagOutput,
        ])
        #expect(badFile.status != 0)
        #expect(badFile.standardError.contains("\(Self.fixture("mistakes.toml")):3: rotate_size: 'lots' is not a size"))
    }

    // MARK: Numeric ranges (issue 10, item 8)

    /// The values of the issue: check-config accepted them and the collector crashed on them
    /// (buffer_size crashed check-config itself).
    @Test func valuesThatCrashedAreProblemsWithKeyAndLine() throws {
        let directory = try TestSupport.makeTemporaryDirectory("ranges")
        defer { TestSupport.removeDirectory(directory) }
        let path = directory + "/huge.toml"
        try """
            idle_timeout = 18446744074
            rotate_interval = 18446744074
            buffer_size = 9223372036854775807
            max_buffer_memory = 9223372036854775807

            [[session]]
            name = "edge"
            exporter = "198.51.100.7"
            rotate_interval = 18446744074
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try TestSupport.run([TestSupport.collectorBinary, "check-config", path], timeout: 60)
        #expect(result.status == 1, "\(result.standardError)")
        let lines = result.standardError.split(separator: "\n").map(String.init)
        #expect(lines == [
            "\(path):1: idle_timeout: must be 1-31622400 seconds, got 18446744074 seconds",
            "\(path):2: rotate_interval: must be 1-31622400 seconds (or 0: off), got 18446744074 seconds",
            "\(path):3: buffer_size: must be 128K-1G, got 9223372036854775807 bytes",
            "\(path):4: max_buffer_memory: must be 512K-1T, got 9223372036854775807 bytes",
            "\(path):9: session[1].rotate_interval: must be 1-31622400 seconds, got 18446744074 seconds",
        ])
        // The same values as flags: a message naming the flag, exit 64 (usage), no crash.
        for (flag, value) in [
            ("--idle-timeout", "18446744074"), ("--rotate-interval", "18446744074"), ("--buffer-size", "9223372036854775807"),
            ("--max-buffer-memory", "9223372036854775807"),
        ] {
            let replay = try TestSupport.run(
                [TestSupport.collectorBinary, "replay", Self.fixture("../v02_erspan2.pcap"), "--output", directory + "/out", flag, value],
                timeout: 60)
            #expect(replay.status == 64, "\(flag): \(replay.status) \(replay.standardError)")
            #expect(replay.standardError.contains("\(flag): must be"), "\(replay.standardError)")
        }
    }

    /// Every numeric setting of the table, just below and just above its range, from the file:
    /// a problem naming the key; its bounds are accepted.
    @Test(arguments: NumericSettings.all)
    func everyNumericSettingIsRangeChecked(_ setting: NumericSetting) throws {
        func text(_ value: Int) -> String {
            var lines = setting.key.hasPrefix("capture.") ? "[capture]\n\(setting.name) = \(value)\n" : "\(setting.key) = \(value)\n"
            // Combinations: a ring of at least two blocks, buffer memory for 4 buffers.
            if setting.key == "capture.block_size" { lines += "ring_size = \(max(2 * value, 8192))\n" }
            if setting.key == "capture.ring_size" { lines = "[capture]\nblock_size = 4096\nring_size = \(value)\n" }
            if setting.key == "buffer_size" { lines += "max_buffer_memory = \(4 * max(value, 1))\n" }
            if setting.key == "max_buffer_memory" { lines += "buffer_size = \(StorageConfiguration.minimumBufferSize)\n" }
            return lines
        }
        let physical = HostSystem.physicalMemory
        for value in [setting.range.lowerBound, setting.range.upperBound] {
            if setting.key == "max_buffer_memory" && value > physical { continue }
            if setting.key == "capture.ring_size" && value % 4096 != 0 { continue }
            if setting.key == "buffer_size" && 4 * value > physical { continue }
            do {
                _ = try ConfigurationFile.parse(text: text(value))
            } catch {
                Issue.record("\(setting.key) = \(value) refused: \(error)")
            }
        }
        for value in [setting.range.lowerBound - 1, setting.range.upperBound + 1] where !(setting.zeroTurnsOff && value == 0) {
            do {
                _ = try ConfigurationFile.parse(text: text(value))
                Issue.record("\(setting.key) = \(value) accepted")
            } catch {
                #expect(error.problems.contains { $0.key == setting.key && $0.line != nil }, "\(setting.key) = \(value): \(error)")
            }
        }
    }

    /// `run` rotates every hour or 1 GiB and keeps 10% free unless told otherwise; 0 turns
    /// rotation off; `replay` (no service defaults) writes one file per session.
    @Test func runDefaultsRotateAndKeepSpaceFree() throws {
        var service = CollectorConfiguration(outputDirectory: "/srv")
        service.applyServiceDefaults()
        let storage = service.storageConfiguration(handoff: .drop)
        #expect(storage.rotateSize == 1 << 30)
        #expect(storage.rotateIntervalSeconds == 3600)
        #expect(storage.minimumFreeSpace == .percent(10))

        var explicit = try ConfigurationFile.parse(text: "rotate_size = 0\nrotate_interval = 60\nmin_free_space = 0\n").configuration
        explicit.outputDirectory = "/srv"
        explicit.applyServiceDefaults()
        #expect(explicit.problems().isEmpty)
        let off = explicit.storageConfiguration(handoff: .drop)
        #expect(off.rotateSize == nil)
        #expect(off.rotateIntervalSeconds == 60)
        #expect(off.minimumFreeSpace == .bytes(0))

        let replay = CollectorConfiguration(outputDirectory: "/srv").storageConfiguration(handoff: .wait)
        #expect(replay.rotateSize == nil && replay.rotateIntervalSeconds == nil && replay.minimumFreeSpace == nil)
    }

    /// A reload applies session rules and disk limits; other changes are named in a warning.
    @Test func reloadNamesTheChangedSettingsItCannotApply() {
        let running = CollectorConfiguration(outputDirectory: "/srv/a")
        var reloaded = running
        reloaded.maximumDiskUsage = 1 << 30
        reloaded.minimumFreeSpace = .percent(20)
        reloaded.sessionRules = [SessionRule(name: "x")]
        #expect(LiveCapture.settingsNeedingRestart(running: running, reloaded: reloaded).isEmpty)
        reloaded.idleTimeoutSeconds = 60
        reloaded.bufferSize = 1 << 20
        reloaded.outputDirectory = "/srv/b"
        #expect(LiveCapture.settingsNeedingRestart(running: running, reloaded: reloaded) == ["output", "buffer_size", "idle_timeout"])
    }

    // MARK: check-config warnings and what is not a configuration file (item 18)

    @Test func checkConfigWarnsAboutHostBitsAndShadowedSessions() throws {
        let directory = try TestSupport.makeTemporaryDirectory("warnings")
        defer { TestSupport.removeDirectory(directory) }
        let path = directory + "/warnings.toml"
        try """
            [[session]]
            name = "switches"
            transport = "erspan"
            exporter = "198.51.100.7/24"

            [[session]]
            name = "core"
            transport = "erspan"
            exporter = "198.51.100.9"
            id = 3

            [[session]]
            name = "v6"
            exporter = "2001:db8::1/64"

            [[session]]
            name = "gre"
            transport = "gre"
            exporter = "198.51.100.9"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try TestSupport.run([TestSupport.collectorBinary, "check-config", path], timeout: 60)
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput == "\(path): OK\n")
        #expect(result.standardError.split(separator: "\n").map(String.init) == [
            "\(path):1: session[1].exporter: warning: '198.51.100.7/24' has host bits set; it matches all of 198.51.100.0/24 (write that, or a /32 for one exporter)",
            "\(path):6: session[2]: warning: never matches: session[1] 'switches' (line 1) comes first and matches everything it does",
            "\(path):12: session[3].exporter: warning: '2001:db8::1/64' has host bits set; it matches all of 2001:db8::/64 (write that, or a /128 for one exporter)",
        ])
        // A different transport is not shadowed; neither is a narrower rule placed first.
        #expect(try ConfigurationFile.load(path: path).warnings.count == 3)
        let clean = try ConfigurationFile.parse(text: """
            [[session]]
            name = "core"
            exporter = "198.51.100.9"
            id = 3
            [[session]]
            name = "rest"
            exporter = "198.51.100.0/24"
            """)
        #expect(clean.warnings.isEmpty)
    }

    @Test func devicesFIFOsAndLargeFilesAreRefusedWithoutReading() throws {
        let directory = try TestSupport.makeTemporaryDirectory("notafile")
        defer { TestSupport.removeDirectory(directory) }
        let fifo = directory + "/fifo.toml"
        #expect(mkfifo(fifo, 0o600) == 0)
        let large = directory + "/large.toml"
        try String(repeating: "# padding\n", count: 110_000).write(toFile: large, atomically: true, encoding: .utf8)
        let cases = [
            ("/dev/zero", "/dev/zero: is a character device, not a regular file"),
            (fifo, "\(fifo): is a FIFO, not a regular file"),
            (large, "\(large): is larger than 1 MiB (1100000 bytes)"),
        ]
        for (path, message) in cases {
            let result = try TestSupport.run([TestSupport.collectorBinary, "check-config", path], timeout: 20)
            #expect(result.status == 1)
            #expect(result.standardError == message + "\n")
        }
    }

    static func problems(_ path: String) throws -> [ConfigurationProblem] {
        do {
            _ = try ConfigurationFile.load(path: path)
        } catch {
            return error.problems
        }
        Issue.record("\(path) was accepted")
        return []
    }
}
