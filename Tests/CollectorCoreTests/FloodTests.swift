import CollectorCore
import Foundation
import MirrorDecoding
import Testing

@testable import PcapStorage

/// Hostile floods: many exporters, many session ids. State and memory stay within the caps,
/// every frame is accounted for.
@Suite struct FloodTests {
    /// ERSPAN II from 10.x exporters built from `number` (outer source varies, session id too).
    static func frame(exporter number: Int, id: UInt16, sequence: UInt32) -> [UInt8] {
        var frame = BackPressureTests.erspanFrame(id: id, sequence: sequence, counter: UInt32(number), innerPayload: 64)
        // Outer source 198.18.x.y (benchmarking range): bytes 26-29 of the frame.
        frame[26] = 198
        frame[27] = 18
        frame[28] = UInt8(truncatingIfNeeded: number >> 8)
        frame[29] = UInt8(truncatingIfNeeded: number)
        return frame
    }

    @Test func aFloodOfSessionsEvictsWithinTheCapAndBoundedMemory() throws {
        let output = try TestSupport.makeTemporaryDirectory("flood")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.maximumSessions = 1000
        configuration.bufferSize = StorageConfiguration.minimumBufferSize
        configuration.maximumBufferMemory = 64 * StorageConfiguration.minimumBufferSize
        var storageConfiguration = StorageConfiguration(directory: output)
        storageConfiguration.handoff = .drop  // live semantics: no waiting for the disk
        storageConfiguration.bufferSize = configuration.bufferSize
        storageConfiguration.maximumBufferMemory = configuration.maximumBufferMemory
        let storage = try Storage(configuration: storageConfiguration)
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        let sent = 5000
        var highestBufferMemory = 0
        for number in 0..<sent {
            // 5000 distinct (exporter, id) keys: 250 exporters x 20 ids.
            Self.frame(exporter: number % 250, id: UInt16(number / 250 % 1000), sequence: UInt32(number)).withUnsafeBytes {
                pipeline.process($0, wireLength: $0.count, timestampNanoseconds: 1_700_000_000_000_000_000 + UInt64(number))
            }
            if number % 100 == 0 { highestBufferMemory = max(highestBufferMemory, storage.bufferMemory) }
        }
        storage.close()
        let summary = pipeline.summary()
        // Every key got a session; the least recently active ones were evicted to make room
        // (a 32nd of the table at a time), none refused.
        #expect(summary.sessions.count == sent)
        let evicted = try #require(summary.sessionTable?.evicted)
        #expect(evicted >= Int64(sent - 1000) && evicted <= Int64(sent - 1000 + 1000 / 32))
        #expect((summary.discardReasons["unknown_session.session_limit"] ?? 0) == 0)
        #expect(summary.isConserved)
        #expect(summary.packetsReceived == Int64(sent))
        #expect(highestBufferMemory <= configuration.maximumBufferMemory)
        #expect(storage.bufferMemory <= configuration.maximumBufferMemory)
        #expect(summary.packetsWritten + summary.dropped.queue == Int64(sent))
    }

