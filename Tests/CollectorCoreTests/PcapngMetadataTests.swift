import CollectorCore
import Foundation
import MirrorDecoding
import PcapFormat
import Testing

@testable import PcapStorage

/// A pcapng file as our own block walker sees it. The writer is ours too, so every test also
/// has Wireshark's tools (tshark, capinfos) read the same files.
struct PcapNGFile {
    struct Interface: Equatable {
        var linkType: UInt16
        var name: String?
        var description: String?
    }

    struct Packet {
        var interfaceID: UInt32
        var timestampNanoseconds: UInt64
        var wireLength: Int
        var data: [UInt8]
        var flags: UInt32?
        var comment: String?
    }

    struct Statistics: Equatable {
        var interfaceID: UInt32
        var timestampNanoseconds: UInt64
        var start: UInt64?
        var end: UInt64?
        var received: UInt64?
        var dropped: UInt64?
        var delivered: UInt64?
        var comment: String?
    }

    var blockTypes: [UInt32] = []
    var application: String?
    var interfaces: [Interface] = []
    var packets: [Packet] = []
    var statistics: [Statistics] = []
    var size = 0

    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    init(path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        size = bytes.count
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
        func time(_ at: Int) -> UInt64 { UInt64(u32(at)) << 32 | UInt64(u32(at + 4)) }
        /// Options from `start` to `end`: code → value bytes.
        func options(_ start: Int, _ end: Int) throws -> [(UInt16, [UInt8])] {
            var result: [(UInt16, [UInt8])] = []
            var offset = start
            while offset + 4 <= end {
                let code = u16(offset)
                let length = Int(u16(offset + 2))
                if code == 0 { break }
                guard offset + 4 + length <= end else { throw Malformed(description: "option \(code) overruns its block") }
                result.append((code, Array(bytes[(offset + 4)..<(offset + 4 + length)])))
                offset += 4 + (length + 3) & ~3
            }
            return result
        }
        func text(_ value: [UInt8]) -> String { String(decoding: value, as: UTF8.self) }
        func integer(_ value: [UInt8]) -> UInt64 { value.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) } }

        guard bytes.count >= 28, u32(0) == SectionHeaderBlock.type, u32(8) == 0x1A2B_3C4D else {
            throw Malformed(description: "\(path) does not start with a little-endian section header")
        }
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 12 else { throw Malformed(description: "\(path): trailing bytes") }
            let type = u32(offset)
            let length = Int(u32(offset + 4))
            guard length >= 12, length % 4 == 0, offset + length <= bytes.count, Int(u32(offset + length - 4)) == length else {
                throw Malformed(description: "\(path): bad block at \(offset)")
            }
            let end = offset + length - 4
            blockTypes.append(type)
            switch type {
            case SectionHeaderBlock.type:
                application = try options(offset + 24, end).first { $0.0 == 4 }.map { text($0.1) }
            case InterfaceDescriptionBlock.type:
                let found = try options(offset + 16, end)
                interfaces.append(
                    Interface(
                        linkType: u16(offset + 8), name: found.first { $0.0 == 2 }.map { text($0.1) },
                        description: found.first { $0.0 == 3 }.map { text($0.1) }))
            case EnhancedPacketBlock.type:
                let captured = Int(u32(offset + 20))
                let found = try options(offset + 28 + (captured + 3) & ~3, end)
                packets.append(
                    Packet(
                        interfaceID: u32(offset + 8), timestampNanoseconds: time(offset + 12), wireLength: Int(u32(offset + 24)),
                        data: Array(bytes[(offset + 28)..<(offset + 28 + captured)]),
                        flags: found.first { $0.0 == 2 }.map { UInt32(integer($0.1)) },
                        comment: found.first { $0.0 == 1 }.map { text($0.1) }))
            case InterfaceStatisticsBlock.type:
                let found = try options(offset + 20, end)
                func value(_ code: UInt16) -> UInt64? { found.first { $0.0 == code }.map { integer($0.1) } }
                func stamp(_ code: UInt16) -> UInt64? {
                    found.first { $0.0 == code }.map { UInt64(integer(Array($0.1[0..<4]))) << 32 | integer(Array($0.1[4..<8])) }
                }
                statistics.append(
                    Statistics(
                        interfaceID: u32(offset + 8), timestampNanoseconds: time(offset + 12), start: stamp(2), end: stamp(3),
                        received: value(4), dropped: value(5), delivered: value(8), comment: found.first { $0.0 == 1 }.map { text($0.1) }))
            default:
                break
            }
            offset += length
        }
    }

    /// The statistics blocks are the last blocks of the file, one per interface, in order.
    var endsWithStatistics: Bool {
        !statistics.isEmpty && blockTypes.suffix(statistics.count).allSatisfy { $0 == InterfaceStatisticsBlock.type }
            && statistics.map(\.interfaceID) == (0..<UInt32(interfaces.count)).map { $0 }
    }
}

