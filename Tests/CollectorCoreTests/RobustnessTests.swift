import CaptureSystem
import Foundation
import MirrorDecoding
import PcapFormat
import Testing

/// Every prefix of every fixture record goes through the decoder: no crash, no read outside
/// the bytes (debug builds assert every read), and a decoded frame always lies inside them.
@Suite struct TruncationSweepTests {
    @Test func everyPrefixOfEveryFixture() throws {
        // Every classic-pcap fixture input, each decoded as its own link type (Ethernet, Linux
        // cooked, raw IP); the compressed and pcapng inputs hold the same kinds of records.
        let files = try TestSupport.fixtureInputs().filter { TestSupport.classicPcapLinkType($0) != nil }
        #expect(files.count > 40)
        var configuration = MirrorDecoder.Configuration()
        configuration.rspanVLANs = VLANSet([999])
        configuration.vxlanPorts = VXLANPorts([4789, 8472])
        let decoder = MirrorDecoder(configuration: configuration)
        var prefixes = 0
        for file in files {
            let pcap = try TestSupport.readPcap(TestSupport.fixtures.appendingPathComponent(file).path)
            let linkType = try #require(LinkType(pcapLinkType: pcap.linkType), "\(file): link type \(pcap.linkType)")
            for record in pcap.records {
                for length in 0...record.data.count {
                    prefixes += 1
                    record.data.withUnsafeBytes { all in
                        let prefix = UnsafeRawBufferPointer(rebasing: all[0..<length])
                        for wire in [length, record.wireLength] {
                            if case .mirror(let frame) = decoder.decode(prefix, wireLength: wire, linkType: linkType) {
                                #expect(frame.innerOffset + frame.innerCapturedLength + frame.removedLength <= length)
                                #expect(frame.innerCapturedLength >= 14)
                            }
                        }
                    }
                }
            }
        }
        #expect(prefixes > 10_000)
    }
}
