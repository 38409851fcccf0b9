import Foundation
import PcapFormat
import Testing

/// The capture-file readers on their own: every record of a file read whole (a mapping) equals
/// what the same file gives fed in small windows (a stream); pcapng timestamp conversion in
/// every resolution, with overflow counted rather than trapped; resynchronisation.
@Suite struct CaptureReaderTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    struct Read: Equatable {
        var records: [[UInt64]] = []  // timestamp, wire length, link type, data hash
        var corruptBytes = 0
        var truncatedBytes = 0
    }

    /// Reads `bytes` with a fresh reader, as a mapping (one final window) or as a stream
    /// (windows growing by `chunk` bytes, consumed bytes dropped, as CaptureInput does).
    static func read(_ bytes: [UInt8], chunk: Int? = nil) throws -> Read {
        let kind = bytes.withUnsafeBytes { CaptureFileKind(magic: $0) }
        switch kind {
        case .classicPcap:
            var reader = try bytes.withUnsafeBytes { try ClassicPcapReader(header: $0) }
            return drive(&reader, bytes, chunk: chunk)
        case .pcapng:
            var reader = PcapNGReader()
            return drive(&reader, bytes, chunk: chunk)
        case nil:
            Issue.record("not a capture file")
            return Read()
        }
    }

    static func drive<Reader: CaptureRecordReader>(_ reader: inout Reader, _ bytes: [UInt8], chunk: Int?) -> Read {
        var result = Read()
        func take(_ record: CaptureRecord, _ window: UnsafeRawBufferPointer) {
            var hash: UInt64 = 14_695_981_039_346_656_037
            for byte in window[record.dataOffset..<record.dataEnd] { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
            result.records.append([record.timestampNanoseconds, UInt64(record.wireLength), UInt64(record.linkType), hash])
        }
        guard let chunk else {
            bytes.withUnsafeBytes { window in
                while let record = reader.next(in: window, final: true) { take(record, window) }
            }
            result.corruptBytes = reader.corruptBytes
            result.truncatedBytes = reader.truncatedBytes
            return result
        }
        var start = 0  // stream position of the window's first byte
        var end = min(max(chunk, 24), bytes.count)  // the classic file header is read first
        while true {
            let final = end == bytes.count
            bytes.withUnsafeBytes { all in
                let window = UnsafeRawBufferPointer(rebasing: all[start..<end])
                while let record = reader.next(in: window, final: final) { take(record, window) }
            }
            if final { break }
            let consumed = reader.offset
            reader.discard(consumed)
            start += consumed
            end = min(end + chunk, bytes.count)
        }
        result.corruptBytes = reader.corruptBytes
        result.truncatedBytes = reader.truncatedBytes
        return result
    }

    static func fixture(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: fixtures.appendingPathComponent(name)))
    }

    @Test(arguments: ["mixed_sessions.pcap", "mixed_sessions.pcapng", "inputs_multi_interface.pcapng", "inputs_sll_fragments.pcap"])
    func streamedWindowsGiveWhatTheMappingGives(name: String) throws {
        let bytes = try Self.fixture(name)
        let whole = try Self.read(bytes)
        #expect(!whole.records.isEmpty && whole.corruptBytes == 0 && whole.truncatedBytes == 0)
        for chunk in [1, 3, 17, 100, 4096] {
            #expect(try Self.read(bytes, chunk: chunk) == whole, "chunk \(chunk)")
        }
    }

    @Test func everyInterfaceOfEverySectionIsRead() throws {
        let read = try Self.read(try Self.fixture("inputs_multi_interface.pcapng"))
        // Ethernet, SLL2, raw IP, USER0 (147), the obsolete Packet Block, then the big-endian
        // section's Enhanced and Simple Packet Blocks.
        #expect(read.records.map { $0[2] } == [1, 276, 101, 147, 1, 1, 1])
        let base: UInt64 = 1_700_000_000_000_000_000
        #expect(
            read.records.map { $0[0] } == [
                base + 123,  // if_tsresol 9
                base + 1_000_000,  // 10^-6, if_tsoffset 1000 s
                base + 1_999_855,  // 2^-20: floor(units * 10^9 / 2^20)
                base + 3_000_000,  // 10^-3
                base + 4_000_000,  // obsolete Packet Block
                base + 5_000_000,  // second section, big-endian, 10^-3
                base + 5_000_000,  // Simple Packet Block: the last timestamp
            ])
    }

    @Test func timestampsConvertWithoutOverflowingAndOverflowIsNil() {
        var interface = PcapNGReader.Interface(linkType: 1, snapshotLength: 0)
        #expect(interface.nanoseconds(units: 1_700_000_000_000_001) == 1_700_000_000_000_001_000)  // 10^-6 default
        #expect(interface.nanoseconds(units: UInt64.max) == nil)  // microseconds near 2^64: does not fit
        interface.resolutionExponent = 9
        #expect(interface.nanoseconds(units: UInt64.max) == UInt64.max)
        interface.resolutionExponent = 12
        #expect(interface.nanoseconds(units: 1_500) == 1)
        interface.resolutionExponent = 40
        #expect(interface.nanoseconds(units: UInt64.max) == 0)
        interface.resolutionIsPowerOfTwo = true
        interface.resolutionExponent = 0
        #expect(interface.nanoseconds(units: 3) == 3_000_000_000)
        #expect(interface.nanoseconds(units: UInt64.max) == nil)
        interface.resolutionExponent = 30
        #expect(interface.nanoseconds(units: 1 << 30) == 1_000_000_000)
        #expect(interface.nanoseconds(units: UInt64.max) == 17_179_869_183_999_999_999)
        interface.resolutionExponent = 100
        #expect(interface.nanoseconds(units: UInt64.max) == 0)
        interface.resolutionIsPowerOfTwo = false
        interface.resolutionExponent = 9
        interface.offsetSeconds = -10
        #expect(interface.nanoseconds(units: 5_000_000_000) == nil)  // before the epoch
        interface.offsetSeconds = Int64.max
        #expect(interface.nanoseconds(units: 1) == nil)
        interface.offsetSeconds = 10
        #expect(interface.nanoseconds(units: 1) == 10_000_000_001)
    }

    /// Item 5 and 7 of issue 10, at the reader: a record header claiming 2^31 bytes, garbage
    /// between records, a block with a bad length, an interface ID out of range, a timestamp
    /// past 2^64 ns: the bytes are counted, the records around them read, mapped or streamed.
    @Test func corruptFramingIsSkippedAndCounted() throws {
        var classic = try Self.fixture("mixed_sessions.pcap")
        let clean = try Self.read(classic)
        let recordStart = Self.classicRecordOffsets(classic)[5]
        let bogus: [UInt8] = [0x00, 0xF1, 0x53, 0x65, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0x80] + Array(repeating: 0xEE, count: 40)
        classic.insert(contentsOf: bogus, at: recordStart)
        for chunk in [nil, 7, 64] {
            let read = try Self.read(classic, chunk: chunk)
            #expect(read.records == clean.records, "chunk \(String(describing: chunk))")
            #expect(read.corruptBytes == bogus.count)
        }

        let ng = try Self.fixture("mixed_sessions.pcapng")
        let cleanNG = try Self.read(ng)
        let blocks = Self.pcapngBlocks(ng)
        let epbs = blocks.filter { $0.type == 6 }
        // A bad total length: the block is lost (its bytes counted), the rest is read.
        var badLength = ng
        badLength.replaceSubrange((epbs[5].offset + 4)..<(epbs[5].offset + 8), with: [0xF0, 0xFF, 0xFF, 0x7F])
        // An interface ID out of range: that block alone.
        var badInterface = ng
        badInterface[epbs[5].offset + 8] = 9
        // Garbage between two blocks.
        var garbage = ng
        garbage.insert(contentsOf: Array(repeating: 0xAB, count: 64), at: epbs[5].offset)
        for chunk in [nil, 5, 128] {
            for damaged in [badLength, badInterface] {
                let read = try Self.read(damaged, chunk: chunk)
                var expected = cleanNG.records
                expected.remove(at: 5)
                #expect(read.records == expected)
                #expect(read.corruptBytes == epbs[5].length)
            }
            let read = try Self.read(garbage, chunk: chunk)
            #expect(read.records == cleanNG.records && read.corruptBytes == 64)
        }
    }

    /// A cut last record is truncation, not corruption; a cut in the middle followed by
    /// plausible records is corruption.
    @Test func aCutFileIsTruncationNotCorruption() throws {
        let classic = try Self.fixture("mixed_sessions.pcap")
        let clean = try Self.read(classic)
        let cut = Array(classic.dropLast(10))
        for chunk in [nil, 9] {
            let read = try Self.read(cut, chunk: chunk)
            #expect(read.records == Array(clean.records.dropLast()))
            #expect(read.corruptBytes == 0 && read.truncatedBytes > 0)
        }
        let ng = try Self.fixture("mixed_sessions.pcapng")
        let read = try Self.read(Array(ng.dropLast(10)))
        #expect(read.corruptBytes == 0 && read.truncatedBytes > 0)
    }

    static func classicRecordOffsets(_ bytes: [UInt8]) -> [Int] {
        var offsets: [Int] = []
        var offset = 24
        while offset + 16 <= bytes.count {
            offsets.append(offset)
            let captured = bytes.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)) }
            offset += 16 + captured
        }
        return offsets
    }

    /// The blocks of a little-endian pcapng file.
    static func pcapngBlocks(_ bytes: [UInt8]) -> [(offset: Int, type: UInt32, length: Int)] {
        var blocks: [(offset: Int, type: UInt32, length: Int)] = []
        var offset = 0
        while offset + 12 <= bytes.count {
            let (type, length) = bytes.withUnsafeBytes {
                ($0.loadUnaligned(fromByteOffset: offset, as: UInt32.self), Int($0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)))
            }
            blocks.append((offset, type, length))
            offset += length
        }
        return blocks
    }
}
