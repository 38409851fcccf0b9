import PcapFormat
import Testing

/// The pcapng record options (epb_flags, opt_comment), the statistics block and the hand-written
/// text formatting behind them: exact bytes, and the sizing pass agreeing with the writing pass.
@Suite struct RecordOptionsTests {
    // MARK: Helpers (independent of the code under test: Swift's own formatting, Array bytes)

    static func le16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    static func le32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    static func le64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    static func padded(_ bytes: [UInt8]) -> [UInt8] { bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4) }
    static func option(_ code: UInt16, _ value: [UInt8]) -> [UInt8] {
        le16(code) + le16(UInt16(value.count)) + padded(value)
    }

    /// The comment written by the code under test.
    static func comment(_ annotations: RecordAnnotations) -> String {
        let length = annotations.commentLength
        var bytes = [UInt8](repeating: 0xAA, count: length + 8)
        let written = bytes.withUnsafeMutableBytes { annotations.writeComment(to: $0.baseAddress!) }
        #expect(written == length, "sizing and writing disagree")
        #expect(bytes[length...].allSatisfy { $0 == 0xAA }, "wrote past the computed length")
        return String(decoding: bytes[..<length], as: UTF8.self)
    }

    /// The annotations of the PROTOCOLS.md A.5 golden Type III header with its Platf 5 sub-header.
    static var golden: RecordAnnotations {
        var a = RecordAnnotations()
        a.transport = .erspan3
        a.sessionID = 0x155
        a.hasSequence = true
        a.sequence = 12
        a.vlan = 100
        a.classOfService = 5
        a.timestamp = 0x0A0B_0C0D
        a.securityGroupTag = 0x1234
        a.hardwareID = 0x2A
        a.egress = true
        a.granularity = 2
        a.hasPlatform = true
        a.platform = 0x17FF_0042_6553_F100
        return a
    }

    // MARK: Formatting

    struct Text: ByteSink {
        var bytes: [UInt8] = []
        mutating func put(byte: UInt8) { bytes.append(byte) }
        mutating func put(_ text: StaticString) { bytes += UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount) }
        mutating func putDecimal(_ value: UInt64) {
            var writer = [UInt8](repeating: 0, count: 20)
            let count = writer.withUnsafeMutableBytes { raw in
                var sink = ByteWriter(base: raw.baseAddress!)
                sink.putDecimal(value)
                return sink.count
            }
            bytes += writer[..<count]
        }
        mutating func putHex(_ value: UInt64, digits: Int) {
            var writer = [UInt8](repeating: 0, count: 16)
            writer.withUnsafeMutableBytes { raw in
                var sink = ByteWriter(base: raw.baseAddress!)
                sink.putHex(value, digits: digits)
            }
            bytes += writer[..<digits]
        }
    }

    @Test(arguments: [
        0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65535, 4_294_967_295, 4_294_967_296, 999_999_999_999_999_999,
        1_000_000_000_000_000_000, 9_999_999_999_999_999_999, 10_000_000_000_000_000_000, UInt64.max,
    ] as [UInt64])
    func decimalIsWhatSwiftPrints(value: UInt64) {
        var text = Text()
        text.putDecimal(value)
        #expect(String(decoding: text.bytes, as: UTF8.self) == String(value))
        #expect(decimalDigitCount(value) == String(value).count)
        var counter = ByteCounter()
        counter.putDecimal(value)
        #expect(counter.count == String(value).count)
    }

    @Test func signedAndHex() {
        for value: Int64 in [0, -1, 1, -3, .min, .max, -1_000_000] {
            var text = Text()
            text.putSigned(value)
            #expect(String(decoding: text.bytes, as: UTF8.self) == String(value))
        }
        var text = Text()
        text.putHex(0x0A0B_0C0D, digits: 8)
        text.putHex(0x17FF_0042_6553_F100, digits: 16)
        text.putHex(0, digits: 8)
        text.putHex(0xFFFF_FFFF_FFFF_FFFF, digits: 16)
        #expect(String(decoding: text.bytes, as: UTF8.self) == "0a0b0c0d17ff00426553f10000000000ffffffffffffffff")
    }

    /// A 10,000-frame run of sizing + writing into one raw buffer: the per-frame formatting needs
    /// nothing but that buffer (no String, no array): every byte lands inside it.
    @Test func formattingWritesOnlyIntoTheGivenBuffer() {
        let capacity = RecordAnnotations.maximumCommentLength
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity + 64, alignment: 8)
        defer { buffer.deallocate() }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let annotations = Self.random(using: &generator)
            (buffer + capacity).initializeMemory(as: UInt8.self, repeating: 0xAA, count: 64)
            let length = annotations.commentLength
            #expect(length <= capacity)
            #expect(annotations.writeComment(to: buffer) == length)
            #expect(UnsafeRawBufferPointer(start: buffer + capacity, count: 64).allSatisfy { $0 == 0xAA })
        }
    }

    static func random(using generator: inout some RandomNumberGenerator) -> RecordAnnotations {
        var a = RecordAnnotations()
        a.transport = [.none, .erspan1, .erspan2, .erspan3, .greTEB].randomElement(using: &generator)!
        a.isRawIP = Bool.random(using: &generator)
        a.sessionID = .random(in: 0...UInt16.max, using: &generator)
        a.hasSequence = Bool.random(using: &generator)
        a.sequence = .random(in: 0...UInt32.max, using: &generator)
        a.hasKey = Bool.random(using: &generator)
        a.key = .random(in: 0...UInt32.max, using: &generator)
        a.vlan = .random(in: 0...UInt16.max, using: &generator)
        a.classOfService = .random(in: 0...UInt8.max, using: &generator)
        a.encapsulationOrBSO = .random(in: 0...UInt8.max, using: &generator)
        a.truncated = Bool.random(using: &generator)
        a.index = .random(in: 0...UInt32.max, using: &generator)
        a.timestamp = .random(in: 0...UInt32.max, using: &generator)
        a.granularity = .random(in: 0...UInt8.max, using: &generator)
        a.securityGroupTag = .random(in: 0...UInt16.max, using: &generator)
        a.hardwareID = .random(in: 0...UInt8.max, using: &generator)
        a.frameType = .random(in: 0...UInt8.max, using: &generator)
        a.egress = Bool.random(using: &generator)
        a.hasPlatform = Bool.random(using: &generator)
        a.platform = .random(in: 0...UInt64.max, using: &generator)
        return a
    }

    /// The grammar of docs/FORMATS.md, re-implemented with String formatting.
    static func reference(_ a: RecordAnnotations) -> String {
        var text: String
        switch a.transport {
        case .none: return ""
        case .erspan1: text = "erspan=1"
        case .erspan2: text = "erspan=2 id=\(a.sessionID & 0x3FF)"
        case .erspan3: text = "erspan=3 id=\(a.sessionID & 0x3FF)"
        case .greTEB: text = "gre=teb"
        }
        if a.hasSequence { text += " seq=\(a.sequence)" }
        if a.hasKey { text += " key=\(a.key)" }
        func hex(_ value: UInt64, _ digits: Int) -> String {
            let raw = String(value, radix: 16)
            return String(repeating: "0", count: max(0, digits - raw.count)) + raw
        }
        switch a.transport {
        case .erspan2:
            text += " vlan=\(a.vlan & 0xFFF) cos=\(a.classOfService & 7) en=\(a.encapsulationOrBSO & 3) t=\(a.truncated ? 1 : 0)"
            text += " index=\(a.index & 0xF_FFFF)"
        case .erspan3:
            text += " vlan=\(a.vlan & 0xFFF) cos=\(a.classOfService & 7) bso=\(a.encapsulationOrBSO & 3) t=\(a.truncated ? 1 : 0)"
            text += " sgt=\(a.securityGroupTag) hw=\(a.hardwareID & 0x3F) dir=\(a.egress ? "egress" : "ingress")"
            text += " ft=\(a.frameType & 0x1F) gra=\(a.granularity & 3) ts=0x\(hex(UInt64(a.timestamp), 8))"
            if a.hasPlatform { text += " platf=\(a.platform >> 58):0x\(hex(a.platform, 16))" }
        default:
            break
        }
        return text
    }

    @Test func randomAnnotationsFollowTheGrammar() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let annotations = Self.random(using: &generator)
            #expect(Self.comment(annotations) == Self.reference(annotations))
        }
    }

    @Test func goldenTypeIIIComment() {
        #expect(
            Self.comment(Self.golden)
                == "erspan=3 id=341 seq=12 vlan=100 cos=5 bso=0 t=0 sgt=4660 hw=42 dir=egress ft=0 gra=2 ts=0x0a0b0c0d platf=5:0x17ff00426553f100"
        )
        var typeII = RecordAnnotations()
        typeII.transport = .erspan2
        typeII.sessionID = 0x155
        typeII.hasSequence = true
        typeII.sequence = 0x0102_0304
        typeII.vlan = 100
        typeII.classOfService = 5
        typeII.encapsulationOrBSO = 2
        typeII.truncated = true
        typeII.index = 0xABCDE
        #expect(Self.comment(typeII) == "erspan=2 id=341 seq=16909060 vlan=100 cos=5 en=2 t=1 index=703710")
        var teb = RecordAnnotations()
        teb.transport = .greTEB
        teb.hasKey = true
        teb.key = 100
        #expect(Self.comment(teb) == "gre=teb key=100")
        #expect(Self.comment(.none).isEmpty)
    }

    // MARK: epb_flags

    @Test func flagsCarryDirectionAndTheBSOErrorBits() {
        var a = Self.golden
        #expect(a.flags == 0b10)
        a.egress = false
        #expect(a.flags == 0b01)
        a.encapsulationOrBSO = 1
        #expect(a.flags == 0b01 | 1 << 26)  // packet too short
        a.encapsulationOrBSO = 2
        #expect(a.flags == 0b01 | 1 << 25)  // packet too long
        a.encapsulationOrBSO = 3
        #expect(a.flags == 0b01 | 1 << 24)  // CRC error
        a.transport = .erspan2  // En, not BSO; no direction
        #expect(a.flags == 0)
    }

    // MARK: Blocks

    @Test func enhancedPacketBlockWithOptionsHasExactlyTheseBytes() {
        let data: [UInt8] = [1, 2, 3, 4, 5]
        let annotations = Self.golden
        let format = CaptureFileFormat.pcapng
        let options = format.options(for: annotations)
        let text = Array(Self.comment(annotations).utf8)
        #expect(options == RecordOptions(flags: 0b10, commentLength: text.count))
        let length = format.recordLength(capturedLength: data.count, options: options)
        var block = [UInt8](repeating: 0xEE, count: length)
        block.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            let dataOffset = format.writeRecordPrefix(
                to: base, interfaceID: 1, timestampNanoseconds: 0x0000_0001_0000_0002, capturedLength: data.count,
                wireLength: 9, options: options)
            (base + dataOffset).copyMemory(from: data, byteCount: data.count)
            format.writeRecordSuffix(to: base, capturedLength: data.count, options: options, annotations: annotations)
        }
        let body = Self.le32(1) + Self.le32(1) + Self.le32(2) + Self.le32(5) + Self.le32(9) + Self.padded(data)
            + Self.option(2, Self.le32(0b10)) + Self.option(1, text) + [0, 0, 0, 0]
        let total = UInt32(12 + body.count)
        let expected = Self.le32(6) + Self.le32(total) + body + Self.le32(total)
        #expect(block == expected)
        #expect(length == expected.count)
    }

    @Test func recordsWithoutMetadataAreUnchanged() {
        let format = CaptureFileFormat.pcapng
        #expect(format.options(for: .none) == .none)
        var vxlan = RecordAnnotations()
        vxlan.isRawIP = false
        #expect(format.recordLength(capturedLength: 60, options: format.options(for: vxlan)) == 28 + 60 + 4)
        #expect(CaptureFileFormat.pcap.options(for: Self.golden) == .none)
        #expect(CaptureFileFormat.pcap.recordLength(capturedLength: 60, options: .none) == 76)
        // Flags only, comment only.
        #expect(RecordOptions(flags: 1, commentLength: 0).length == 8 + 4)
        #expect(RecordOptions(flags: 0, commentLength: 5).length == 4 + 8 + 4)
        #expect(RecordOptions(flags: 1, commentLength: 8).length == 8 + 4 + 8 + 4)
    }

    /// The sizes docs/COUNTERS.md ("Records too long for a buffer") quotes.
    @Test func documentedSizes() {
        #expect(RecordAnnotations.maximumCommentLength == 154)
        #expect(CaptureFileFormat.pcapng.maximumOptions.length == 172)
        #expect(CaptureFileFormat.pcapng.recordLength(capturedLength: 0, options: CaptureFileFormat.pcapng.maximumOptions) == 204)
        #expect(InterfaceStatisticsBlock.maximumLength == 216)
        #expect(InterfaceStatisticsBlock.length(commentLength: 0) == 88)
    }

    @Test func largestOptionsBoundEveryRecord() {
        var generator = SystemRandomNumberGenerator()
        let maximum = CaptureFileFormat.pcapng.maximumOptions.length
        for _ in 0..<5_000 {
            let annotations = Self.random(using: &generator)
            #expect(RecordOptions(annotations).length <= maximum)
        }
    }

    @Test func interfaceStatisticsBlockHasExactlyTheseBytes() {
        let sequence = SequenceStatistics(lost: -3, outOfOrder: 1, duplicates: 2, restarts: 0)
        let block = InterfaceStatisticsBlock(
            interfaceID: 1, startNanoseconds: 0x0000_0001_0000_0002, endNanoseconds: 0x0000_0003_0000_0004, received: 10,
            dropped: 2, delivered: 8, sequence: sequence)
        let text = Array("lost=-3 out_of_order=1 duplicates=2 restarts=0".utf8)
        #expect(sequence.commentLength == text.count)
        let body = Self.le32(1) + Self.le32(3) + Self.le32(4)
            + Self.option(2, Self.le32(1) + Self.le32(2)) + Self.option(3, Self.le32(3) + Self.le32(4))
            + Self.option(4, Self.le64(10)) + Self.option(5, Self.le64(2)) + Self.option(8, Self.le64(8))
            + Self.option(1, text) + [0, 0, 0, 0]
        let total = UInt32(12 + body.count)
        #expect(block.bytes == Self.le32(5) + Self.le32(total) + body + Self.le32(total))
        #expect(block.length == Int(total))

        var plain = block
        plain.sequence = nil
        #expect(plain.length == InterfaceStatisticsBlock.length(commentLength: 0))
        #expect(plain.bytes.count == 88)
        let widest = SequenceStatistics(lost: .min, outOfOrder: .min, duplicates: .min, restarts: .min)
        #expect(InterfaceStatisticsBlock.maximumLength == InterfaceStatisticsBlock(
            interfaceID: 0, startNanoseconds: 0, endNanoseconds: 0, received: 0, dropped: 0, delivered: 0, sequence: widest
        ).length)
    }
}