/// The pcapng parts of Tests/Fixtures/expected.json (generate.py `ng_meta`).
struct PcapngExpectations: Decodable {
    struct Frame: Decodable {
        var session: String
        var interface: UInt32
        var comment: String?
        var direction: String?
        var errors: [String]
    }

    struct FileStatistics: Decodable {
        var records: [UInt64]
        var lost: Int64
        var outOfOrder: Int64
        var duplicates: Int64
        var restarts: Int64
        enum CodingKeys: String, CodingKey {
            case records, lost, duplicates, restarts
            case outOfOrder = "out_of_order"
        }
    }

    struct Section: Decodable {
        var frames: [Frame]
        var statistics: [String: FileStatistics]
    }

    struct Session: Decodable {
        var frames: String
        var linkType: UInt32?
        enum CodingKeys: String, CodingKey {
            case frames
            case linkType = "link_type"
        }
    }

    struct Fixture: Decodable {
        var input: String
        var pcapng: Section?
        var sessions: [String: Session]
    }

    var fixtures: [String: Fixture]

    static let shared: PcapngExpectations = {
        let data = try! Data(contentsOf: TestSupport.fixtures.appendingPathComponent("expected.json"))
        return try! JSONDecoder().decode(PcapngExpectations.self, from: data)
    }()

    static var withMetadata: [String] { shared.fixtures.filter { $0.value.pcapng != nil }.keys.sorted() }
}

@Suite struct PcapngMetadataTests {
    static func replay(
        _ fixture: String, format: CaptureFileFormat, _ configure: (inout CollectorConfiguration) -> Void = { _ in }
    ) throws -> (Summary, String) {
        let manifest = try #require(FixtureManifest.shared.fixtures[fixture])
        let output = try TestSupport.makeTemporaryDirectory("pcapng")
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.format = format
        configuration.rspanVLANs = manifest.options.rspanVLANs
        configuration.vxlanPorts = manifest.options.vxlanPorts
        if let ports = manifest.options.vxlanGPEPorts { configuration.vxlanGPEPorts = ports }
        if let ports = manifest.options.genevePorts { configuration.genevePorts = ports }
        configuration.allowedExporters = manifest.options.allowExporters.compactMap(IPPrefix.init)
        configure(&configuration)
        let input = TestSupport.fixtures.appendingPathComponent(manifest.input).path
        return (try Replay(inputs: [input], configuration: configuration).run(), output)
    }

    /// The `epb_flags` word the generator's expectation stands for (draft-ietf-opsawg-pcapng
    /// 4.3.1: bits 0-1 direction, 24 CRC error, 25 packet too long, 26 packet too short).
    static func flags(_ frame: PcapngExpectations.Frame) -> UInt32? {
        guard let direction = frame.direction else { return nil }
        var flags: UInt32 = direction == "inbound" ? 1 : 2
        for error in frame.errors {
            switch error {
            case "crc": flags |= 1 << 24
            case "too_long": flags |= 1 << 25
            case "too_short": flags |= 1 << 26
            default: Issue.record("unknown error \(error)")
            }
        }
        return flags
    }

