import CollectorCore
import Foundation
import PcapStorage
import Testing

/// --drop-duplicates: a repeated copy (same session, GRE sequence number and bytes) is dropped
/// and counted; a different frame that reuses a number is kept; the default keeps everything.
@Suite struct DuplicateTests {
    private func run(dropDuplicates: Bool, _ frames: [[UInt8]]) throws -> Summary {
        let output = try TestSupport.makeTemporaryDirectory("duplicates")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.dropDuplicates = dropDuplicates
        let storage = try Storage(configuration: StorageConfiguration(directory: output))
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        for (index, frame) in frames.enumerated() {
            frame.withUnsafeBytes { pipeline.process($0, wireLength: $0.count, timestampNanoseconds: 1_700_000_000_000_000_000 + UInt64(index)) }
        }
        storage.close()
        return pipeline.summary()
    }

    @Test func repeatedCopiesAreDroppedOnlyWhenAsked() throws {
        let first = BackPressureTests.erspanFrame(id: 1, sequence: 5, counter: 100)
        let reused = BackPressureTests.erspanFrame(id: 1, sequence: 5, counter: 200)  // same number, other bytes
        let next = BackPressureTests.erspanFrame(id: 1, sequence: 6, counter: 300)
        let frames = [first, first, reused, next, first]

        let dropping = try run(dropDuplicates: true, frames)
        #expect(dropping.discarded.duplicate == 2)
        #expect(dropping.discardReasons["duplicate.transport"] == 2)
        #expect(dropping.packetsWritten == 3)
        #expect(dropping.isConserved)
        #expect(dropping.sessions.first?.duplicates == 3, "the sequence counter still sees every repeat")

        let keeping = try run(dropDuplicates: false, frames)
        #expect(keeping.discarded.duplicate == 0 && keeping.packetsWritten == 5 && keeping.isConserved)

        // Also from the scapy fixture S06 (seq 5 twice, identical).
        let output = try TestSupport.makeTemporaryDirectory("s06")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.dropDuplicates = true
        let summary = try Replay(inputs: [TestSupport.fixtures.appendingPathComponent("s06_seq_duplicate.pcap").path], configuration: configuration).run()
        #expect(summary.discarded.duplicate == 1 && summary.isConserved)
    }
}
