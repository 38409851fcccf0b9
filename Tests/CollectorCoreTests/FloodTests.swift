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

    @Test func aFloodOfSessionsStopsAtTheCapWithBoundedMemory() throws {
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
        let sent = 100_000
        var highestBufferMemory = 0
        for number in 0..<sent {
            // 100k distinct (exporter, id) keys: 250 exporters x 400 ids.
            Self.frame(exporter: number % 250, id: UInt16(number / 250 % 1000), sequence: UInt32(number)).withUnsafeBytes {
                pipeline.process($0, wireLength: $0.count, timestampNanoseconds: 1_700_000_000_000_000_000 + UInt64(number))
            }
            if number % 1000 == 0 { highestBufferMemory = max(highestBufferMemory, storage.bufferMemory) }
        }
        storage.close()
        let summary = pipeline.summary()
        #expect(summary.sessions.count == 1000)
        #expect((summary.discardReasons["unknown_session.session_limit"] ?? 0) == Int64(sent - 1000))
        #expect(summary.isConserved)
        #expect(summary.packetsReceived == Int64(sent))
        #expect(highestBufferMemory <= configuration.maximumBufferMemory)
        #expect(storage.bufferMemory <= configuration.maximumBufferMemory)
        // More sessions than buffers: some frames found no buffer (counted, not lost silently).
        #expect(summary.packetsWritten + summary.dropped.queue == 1000)
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