    /// `key=value` pairs of a comment, in order (docs/FORMATS.md grammar).
    static func fields(_ comment: String) -> [(String, String)] {
        comment.split(separator: " ").map { token in
            let parts = token.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
    }

    static func tsharkFields(_ file: String, _ fields: [String], extra: [String] = []) throws -> [[String]] {
        let result = try TestSupport.run(["tshark", "-r", file] + extra + ["-T", "fields", "-E", "separator=|"] + fields.flatMap { ["-e", $0] })
        #expect(result.status == 0, "tshark: \(result.standardError)")
        return result.standardOutput.split(separator: "\n", omittingEmptySubsequences: true).map {
            $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        }
    }

    // MARK: Options per packet, statistics per file, as the generator says

    @Test(arguments: PcapngExpectations.withMetadata)
    func recordsCarryTheTransportMetadata(fixture name: String) throws {
        let expected = try #require(PcapngExpectations.shared.fixtures[name]?.pcapng)
        let (summary, output) = try Self.replay(name, format: .pcapng)
        defer { TestSupport.removeDirectory(output) }
        #expect(summary.isConserved)
        #expect(summary.packetsWritten == Int64(expected.frames.count))
        // pcapng has no `-ip` series: raw IP is interface 1 of the session's own file.
        #expect(Set(summary.sessions.map(\.name)) == Set(expected.statistics.keys))

        for (session, statistics) in expected.statistics.sorted(by: { $0.key < $1.key }) {
            let frames = expected.frames.filter { $0.session == session }
            let files = TestSupport.captureFiles(in: output + "/" + session)
            try #require(files.count == 1, "\(session): \(files)")
            let file = try PcapNGFile(path: files[0])
            #expect(file.application == "span-collector \(SpanCollectorVersion.string)")

            // One IDB per link type present, both naming the session and the exporter.
            let linkTypes: [UInt16] = statistics.records[1] > 0 ? [1, 101] : [1]
            #expect(file.interfaces.map(\.linkType) == linkTypes, "\(session)")
            #expect(file.interfaces.allSatisfy { $0.name == session && $0.description == "exporter 198.51.100.1" })

            // Every packet: interface, epb_flags, comment.
            #expect(file.packets.count == frames.count, "\(session)")
            for (index, (packet, frame)) in zip(file.packets, frames).enumerated() {
                #expect(packet.interfaceID == frame.interface, "\(session) #\(index)")
                #expect(packet.flags == Self.flags(frame), "\(session) #\(index) flags")
                #expect(packet.comment == frame.comment, "\(session) #\(index)")
                if let comment = packet.comment {
                    let pairs = Self.fields(comment)
                    #expect(Set(pairs.map(\.0)).count == pairs.count, "keys appear once: \(comment)")
                    #expect(["erspan", "gre"].contains(pairs[0].0))
                }
            }

            // The same, read by tshark.
            let rows = try Self.tsharkFields(
                files[0],
                [
                    "frame.interface_id", "frame.comment", "frame.packet_flags_direction", "frame.packet_flags_crc_error",
                    "frame.packet_flags_packet_too_error", "frame.packet_flags_packet_too_short_error", "frame.protocols",
                ])
            #expect(rows.count == frames.count)
            for (index, (row, frame)) in zip(rows, frames).enumerated() {
                try #require(row.count == 7, "\(row)")
                #expect(row[0] == String(frame.interface), "\(session) #\(index)")
                #expect(row[1] == (frame.comment ?? ""), "\(session) #\(index)")
                switch frame.direction {
                case "inbound": #expect(row[2] == "0x00000001")
                case "outbound": #expect(row[2] == "0x00000002")
                default: #expect(row[2].isEmpty || row[2] == "0x00000000", "\(row)")
                }
                if frame.direction != nil {
                    #expect(row[3] == (frame.errors.contains("crc") ? "1" : "0"), "\(session) #\(index) crc")
                    #expect(row[4] == (frame.errors.contains("too_long") ? "1" : "0"), "\(session) #\(index) too long")
                    #expect(row[5] == (frame.errors.contains("too_short") ? "1" : "0"), "\(session) #\(index) too short")
                }
                // Raw IP is decoded as IP straight away, Ethernet as Ethernet.
                #expect(row[6].hasPrefix(frame.interface == 1 ? "raw:ip" : "eth:"), "\(row[6])")
            }

            // The statistics blocks close the file.
            #expect(file.endsWithStatistics, "\(session): \(file.blockTypes)")
            let first = try #require(file.packets.first?.timestampNanoseconds)
            let last = try #require(file.packets.last?.timestampNanoseconds)
            for (interface, block) in file.statistics.enumerated() {
                let records = statistics.records[interface]
                #expect(block.received == records && block.dropped == 0 && block.delivered == records, "\(session) \(block)")
                #expect(block.start == first && block.end == last && block.timestampNanoseconds == last)
                if interface == 0 {
                    let text =
                        "lost=\(statistics.lost) out_of_order=\(statistics.outOfOrder) duplicates=\(statistics.duplicates) restarts=\(statistics.restarts)"
                    #expect(block.comment == text)
                } else {
                    #expect(block.comment == nil)
                }
            }
            // tshark's own pcapng dissector sees the same blocks and counts.
            let blocks = try Self.tsharkFields(
                files[0],
                [
                    "pcapng.options.option.data.interface.received", "pcapng.options.option.data.interface.dropped",
                    "pcapng.options.option.data.interface.delivered_to_user",
                ], extra: ["-X", "read_format:MIME Files Format"])
            let counts = statistics.records.prefix(file.interfaces.count).map(String.init).joined(separator: ",")
            let zeros = Array(repeating: "0", count: file.interfaces.count).joined(separator: ",")
            #expect(blocks.first == [counts, zeros, counts], "\(session)")

            // Crash recovery keeps every block of such a file, statistics included.
            let recovery = try TestSupport.makeTemporaryDirectory("recover")
            defer { TestSupport.removeDirectory(recovery) }
            let part = recovery + "/" + (files[0] as NSString).lastPathComponent + ".part"
            try FileManager.default.copyItem(atPath: files[0], toPath: part)
            let result = Recovery.recover(partFile: part)
            #expect(result.recordsKept == frames.count && result.bytesCut == 0, "\(result)")
        }
        let counts = try TestSupport.capinfosPacketCounts(TestSupport.captureFiles(in: output))
        #expect(counts.values.reduce(0, +) == expected.frames.count)
    }

    // MARK: Raw IP in classic pcap

    @Test(arguments: ["erspan3_frame_type", "erspan3_metadata"])
    func rawIPHasItsOwnSeriesInPcap(fixture name: String) throws {
        let expected = try #require(PcapngExpectations.shared.fixtures[name])
        let (summary, output) = try Self.replay(name, format: .pcap)
        defer { TestSupport.removeDirectory(output) }
        let rawSessions = expected.sessions.filter { $0.value.linkType == 101 }
        try #require(!rawSessions.isEmpty)
        for (session, _) in rawSessions {
            #expect(session.hasSuffix("-ip"))
            let parent = String(session.dropLast(3))
            let entry = try #require(summary.sessions.first { $0.name == session })
            let parentEntry = try #require(summary.sessions.first { $0.name == parent })
            #expect(entry.encapsulation == parentEntry.encapsulation && entry.id == parentEntry.id)
            #expect(entry.lost == 0 && entry.outOfOrder == 0, "sequence accounting stays with \(parent)")
            for file in TestSupport.captureFiles(in: output + "/" + session) {
                #expect(try TestSupport.readPcap(file).linkType == 101)
                let rows = try Self.tsharkFields(file, ["frame.protocols"])
                #expect(!rows.isEmpty && rows.allSatisfy { $0[0].hasPrefix("raw:ip") }, "\(rows)")
            }
            for file in TestSupport.captureFiles(in: output + "/" + parent) {
                #expect(try TestSupport.readPcap(file).linkType == 1)
            }
        }
    }

    // MARK: Every fixture as pcapng

    /// Every fixture replayed with `--format pcapng`: the same frames as the pcap expectation
    /// (raw IP folded into its session), files Wireshark reads, statistics blocks that add up.
    @Test(arguments: FixtureManifest.names)
    func everyFixtureAsPcapng(name: String) throws {
        let fixture = try #require(FixtureManifest.shared.fixtures[name])
        let (summary, output) = try Self.replay(name, format: .pcapng)
        defer { TestSupport.removeDirectory(output) }
        #expect(summary.isConserved)
        #expect(summary.packetsWritten == fixture.packetsWritten)
        let folded = Set(fixture.sessions.keys.filter { !($0.hasSuffix("-ip") && fixture.sessions[String($0.dropLast(3))] != nil) })
        #expect(Set(summary.sessions.map(\.name)) == folded)
        for session in summary.sessions {
            var reference: [TestSupport.Record] = []
            for part in [session.name, session.name + "-ip"] {
                guard let expected = fixture.sessions[part] else { continue }
                reference += try TestSupport.readPcap(TestSupport.fixtures.appendingPathComponent(expected.frames).path).records
            }
            reference.sort { $0.timestampNanoseconds < $1.timestampNanoseconds }  // stable: input order
            var written: [TestSupport.Record] = []
            for path in TestSupport.captureFiles(in: output + "/" + session.name) {
                let file = try PcapNGFile(path: path)
                #expect(file.endsWithStatistics, "\(path)")
                #expect(file.statistics.compactMap(\.received).reduce(0, +) == UInt64(file.packets.count))
                #expect(file.statistics.compactMap(\.dropped).reduce(0, +) == 0)
                written += file.packets.map {
                    TestSupport.Record(timestampNanoseconds: $0.timestampNanoseconds, wireLength: $0.wireLength, data: $0.data)
                }
            }
            #expect(written == reference, "\(session.name)")
        }
        let counts = try TestSupport.capinfosPacketCounts(TestSupport.captureFiles(in: output))
        #expect(counts.values.reduce(0, +) == Int(fixture.packetsWritten))
    }

    // MARK: Statistics per file

    /// One record per file: each file's statistics comment holds exactly what its own record
    /// did to the session's sequence accounting, and the files add up to the session's totals.
    @Test func sequenceAccountingIsSplitByFile() throws {
        // Below the 4K the options accept: built by hand (Storage takes any size).
        let output = try TestSupport.makeTemporaryDirectory("pcapng-split")
        defer { TestSupport.removeDirectory(output) }
        var storageConfiguration = StorageConfiguration(directory: output)
        storageConfiguration.format = .pcapng
        storageConfiguration.rotateSize = 1
        let storage = try Storage(configuration: storageConfiguration)
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.format = .pcapng
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["replay"])
        let input = try TestSupport.readPcap(TestSupport.fixtures.appendingPathComponent("erspan3_metadata.pcap").path)
        for record in input.records {
            record.data.withUnsafeBytes { bytes in
                pipeline.process(bytes, wireLength: record.wireLength, timestampNanoseconds: record.timestampNanoseconds)
            }
        }
        storage.close()
        let summary = pipeline.summary()
        let session = "198.51.100.1-erspan-90"
        let files = TestSupport.captureFiles(in: output + "/" + session)
        #expect(files.count == 9)
        // GRE seq 10, 11, 12, 13, 15, 14, 16, 16, 20 (COUNTERS.md "Sequence accounting").
        let expected = [
            "0 0 0", "0 0 0", "0 0 0", "0 0 0", "1 0 0", "-1 1 0", "0 0 0", "0 0 1", "3 0 0",
        ].map { text -> String in
            let n = text.split(separator: " ")
            return "lost=\(n[0]) out_of_order=\(n[1]) duplicates=\(n[2]) restarts=0"
        }
        var comments: [String] = []
        for path in files {
            let file = try PcapNGFile(path: path)
            #expect(file.packets.count == 1 && file.endsWithStatistics)
            let packet = try #require(file.packets.first)
            #expect(file.interfaces.count == Int(packet.interfaceID) + 1, "interface 1 only in files with raw IP")
            comments.append(file.statistics.first?.comment ?? "")
        }
        #expect(comments == expected)
        let entry = try #require(summary.sessions.first { $0.name == session })
        #expect(entry.lost == 3 && entry.outOfOrder == 1 && entry.duplicates == 1 && entry.files == 9)
    }

