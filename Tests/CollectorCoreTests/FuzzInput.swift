// The fuzz input format and the four configurations the fuzz target runs every input with:
// shared by Fuzz/FuzzDecodePath.swift (scripts/fuzz.sh compiles this file into the fuzz target,
// inside a CollectorCore module of its own, where the import below is ignored) and by
// FuzzRegressionTests, which replays the inputs the fuzzer found. scripts/fuzz-seeds.py writes
// the same format.
//
//     input    := selector:u8 frame*
//     frame    := length:u16be wireExtra:u16be meta:u8 bytes[length]
//                 (a last frame shorter than `length` takes what is left)
//     selector := bits 0-1  configuration (`FuzzInput.decoders`, `FuzzInput.configuration`)
//                 bit  6    the rest of the input is a capture file (classic pcap, pcapng, or
//                           either gzip/zstd-compressed), read as replay reads it; its records
//                           (of the link types the decoder reads) are the frames
//                 bit  7    also run the real Pipeline + Storage (the fuzz target)
//     meta     := bits 0-1  link type (0 Ethernet, 1 raw IP, 2 Linux SLL, 3 Linux SLL2)
//                 bits 2-3  NIC-offloaded outer VLAN tag (0 none, 1 VID 999, 2 VID 10 PCP 5,
//                           3 0x88A8 VID 4095)
//                 bits 4-5  capture interface index (RSPAN session names; 2 and 3 are unnamed)
//                 bits 6-7  time step to this frame (0 +1 µs, 1 +0.3 s, 2 +0, 3 -1 s)
//
// The wire length is `length + wireExtra` (never below the captured length, as AF_PACKET and
// the pcap reader guarantee).

import CollectorCore
import MirrorDecoding
import PcapFormat
import PcapStorage

enum FuzzInput {
    /// One frame of an input: where its bytes are in the input, and its capture metadata.
    struct Frame {
        var bytes: Range<Int>
        var wireLength: Int
        var linkType: LinkType
        var offloadedTag: VLANTag?
        var interface: UInt32
        var timestampNanoseconds: UInt64
    }

    /// Selector bit 6: the input after the selector is a capture file.
    static let captureFileBit: UInt8 = 0x40

    static func split(_ input: UnsafeRawBufferPointer) -> (selector: UInt8, frames: [Frame]) {
        guard let selector = input.first else { return (0, []) }
        if selector & captureFileBit != 0 { return (selector, captureFileFrames(input, from: 1)) }
        var frames: [Frame] = []
        var offset = 1
        var time: UInt64 = 1_700_000_000_000_000_001
        while offset + 5 <= input.count {
            let length = Int(input[offset]) << 8 | Int(input[offset + 1])
            let wireExtra = Int(input[offset + 2]) << 8 | Int(input[offset + 3])
            let meta = input[offset + 4]
            offset += 5
            let count = min(length, input.count - offset)
            let bytes = offset..<(offset + count)
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

    /// The records of the (uncompressed) capture file in `input[start...]` as frames, ranges
    /// into `input`; none when it is not a capture file.
    static func captureFileFrames(_ input: UnsafeRawBufferPointer, from start: Int) -> [Frame] {
        guard let read = readCaptureFile(UnsafeRawBufferPointer(rebasing: input[start...])) else { return [] }
        return read.records.compactMap { record in
            guard let linkType = LinkType(pcapLinkType: record.linkType) else { return nil }
            return Frame(
                bytes: (start + record.dataOffset)..<(start + record.dataEnd), wireLength: record.wireLength, linkType: linkType,
                offloadedTag: nil, interface: 0, timestampNanoseconds: record.timestampNanoseconds)
        }
    }

    /// Reads `file` with the reader its magic names, whole (a mapping) or, with `chunk`, as a
    /// stream whose window grows by `chunk` bytes (as CaptureInput feeds it). Record offsets
    /// are positions in `file`. Nil when `file` is not a capture file.
    static func readCaptureFile(
        _ file: UnsafeRawBufferPointer, chunk: Int? = nil
    ) -> (records: [CaptureRecord], corruptBytes: Int, truncatedBytes: Int)? {
        guard file.count >= 4, let kind = CaptureFileKind(magic: file) else { return nil }
        switch kind {
        case .classicPcap:
            guard var reader = try? ClassicPcapReader(header: file) else { return nil }
            return readRecords(&reader, file, chunk: chunk)
        case .pcapng:
            var reader = PcapNGReader()
            return readRecords(&reader, file, chunk: chunk)
        }
    }

    static func readRecords<Reader: CaptureRecordReader>(
        _ reader: inout Reader, _ file: UnsafeRawBufferPointer, chunk: Int?
    ) -> (records: [CaptureRecord], corruptBytes: Int, truncatedBytes: Int) {
        var records: [CaptureRecord] = []
        var start = 0
        var end = chunk.map { min(max($0, PcapFileHeader.length), file.count) } ?? file.count
        while true {
            let final = end == file.count
            let window = UnsafeRawBufferPointer(rebasing: file[start..<end])
            while let record = reader.next(in: window, final: final), records.count < 100_000 {
                var moved = record
                moved.dataOffset += start
                records.append(moved)
            }
            if final || records.count >= 100_000 { break }
            let consumed = reader.offset
            reader.discard(consumed)
            start += consumed
            end = min(end + chunk!, file.count)
        }
        return (records, reader.corruptBytes, reader.truncatedBytes)
    }

    /// The decoder configurations every frame is decoded with.
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

    static let interfaceNames = ["fz0", "fz1"]

    /// ERSPAN types forced per exporter in configuration 2 (devices that break the rules).
    static let forcedTypes: [(IPPrefix, ClassifierOverrides.ForcedType)] = [
        (IPPrefix("198.51.100.7/32")!, .typeI), (IPPrefix("198.51.100.0/25")!, .typeII), (IPPrefix("2001:db8::/32")!, .typeIII),
    ]

    /// Reassembly limits per configuration: the defaults, and tiny caps to reach the limit paths.
    static func reassemblyLimits(_ index: Int) -> FragmentReassembler.Limits {
        var limits = FragmentReassembler.Limits()
        if index == 2 || index == 3 {
            limits.timeoutNanoseconds = 1_000_000_000
            limits.maximumBytes = 4096
            limits.maximumBytesPerExporter = index == 2 ? 2048 : 4096
            limits.maximumDatagrams = 4
        }
        return limits
    }

    /// The pipeline configuration for `selector & 3` (its decoder is `decoders[selector & 3]`
    /// except for the checksum switch, which CollectorConfiguration does not expose).
    static func configuration(_ index: Int, directory: String) -> CollectorConfiguration {
        var configuration = CollectorConfiguration(outputDirectory: directory)
        configuration.bufferSize = StorageConfiguration.minimumBufferSize
        configuration.maximumBufferMemory = 8 * StorageConfiguration.minimumBufferSize
        configuration.reassemblyLimits = reassemblyLimits(index)
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
}
