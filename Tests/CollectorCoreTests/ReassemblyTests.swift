import CollectorCore
import Foundation
import MirrorDecoding
import Testing

/// Outer IP fragment reassembly: the scapy fragment fixtures frame by frame, order, IPv6,
/// overlaps, incomplete trains, and the memory caps under a flood of incomplete datagrams.
@Suite struct ReassemblyTests {
    static var names: [String] { (FixtureManifest.shared.fixturesReassembly ?? [:]).keys.sorted() }

    @Test(arguments: ReassemblyTests.names)
    func fragmentFixtureReplaysAsTheGeneratorSays(name: String) throws {
        let fixture = try #require(FixtureManifest.shared.fixturesReassembly?[name])
        let expected = try #require(fixture.reassembly)
        let output = try TestSupport.makeTemporaryDirectory("fragments")
        defer { TestSupport.removeDirectory(output) }
        let input = TestSupport.fixtures.appendingPathComponent(fixture.input).path
        let summary = try Replay(inputs: [input], configuration: CollectorConfiguration(outputDirectory: output)).run()

        // Fragments of a rebuilt datagram count once (the generator counts each; it reports
        // the difference as fragments_merged).
        #expect(summary.packetsReceived == fixture.packetsReceived - expected.fragmentsMerged)
        #expect(summary.packetsWritten == fixture.packetsWritten)
        #expect(summary.isConserved && summary.reassembly.pendingFragments == 0)
        #expect(summary.reassembly.fragments == expected.fragments)
        #expect(summary.reassembly.datagrams == expected.datagramsReassembled)
        #expect(summary.reassembly.overlappingDatagrams == expected.overlappingDatagrams)
        #expect(summary.reassembly.incompleteDatagrams == expected.incompleteDatagrams)
        // The generator's single reason splits into why the fragments were given up.
        let fragmentDiscards = fixture.reasons["malformed.ip_fragment"] ?? 0
        let reason = expected.overlappingDatagrams > 0 ? "malformed.ip_fragment_overlap" : "malformed.ip_fragment_incomplete"
        #expect(summary.discardReasons.filter { $0.value != 0 } == (fragmentDiscards > 0 ? [reason: fragmentDiscards] : [:]))

        for (sessionName, session) in fixture.sessions {
            let written = try TestSupport.captureFiles(in: output + "/" + sessionName).flatMap { try TestSupport.readPcap($0).records }
            let reference = try TestSupport.readPcap(TestSupport.fixtures.appendingPathComponent(session.frames).path).records
            #expect(written == reference, "\(sessionName): reassembled frames differ")
        }
        _ = try TestSupport.capinfosPacketCounts(TestSupport.captureFiles(in: output))
    }

    // MARK: The reassembler on its own