    /// With --rotate-size, no pcapng file passes the limit: options, the raw-IP interface block
    /// and the closing statistics blocks are all counted before a record goes in.
    @Test func rotationKeepsPcapngFilesUnderTheLimitStatisticsIncluded() throws {
        let limit = 256 << 10
        let output = try TestSupport.makeTemporaryDirectory("pcapng-rotation")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.format = .pcapng
        configuration.rotateSize = limit
        let summary = try Replay(inputs: [TestSupport.load100k.path], configuration: configuration).run()
        #expect(summary.isConserved && summary.packetsWritten == 100_000)
        let files = TestSupport.captureFiles(in: output)
        #expect(files.count > 8 * 10)
        var delivered: UInt64 = 0
        for path in files {
            let file = try PcapNGFile(path: path)
            #expect(file.size <= limit, "\(path) is \(file.size) bytes")
            #expect(file.endsWithStatistics)
            #expect(file.statistics.first?.comment == "lost=0 out_of_order=0 duplicates=0 restarts=0")
            delivered += file.statistics.compactMap(\.delivered).reduce(0, +)
            // ERSPAN frames carry a comment, VXLAN frames none.
            #expect(file.packets.allSatisfy { ($0.comment != nil) == (file.interfaces[0].name?.contains("erspan") ?? false) })
        }
        #expect(delivered == 100_000)
        let counts = try TestSupport.capinfosPacketCounts(files)
        #expect(counts.values.reduce(0, +) == 100_000)
    }

