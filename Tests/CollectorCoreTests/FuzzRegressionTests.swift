import CollectorCore
import Foundation
import MirrorDecoding
import PcapFormat
import PcapStorage
import Testing

/// Replays every input of Tests/Fixtures/fuzz-regressions/ (crash inputs the fuzzer found, kept
/// as they were, and the hand-made `adv-*.bin` of scripts/fuzz-adversarial.py) the way the fuzz
/// target Fuzz/FuzzDecodePath.swift does: every frame through the decoder configurations, then
/// all frames through a Pipeline writing to a temporary directory. Nothing may crash, decoded
/// frames must lie inside the captured bytes, the accounting law must hold exactly, capinfos must
/// accept every file and the files must hold exactly the packets counted as written. For `adv-*.bin`,
/// `adversarial.json` also says what the default decoder makes of each frame.
@Suite struct FuzzRegressionTests {
    static let directory = TestSupport.fixtures.appendingPathComponent("fuzz-regressions")

    /// A frame of an input (`FuzzInput`), copied out of it.
    struct Frame {
        var bytes: [UInt8]
        var wireLength: Int
        var linkType: LinkType
        var offloadedTag: VLANTag?
        var interface: UInt32
        var timestampNanoseconds: UInt64
    }

    static func split(_ input: [UInt8]) -> (selector: UInt8, frames: [Frame]) {
        input.withUnsafeBytes { bytes in
            let (selector, frames) = FuzzInput.split(bytes)
            return (
                selector,
                frames.map { frame in
                    Frame(
                        bytes: Array(input[frame.bytes]), wireLength: frame.wireLength, linkType: frame.linkType,
                        offloadedTag: frame.offloadedTag, interface: frame.interface, timestampNanoseconds: frame.timestampNanoseconds)
                })
        }
    }

    static var inputs: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasSuffix(".json") && !$0.hasSuffix(".md") && !$0.hasPrefix(".") }.sorted()
    }

    @Test func theDirectoryHoldsInputs() {
        #expect(Self.inputs.count >= 8, "Tests/Fixtures/fuzz-regressions/ lost its inputs")
    }

    @Test(arguments: FuzzRegressionTests.inputs)
    func decodersStayInsideTheFrame(_ name: String) throws {
        let input = try [UInt8](Data(contentsOf: Self.directory.appendingPathComponent(name)))
        let (_, frames) = Self.split(input)
        let expected = try Self.expectations()[name]
        if let expected { #expect(expected.count == frames.count, "\(name): adversarial.json lists \(expected.count) frames") }
        for (configurationIndex, decoder) in FuzzInput.decoders.enumerated() {
            for (index, frame) in frames.enumerated() {
                let result = frame.bytes.withUnsafeBytes { bytes in
                    decoder.decode(bytes, wireLength: frame.wireLength, linkType: frame.linkType, offloadedTag: frame.offloadedTag)
                }
                let outcome: String
                switch result {
                case .discard(let reason):
                    outcome = reason.name
                    #expect(reason.bucket == .malformed || reason.bucket == .notMirror, "\(name) frame \(index): \(reason.name)")
                case .mirror(let decoded):
                    outcome = "mirror"
                    let span = decoded.innerCapturedLength + decoded.removedLength
                    #expect(decoded.innerOffset >= 0 && decoded.innerOffset + span <= frame.bytes.count, "\(name) frame \(index) outside")
                    #expect(decoded.innerCapturedLength >= 14, "\(name) frame \(index): \(decoded.innerCapturedLength) bytes")
                    #expect(decoded.innerWireLength >= decoded.innerCapturedLength, "\(name) frame \(index): wire < captured")
                    #expect(decoded.removedOffset >= 0 && decoded.removedOffset + decoded.removedLength <= span)
                }
                if configurationIndex == 0, let expected, index < expected.count {
                    #expect(outcome == expected[index], "\(name) frame \(index): \(outcome), expected \(expected[index])")
                }
            }
        }
    }

    @Test(arguments: FuzzRegressionTests.inputs)
    func pipelineKeepsTheLaw(_ name: String) throws {
        let input = try [UInt8](Data(contentsOf: Self.directory.appendingPathComponent(name)))
        let (selector, frames) = Self.split(input)
        let output = try TestSupport.makeTemporaryDirectory("fuzz-regression")
        defer { TestSupport.removeDirectory(output) }
        let configuration = FuzzInput.configuration(Int(selector & 3), directory: output)
        var storageConfiguration = configuration.storageConfiguration(handoff: .wait)
        storageConfiguration.maximumBuffersInFlight = 2
        let storage = try Storage(configuration: storageConfiguration)
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: FuzzInput.interfaceNames)
        for frame in frames {
            frame.bytes.withUnsafeBytes { bytes in
                pipeline.process(
                    bytes, wireLength: frame.wireLength, timestampNanoseconds: frame.timestampNanoseconds, linkType: frame.linkType,
                    offloadedTag: frame.offloadedTag, interface: frame.interface)
            }
            if frame.timestampNanoseconds % 1_000_000_000 < 300_000_000 {
                storage.tick(wallClockNanoseconds: frame.timestampNanoseconds)
            }
        }
        pipeline.finishReassembly()
        storage.close()
        let summary = pipeline.summary()
        #expect(summary.isConserved, "\(name): \(summary.jsonText())")
        #expect(summary.reassembly.pendingFragments == 0)
        let merged = summary.reassembly.mergedFragments - summary.reassembly.datagrams
        #expect(summary.packetsReceived + merged == Int64(frames.count), "\(name): received \(summary.packetsReceived)")

        let files = TestSupport.captureFiles(in: output)
        #expect(files.allSatisfy { !$0.hasSuffix(".part") }, "\(name): unfinished files \(files)")
        // capinfos (Wireshark's reader) accepts every file; they hold what was counted as
        // written unless keep-files retention deleted some (configuration 2).
        let counts = try TestSupport.capinfosPacketCounts(files)
        if configuration.keepFiles == nil {
            let records = counts.values.reduce(0, +)
            #expect(Int64(records) == summary.packetsWritten, "\(name): files hold \(records), written \(summary.packetsWritten)")
        }
    }

    /// Per-frame outcomes of the default decoder for the hand-made inputs.
    static func expectations() throws -> [String: [String]] {
        let url = directory.appendingPathComponent("adversarial.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return [:] }
        return try JSONDecoder().decode([String: [String]].self, from: Data(contentsOf: url))
    }
}
