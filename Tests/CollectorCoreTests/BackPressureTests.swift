import CollectorCore
import Foundation
import MirrorDecoding
import Testing

@testable import PcapStorage

/// Live capture never waits on the disk: with the writers stalled and the queue full, frames are
/// dropped and counted as `dropped.queue`, exactly, and the accounting law still holds.
@Suite struct BackPressureTests {
    /// An ERSPAN II frame (198.51.100.1, session `id`, GRE sequence `sequence`) whose inner
    /// frame carries `counter` in its first payload bytes.
    static func erspanFrame(id: UInt16, sequence: UInt32, counter: UInt32, innerPayload: Int = 900) -> [UInt8] {
        var inner: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xB5]  // local experimental EtherType
        inner += withUnsafeBytes(of: counter.bigEndian) { Array($0) }
        inner += [UInt8](repeating: 0x5A, count: innerPayload)
        let gre: [UInt8] = [0x10, 0x00, 0x88, 0xBE] + withUnsafeBytes(of: sequence.bigEndian) { Array($0) }
        let erspan: [UInt8] = [0x10, 0x00, UInt8(id >> 8 & 0x03), UInt8(id & 0xFF), 0, 0, 0, 0]
        let total = 20 + gre.count + erspan.count + inner.count
        var frame: [UInt8] = [2, 0, 0, 0, 0, 0xBB, 2, 0, 0, 0, 0, 0xAA, 0x08, 0x00]
        frame += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 47, 0, 0, 198, 51, 100, 1, 198, 51, 100, 2]
        return frame + gre + erspan + inner
    }

    @Test func stalledWritersMakeQueueDropsAndTheLawHolds() throws {
        let output = try TestSupport.makeTemporaryDirectory("queue")
        defer { TestSupport.removeDirectory(output) }
        var storageConfiguration = StorageConfiguration(directory: output)
        storageConfiguration.handoff = .drop
        storageConfiguration.bufferSize = StorageConfiguration.minimumBufferSize
        storageConfiguration.maximumBufferMemory = 16 * StorageConfiguration.minimumBufferSize
        storageConfiguration.maximumBuffersInFlight = 2
        let storage = try Storage(configuration: storageConfiguration)
        let pipeline = Pipeline(configuration: CollectorConfiguration(outputDirectory: output), storage: storage, interfaceNames: ["test"])

        let gate = storage.pauseWriters()
        let sent = 4000
        for number in 0..<sent {
            let id = UInt16(number % 2 + 1)
            let frame = Self.erspanFrame(id: id, sequence: UInt32(number / 2), counter: UInt32(number / 2))
            frame.withUnsafeBytes { bytes in
                pipeline.process(bytes, wireLength: bytes.count, timestampNanoseconds: 1_700_000_000_000_000_000 + UInt64(number))
            }
        }
        gate.open()
        storage.close()
        let summary = pipeline.summary()

        #expect(summary.packetsReceived == Int64(sent))
        #expect(summary.dropped.queue > 0, "the stalled writers should have filled the queue")
        #expect(summary.isConserved)
        #expect(summary.packetsWritten + summary.dropped.queue == Int64(sent))
        for session in summary.sessions {
            // Loss upstream of us is not ours: sequence numbers were complete on the wire.
            #expect(session.lost == 0 && session.outOfOrder == 0)
            let records = try TestSupport.captureFiles(in: output + "/" + session.name).flatMap { try TestSupport.readPcap($0).records }
            #expect(records.count == Int(session.packets), "\(session.name): files hold exactly what was counted as written")
            let counters = records.map { $0.data[14..<18].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
            #expect(counters == counters.sorted() && Set(counters).count == counters.count, "\(session.name) order")
        }
        let counts = try TestSupport.capinfosPacketCounts(TestSupport.captureFiles(in: output))
        #expect(counts.values.reduce(0, +) == Int(summary.packetsWritten))
    }

    @Test func framesLargerThanABufferAreCutNotOverflowed() throws {
        let output = try TestSupport.makeTemporaryDirectory("large")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.bufferSize = StorageConfiguration.minimumBufferSize
        configuration.rspanVLANs = [999]
        let storage = try Storage(configuration: {
            var storage = StorageConfiguration(directory: output)
            storage.bufferSize = configuration.bufferSize
            return storage
        }())
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        // A 300,000-byte RSPAN frame: larger than a buffer and than the snapshot length.
        var frame: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x03, 0xE7, 0x88, 0xB5]
        frame += [UInt8](repeating: 0xA5, count: 300_000)
        frame.withUnsafeBytes { bytes in
            pipeline.process(bytes, wireLength: bytes.count, timestampNanoseconds: 1_700_000_000_000_000_000)
        }
        storage.close()
        let summary = pipeline.summary()
        let session = try #require(summary.sessions.first)
        #expect(session.packets == 1 && session.truncated == 1)
        let records = try TestSupport.readPcap(try #require(TestSupport.captureFiles(in: output).first)).records
        #expect(records.count == 1)
        #expect(records[0].data.count < StorageConfiguration.minimumBufferSize)
        #expect(records[0].wireLength == frame.count - 4)
        #expect(Array(records[0].data.prefix(14)) == [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xB5])
        _ = try TestSupport.capinfosPacketCounts(TestSupport.captureFiles(in: output))
    }
}