    /// Live capture under back-pressure: the frames dropped for want of a buffer are in the
    /// `isb_ifdrop` of the file that was open, and `isb_ifrecv` = records + drops.
    @Test func queueDropsAreReportedInTheStatisticsBlock() throws {
        let output = try TestSupport.makeTemporaryDirectory("pcapng-queue")
        defer { TestSupport.removeDirectory(output) }
        var storageConfiguration = StorageConfiguration(directory: output)
        storageConfiguration.format = .pcapng
        storageConfiguration.handoff = .drop
        storageConfiguration.bufferSize = StorageConfiguration.minimumBufferSize
        storageConfiguration.maximumBufferMemory = 16 * StorageConfiguration.minimumBufferSize
        storageConfiguration.maximumBuffersInFlight = 2
        let storage = try Storage(configuration: storageConfiguration)
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.format = .pcapng
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])

        let gate = storage.pauseWriters()
        let sent = 4000
        for number in 0..<sent {
            let frame = BackPressureTests.erspanFrame(id: UInt16(number % 2 + 1), sequence: UInt32(number / 2), counter: UInt32(number))
            frame.withUnsafeBytes { bytes in
                pipeline.process(bytes, wireLength: bytes.count, timestampNanoseconds: 1_700_000_000_000_000_000 + UInt64(number))
            }
        }
        gate.open()
        storage.close()
        let summary = pipeline.summary()
        #expect(summary.dropped.queue > 0)
        #expect(summary.isConserved)
        for session in summary.sessions {
            var received: UInt64 = 0
            var dropped: UInt64 = 0
            var records = 0
            for path in TestSupport.captureFiles(in: output + "/" + session.name) {
                let file = try PcapNGFile(path: path)
                #expect(file.endsWithStatistics)
                received += file.statistics.compactMap(\.received).reduce(0, +)
                dropped += file.statistics.compactMap(\.dropped).reduce(0, +)
                records += file.packets.count
            }
            #expect(records == Int(session.packets))
            #expect(dropped == UInt64(session.droppedQueue), "\(session.name)")
            #expect(received == UInt64(session.packets + session.droppedQueue))
        }
    }
}
