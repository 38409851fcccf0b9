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

    /// The fuzz input format (keep in step with Fuzz/FuzzDecodePath.swift):
    ///
    ///     input    := selector:u8 frame*
    ///     frame    := length:u16be wireExtra:u16be meta:u8 bytes[length]
    ///
    /// meta bits 0-1 link type, 2-3 offloaded tag, 4-5 interface, 6-7 time step.
    struct Frame {
        var bytes: [UInt8]
        var wireLength: Int
        var linkType: LinkType
        var offloadedTag: VLANTag?
        var interface: UInt32
        var timestampNanoseconds: UInt64
    }

    static func split(_ input: [UInt8]) -> (selector: UInt8, frames: [Frame]) {
        guard let selector = input.first else { return (0, []) }
        var frames: [Frame] = []
        var offset = 1
        var time: UInt64 = 1_700_000_000_000_000_001
        while offset + 5 <= input.count {
            let length = Int(input[offset]) << 8 | Int(input[offset + 1])
            let wireExtra = Int(input[offset + 2]) << 8 | Int(input[offset + 3])
            let meta = input[offset + 4]
            offset += 5
            let count = min(length, input.count - offset)
            let bytes = Array(input[offset..<(offset + count)])
            offset += count
            let linkType: LinkType = [.ethernet, .rawIP, .linuxCooked, .linuxCookedV2][Int(meta & 3)]
            let tag: VLANTag? =
                switch meta >> 2 & 3 {
                case 1: VLANTag(controlInformation: 999)
                case 2: VLANTag(controlInformation: 5 << 13 | 10)
                case 3: VLANTag(protocolID: 0x88A8, controlInformation: 0x0FFF)
                default: nil
                }
            switch meta >> 6 {
            case 0: time &+= 1_000
            case 1: time &+= 300_000_000
            case 3: time &-= 1_000_000_000
            default: break
            }
            frames.append(
                Frame(
                    bytes: bytes, wireLength: count + wireExtra, linkType: linkType, offloadedTag: tag,
                    interface: UInt32(meta >> 4 & 3), timestampNanoseconds: time))
        }
        return (selector, frames)
    }

    /// ERSPAN types forced per exporter in configuration 2 (devices that break the rules).
    static let forcedTypes: [(IPPrefix, ClassifierOverrides.ForcedType)] = [
        (IPPrefix("198.51.100.7/32")!, .typeI), (IPPrefix("198.51.100.0/25")!, .typeII), (IPPrefix("2001:db8::/32")!, .typeIII),
    ]

    /// The decoder configurations of the fuzz target.
    static let decoders: [MirrorDecoder] = [
        MirrorDecoder(),
        MirrorDecoder(configuration: .init(rspanVLANs: VLANSet([999, 10]), vxlanPorts: VXLANPorts([4789, 8472]))),
        {
            var configuration = MirrorDecoder.Configuration(
                rspanVLANs: VLANSet([0, 1, 4094, 4095]),
                vxlanPorts: VXLANPorts([0, 1, 4789, 8472, 65535, 6081, 4790, 53, 2000, 1000, 47, 17, 9, 10, 11, 12]),
                verifyGREChecksum: false)
            configuration.classifierOverrides = ClassifierOverrides(forcedTypes)
            return MirrorDecoder(configuration: configuration)
        }(),
        MirrorDecoder(configuration: .init(rspanVLANs: VLANSet([999]), vxlanPorts: VXLANPorts([4789]))),
    ]

    /// The pipeline configuration `selector & 3` of the fuzz target.
    static func configuration(_ index: Int, output: String) -> CollectorConfiguration {
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.bufferSize = StorageConfiguration.minimumBufferSize
        configuration.maximumBufferMemory = 8 * StorageConfiguration.minimumBufferSize
        if index == 2 || index == 3 {
            configuration.reassemblyLimits.timeoutNanoseconds = 1_000_000_000
            configuration.reassemblyLimits.maximumBytes = 4096
            configuration.reassemblyLimits.maximumBytesPerExporter = index == 2 ? 2048 : 4096
            configuration.reassemblyLimits.maximumDatagrams = 4
        }
        switch index {
        case 1:
            configuration.rspanVLANs = [999, 10]
            configuration.vxlanPorts = [4789, 8472]
            configuration.rotateSize = 4096
            configuration.format = .pcapng
            configuration.switchTimestamps.rules = [(IPPrefix("198.51.100.0/24")!, .relative), (IPPrefix("::/0")!, .unix100us)]
        case 2:
            configuration.rspanVLANs = [0, 1, 4094, 4095]
            configuration.vxlanPorts = [0, 1, 4789, 8472, 65535, 6081, 4790, 53, 2000, 1000, 47, 17, 9, 10, 11, 12]
            configuration.rotateIntervalSeconds = 1
            configuration.keepFiles = 1
            configuration.forcedERSPANTypes = forcedTypes
            configuration.dropDuplicates = true
            configuration.maximumSessions = 4
            configuration.idleTimeoutSeconds = 1
            configuration.switchTimestamps.rules = [
                (IPPrefix("198.51.100.0/25")!, .relative), (IPPrefix("2001:db8::/32")!, .ptp), (IPPrefix("0.0.0.0/0")!, .unix100us),
            ]
        case 3:
            configuration.rspanVLANs = [999]
            configuration.allowedExporters = [IPPrefix("198.51.100.0/24")!, IPPrefix("2001:db8::/32")!]
            configuration.acceptUnknownSessions = false
            var erspan = SessionRule(name: "fz-erspan-1")
            erspan.transport = .erspan
            erspan.id = 1
            erspan.exporter = IPPrefix("198.51.100.0/24")
            var anyVXLAN = SessionRule(name: "fz-vxlan")
            anyVXLAN.transport = .vxlan
            anyVXLAN.rotateSize = 4096
            var rspan = SessionRule(name: "fz-rspan")
            rspan.interface = "fz1"
            var v6 = SessionRule(name: "fz-v6")
            v6.exporter = IPPrefix("2001:db8::/32")
            v6.rotateIntervalSeconds = 1
            configuration.sessionRules = [erspan, anyVXLAN, rspan, v6]
        default:
            break
        }
        return configuration
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
        for (configurationIndex, decoder) in Self.decoders.enumerated() {
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
        let configuration = Self.configuration(Int(selector & 3), output: output)
        var storageConfiguration = StorageConfiguration(directory: output)
        storageConfiguration.format = configuration.format
        storageConfiguration.rotateSize = configuration.rotateSize
        storageConfiguration.rotateIntervalSeconds = configuration.rotateIntervalSeconds
        storageConfiguration.keepFiles = configuration.keepFiles
        storageConfiguration.bufferSize = configuration.bufferSize
        storageConfiguration.maximumBufferMemory = configuration.maximumBufferMemory
        storageConfiguration.maximumBuffersInFlight = 2
        storageConfiguration.idleTimeoutNanoseconds = configuration.idleTimeoutSeconds.map { UInt64($0) * 1_000_000_000 }
        let storage = try Storage(configuration: storageConfiguration)
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["fz0", "fz1"])
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