    /// Ethernet + IPv4 fragment of datagram `id` from 198.51.100.`source` (payload at `offset`).
    static func fragment(id: UInt16, source: UInt8 = 1, offset: Int, payload: [UInt8], more: Bool) -> [UInt8] {
        let total = 20 + payload.count
        let flags = UInt16(more ? 0x2000 : 0) | UInt16(offset / 8)
        var frame: [UInt8] = [2, 0, 0, 0, 0, 0xBB, 2, 0, 0, 0, 0, 0xAA, 0x08, 0x00]
        frame += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), UInt8(id >> 8), UInt8(id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF), 64, 47, 0, 0]
        frame += [198, 51, 100, source, 198, 51, 100, 2]
        return frame + payload
    }

    func add(_ reassembler: FragmentReassembler, _ frame: [UInt8], at time: UInt64 = 1) -> FragmentReassembler.Outcome {
        frame.withUnsafeBytes { reassembler.add($0, wireLength: $0.count, timestampNanoseconds: time) }
    }

    @Test func anyOrderRebuildsTheSameDatagram() {
        let payload = (0..<96).map { UInt8($0) }
        let pieces = [(0, true), (32, true), (64, false)].map { Self.fragment(id: 7, offset: $0.0, payload: Array(payload[$0.0..<($0.0 + 32)]), more: $0.1) }
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let reassembler = FragmentReassembler()
            var completed: [UInt8]?
            for index in order {
                if case .completed(let frame, let count) = add(reassembler, pieces[index]) {
                    #expect(count == 3)
                    completed = Array(frame)
                }
            }
            let datagram = try! #require(completed, "order \(order)")
            #expect(Array(datagram[34...]) == payload)
            #expect(datagram[16] == 0 && datagram[17] == 20 + 96)  // total length rewritten
            #expect(datagram[20] & 0x3F == 0 && datagram[21] == 0)  // no MF, offset 0
            #expect(reassembler.statistics.pendingBytes == 0 && reassembler.statistics.datagrams == 1)
        }
    }

    @Test func overlapsDiscardTheDatagramAndItsLaterFragments() {
        let reassembler = FragmentReassembler()
        #expect(isPending(add(reassembler, Self.fragment(id: 9, offset: 0, payload: Array(repeating: 1, count: 32), more: true))))
        // Starts 8 bytes inside the first.
        #expect(isDiscarded(add(reassembler, Self.fragment(id: 9, offset: 24, payload: Array(repeating: 2, count: 32), more: true)), .ipFragmentOverlap))
        let discards = reassembler.takeDiscards()
        #expect(discards.count == 1 && discards[0].0 == .ipFragmentOverlap && discards[0].1 == 1)
        // The rest of that datagram is discarded too, even though it would fit.
        #expect(isDiscarded(add(reassembler, Self.fragment(id: 9, offset: 56, payload: Array(repeating: 3, count: 8), more: false)), .ipFragmentOverlap))
        #expect(reassembler.statistics.overlappingDatagrams == 1 && reassembler.statistics.pendingBytes == 0)
    }

    @Test func incompleteDatagramsTimeOut() {
        let reassembler = FragmentReassembler()
        #expect(isPending(add(reassembler, Self.fragment(id: 1, offset: 0, payload: Array(repeating: 1, count: 16), more: true), at: 1_000)))
        reassembler.expire(asOf: 1_000 + reassembler.limits.timeoutNanoseconds / 2)
        #expect(reassembler.takeDiscards().isEmpty)
        reassembler.expire(asOf: 1_000 + reassembler.limits.timeoutNanoseconds + 1)
        let discards = reassembler.takeDiscards()
        #expect(discards.count == 1 && discards[0].0 == .ipFragmentIncomplete && discards[0].1 == 1)
        #expect(reassembler.statistics.incompleteDatagrams == 1 && reassembler.statistics.pendingFragments == 0)
    }

    /// 100,000 incomplete datagrams from many exporters: memory stays under the caps, the
    /// refused fragments are counted, and nothing is left after the flush.
    @Test func aFloodOfIncompleteDatagramsStaysUnderTheCaps() {
        var limits = FragmentReassembler.Limits()
        limits.maximumBytes = 1 << 20
        limits.maximumBytesPerExporter = 256 << 10
        limits.maximumDatagrams = 4096
        let reassembler = FragmentReassembler(limits: limits)
        var limited = 0
        var highestBytes = 0
        var highestFragments = 0
        for number in 0..<100_000 {
            let frame = Self.fragment(id: UInt16(truncatingIfNeeded: number), source: UInt8(number % 200 + 1), offset: 0,
                payload: Array(repeating: 0x5A, count: 512), more: true)
            if case .discarded(.ipFragmentLimit) = add(reassembler, frame, at: UInt64(number)) { limited += 1 }
            highestBytes = max(highestBytes, reassembler.statistics.pendingBytes)
            highestFragments = max(highestFragments, reassembler.statistics.pendingFragments)
        }
        #expect(highestBytes <= limits.maximumBytes)
        #expect(highestFragments <= limits.maximumDatagrams)
        #expect(limited > 90_000)
        #expect(reassembler.statistics.limitedFragments == limited)
        reassembler.flush()
        let incomplete = reassembler.takeDiscards().reduce(0) { $0 + $1.1 }
        #expect(incomplete + limited == 100_000, "every fragment is accounted for")
        #expect(reassembler.statistics.pendingBytes == 0)
    }

    private func isPending(_ outcome: FragmentReassembler.Outcome) -> Bool {
        if case .pending = outcome { return true }
        return false
    }

    private func isDiscarded(_ outcome: FragmentReassembler.Outcome, _ reason: DiscardReason) -> Bool {
        if case .discarded(let actual) = outcome { return actual == reason }
        return false
    }

    /// 65,528 bytes of payload (7 x 8,192 + 8,184) behind a 24-byte IPv4 header: 65,552 bytes
    /// cannot be one datagram; every fragment is discarded as unusable, none is "rebuilt".
    @Test func datagramsPastSixtyFourKiBAreNotRebuilt() {
        let reassembler = FragmentReassembler()
        var discarded = 0
        for index in 0..<8 {
            let length = index < 7 ? 8192 : 8184
            var frame = Self.fragment(id: 3, offset: index * 8192, payload: Array(repeating: 1, count: length), more: index < 7)
            // IHL 6: a 4-byte option, so header + payload is past 65,535 while the payload alone is not.
            frame[14] = 0x46
            frame.insert(contentsOf: [1, 1, 1, 0], at: 34)
            let total = 24 + length
            frame[16] = UInt8(total >> 8)
            frame[17] = UInt8(total & 0xFF)
            if case .discarded(.ipFragment) = add(reassembler, frame) { discarded += 1 }
        }
        discarded += reassembler.takeDiscards().filter { $0.0 == .ipFragment }.reduce(0) { $0 + $1.1 }
        #expect(discarded == 8)
        #expect(reassembler.statistics.datagrams == 0 && reassembler.statistics.pendingBytes == 0)
    }
}