    /// Issue 10 item 15: spoofed exporters used to fill the session table and lock out real
    /// exporters, configured or not, until a restart.
    @Test func aSpoofedFloodLocksOutNeitherConfiguredNorRealExporters() throws {
        let output = try TestSupport.makeTemporaryDirectory("spoofed")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.maximumSessions = 8
        var rule = SessionRule(name: "core-switch")
        rule.exporter = IPPrefix("198.51.100.7/32")
        configuration.sessionRules = [rule]
        let storage = try Storage(configuration: configuration.storageConfiguration(handoff: .wait))
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        func send(_ frame: [UInt8], _ number: Int) {
            frame.withUnsafeBytes {
                pipeline.process($0, wireLength: $0.count, timestampNanoseconds: 1_700_000_000_000_000_000 + UInt64(number))
            }
        }
        func from(_ address: [UInt8], id: UInt16, sequence: UInt32) -> [UInt8] {
            var frame = Self.frame(exporter: 0, id: id, sequence: sequence)
            frame.replaceSubrange(26..<30, with: address)
            return frame
        }
        let spoofed = 1000
        for number in 0..<spoofed { send(Self.frame(exporter: number, id: 1, sequence: UInt32(number)), number) }
        // Then, interleaved with more flood: the configured exporter and a real unknown one.
        for round in 0..<10 {
            send(from([198, 51, 100, 7], id: 3, sequence: UInt32(round)), spoofed + 3 * round)
            send(from([192, 0, 2, 9], id: 4, sequence: UInt32(round)), spoofed + 3 * round + 1)
            send(Self.frame(exporter: spoofed + round, id: 1, sequence: 0), spoofed + 3 * round + 2)
        }
        storage.close()
        let summary = pipeline.summary()
        let packets = Dictionary(summary.sessions.map { ($0.name, $0.packets) }, uniquingKeysWith: +)
        #expect(packets["core-switch"] == 10)
        #expect(packets["192.0.2.9-erspan-4"] == 10)
        #expect(summary.packetsWritten == Int64(spoofed + 30))
        #expect((summary.discardReasons["unknown_session.session_limit"] ?? 0) == 0)
        #expect(summary.isConserved)
        #expect(summary.packetsReceived == summary.packetsWritten)
        // Evicted sessions' files are finished and published like any other.
        let files = TestSupport.captureFiles(in: output)
        #expect(files.allSatisfy { !$0.hasSuffix(".part") })
        let counts = try TestSupport.capinfosPacketCounts(files.filter { $0.contains("core-switch") || $0.contains("192.0.2.9") })
        #expect(counts.values.reduce(0, +) == 20)
    }

    /// When only configured sessions hold the table, new sessions are refused, and the summary
    /// says from which exporter prefixes.
    @Test func sessionLimitRefusalsAreCountedPerExporterPrefix() throws {
        let output = try TestSupport.makeTemporaryDirectory("prefixes")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.maximumSessions = 4
        var rule = SessionRule(name: "benchmark")
        rule.exporter = IPPrefix("198.18.0.0/15")
        configuration.sessionRules = [rule]
        let storage = try Storage(configuration: configuration.storageConfiguration(handoff: .wait))
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        // 198.18.0.0-255 and 198.18.1.0-99: 356 configured sessions for 4 slots.
        for number in 0..<356 {
            Self.frame(exporter: number, id: 1, sequence: 0).withUnsafeBytes {
                pipeline.process($0, wireLength: $0.count, timestampNanoseconds: 1_700_000_000_000_000_000 + UInt64(number))
            }
        }
        storage.close()
        let summary = pipeline.summary()
        #expect(summary.sessions.count == 4)
        #expect(summary.discardReasons["unknown_session.session_limit"] == 352)
        #expect(summary.sessionTable == SessionTableSummary(evicted: 0, sessionLimitByPrefix: ["198.18.0.0/24": 252, "198.18.1.0/24": 100]))
        #expect(summary.table().contains("session_limit by exporter prefix: 198.18.0.0/24 252, 198.18.1.0/24 100"))
        #expect(summary.jsonText().contains("\"session_limit_by_prefix\""))
        #expect(summary.isConserved)
    }

    @Test func unknownExportersAreRefusedByTheAllowList() throws {
        let output = try TestSupport.makeTemporaryDirectory("exporters")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.allowedExporters = [IPPrefix("198.18.0.0/30")!]
        let storage = try Storage(configuration: StorageConfiguration(directory: output))
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        for number in 0..<50_000 {
            Self.frame(exporter: number, id: 1, sequence: UInt32(number)).withUnsafeBytes {
                pipeline.process($0, wireLength: $0.count, timestampNanoseconds: 1_700_000_000_000_000_000 + UInt64(number))
            }
        }
        storage.close()
        let summary = pipeline.summary()
        #expect(summary.sessions.count == 4)  // 198.18.0.0-3
        #expect(summary.discarded.unauthorizedExporter == 50_000 - summary.packetsWritten)
        #expect(summary.isConserved)
    }
}
