/// What a pcapng record says about its frame besides the bytes: the mirror transport's metadata,
/// encoded as `epb_flags` and an `opt_comment` (docs/FORMATS.md, "Per-packet metadata"). A plain
/// value of integers, filled per frame and passed by value: nothing here allocates. Classic pcap
/// ignores it.
public struct RecordAnnotations: Sendable, Equatable {
    /// The transport whose fields the comment carries. `.none` (VXLAN, RSPAN): no options at all.
    public enum Transport: UInt8, Sendable {
        case none
        case erspan1
        case erspan2
        case erspan3
        /// GRE transparent Ethernet bridging (0x6558).
        case greTEB
    }

    public var transport: Transport = .none
    /// The frame is an IP packet without link header (ERSPAN III FT = 2): pcapng interface 1,
    /// link type 101.
    public var isRawIP = false
    /// ERSPAN session ID (10 bits).
    public var sessionID: UInt16 = 0
    public var hasSequence = false
    /// GRE sequence number.
    public var sequence: UInt32 = 0
    public var hasKey = false
    /// GRE key.
    public var key: UInt32 = 0
    public var vlan: UInt16 = 0
    public var classOfService: UInt8 = 0
    /// Type II: En. Type III: BSO.
    public var encapsulationOrBSO: UInt8 = 0
    public var truncated = false
    /// Type II Index (20 bits).
    public var index: UInt32 = 0
    /// Type III raw timestamp and its granularity (Gra).
    public var timestamp: UInt32 = 0
    public var granularity: UInt8 = 0
    public var securityGroupTag: UInt16 = 0
    public var hardwareID: UInt8 = 0
    public var frameType: UInt8 = 0
    /// Type III D bit.
    public var egress = false
    public var hasPlatform = false
    /// Type III platform-specific sub-header, raw 64 bits (Platf ID in the top 6).
    public var platform: UInt64 = 0

    @inlinable
    public init() {}

    /// No metadata: a record without options.
    @inlinable
    public static var none: RecordAnnotations { RecordAnnotations() }

    // MARK: epb_flags

    // Bit positions per draft-ietf-opsawg-pcapng, section 4.3.1 "Enhanced Packet Block Flags
    // Word", numbered from the least-significant bit: bits 0-1 inbound/outbound (00 not
    // available, 01 inbound, 10 outbound); bits 16-31 link-layer-dependent errors, of which
    // "Bit 26 = packet too short error, Bit 25 = packet too long error, Bit 24 = CRC error".
    public static let flagInbound: UInt32 = 0b01
    public static let flagOutbound: UInt32 = 0b10
    public static let flagCRCError: UInt32 = 1 << 24
    public static let flagPacketTooLong: UInt32 = 1 << 25
    public static let flagPacketTooShort: UInt32 = 1 << 26

    /// The `epb_flags` word, or 0 for none. Only ERSPAN III has a direction (D) and BSO.
    @inline(__always)
    public var flags: UInt32 {
        guard transport == .erspan3 else { return 0 }
        var flags = egress ? Self.flagOutbound : Self.flagInbound
        switch encapsulationOrBSO & 0x3 {
        case 1: flags |= Self.flagPacketTooShort  // BSO 01: short frame
        case 2: flags |= Self.flagPacketTooLong  // BSO 10: oversized frame
        case 3: flags |= Self.flagCRCError  // BSO 11: bad frame (CRC/alignment)
        default: break
        }
        return flags
    }

    // MARK: opt_comment

    /// Bytes of the comment (0: no comment), computed without writing it.
    @inline(__always)
    public var commentLength: Int {
        var counter = ByteCounter()
        writeComment(to: &counter)
        return counter.count
    }

    /// Writes the comment at `destination` (room for `commentLength` bytes); returns its length.
    @inline(__always)
    @discardableResult
    public func writeComment(to destination: UnsafeMutableRawPointer) -> Int {
        var writer = ByteWriter(base: destination)
        writeComment(to: &writer)
        return writer.count
    }

    /// The longest comment any annotations make (every field at its widest): fields are masked
    /// to their widths, so this bounds the option size a record may need.
    public static let maximumCommentLength: Int = {
        var widest = RecordAnnotations()
        widest.transport = .erspan3
        widest.sessionID = 1000
        widest.hasSequence = true
        widest.sequence = .max
        widest.hasKey = true
        widest.key = .max
        widest.vlan = 4000
        widest.encapsulationOrBSO = 3
        widest.securityGroupTag = 60000
        widest.hardwareID = 63
        widest.frameType = 31
        widest.hasPlatform = true
        widest.platform = .max  // Platf ID 63: two digits
        var typeII = widest
        typeII.transport = .erspan2
        typeII.index = 0xF_FFFF
        return max(widest.commentLength, typeII.commentLength)
    }()

    /// The comment grammar (docs/FORMATS.md): the transport, then `key=value` fields in a fixed
    /// order, separated by one space; decimal unless the value starts with `0x` (lower-case hex,
    /// fixed width).
    @inline(__always)
    func writeComment<Sink: ByteSink>(to sink: inout Sink) {
        switch transport {
        case .none:
            return
        case .erspan1:
            sink.put("erspan=1")
        case .erspan2:
            sink.put("erspan=2 id=")
            sink.putDecimal(UInt64(sessionID & 0x3FF))
        case .erspan3:
            sink.put("erspan=3 id=")
            sink.putDecimal(UInt64(sessionID & 0x3FF))
        case .greTEB:
            sink.put("gre=teb")
        }
        if hasSequence {
            sink.put(" seq=")
            sink.putDecimal(UInt64(sequence))
        }
        if hasKey {
            sink.put(" key=")
            sink.putDecimal(UInt64(key))
        }
        switch transport {
        case .erspan2:
            putCommonERSPANFields(to: &sink)
            sink.put(" en=")
            sink.putDecimal(UInt64(encapsulationOrBSO & 0x3))
            sink.put(truncated ? " t=1 index=" : " t=0 index=")
            sink.putDecimal(UInt64(index & 0xF_FFFF))
        case .erspan3:
            putCommonERSPANFields(to: &sink)
            sink.put(" bso=")
            sink.putDecimal(UInt64(encapsulationOrBSO & 0x3))
            sink.put(truncated ? " t=1 sgt=" : " t=0 sgt=")
            sink.putDecimal(UInt64(securityGroupTag))
            sink.put(" hw=")
            sink.putDecimal(UInt64(hardwareID & 0x3F))
            sink.put(egress ? " dir=egress ft=" : " dir=ingress ft=")
            sink.putDecimal(UInt64(frameType & 0x1F))
            sink.put(" gra=")
            sink.putDecimal(UInt64(granularity & 0x3))
            sink.put(" ts=0x")
            sink.putHex(UInt64(timestamp), digits: 8)
            if hasPlatform {
                sink.put(" platf=")
                sink.putDecimal(platform >> 58)
                sink.put(":0x")
                sink.putHex(platform, digits: 16)
            }
        default:
            break
        }
    }

    @inline(__always)
    private func putCommonERSPANFields<Sink: ByteSink>(to sink: inout Sink) {
        sink.put(" vlan=")
        sink.putDecimal(UInt64(vlan & 0xFFF))
        sink.put(" cos=")
        sink.putDecimal(UInt64(classOfService & 0x7))
    }
}

/// GRE sequence accounting over one file, for the comment of its Interface Statistics Block.
public struct SequenceStatistics: Sendable, Equatable {
    public var lost: Int64
    public var outOfOrder: Int64
    public var duplicates: Int64
    public var restarts: Int64

    public init(lost: Int64 = 0, outOfOrder: Int64 = 0, duplicates: Int64 = 0, restarts: Int64 = 0) {
        self.lost = lost
        self.outOfOrder = outOfOrder
        self.duplicates = duplicates
        self.restarts = restarts
    }

    public static func - (a: SequenceStatistics, b: SequenceStatistics) -> SequenceStatistics {
        SequenceStatistics(
            lost: a.lost &- b.lost, outOfOrder: a.outOfOrder &- b.outOfOrder, duplicates: a.duplicates &- b.duplicates,
            restarts: a.restarts &- b.restarts)
    }

    /// `lost=N out_of_order=N duplicates=N restarts=N` (decimal, `lost` may be negative).
    func writeComment<Sink: ByteSink>(to sink: inout Sink) {
        sink.put("lost=")
        sink.putSigned(lost)
        sink.put(" out_of_order=")
        sink.putSigned(outOfOrder)
        sink.put(" duplicates=")
        sink.putSigned(duplicates)
        sink.put(" restarts=")
        sink.putSigned(restarts)
    }

    public var commentLength: Int {
        var counter = ByteCounter()
        writeComment(to: &counter)
        return counter.count
    }

    public static let maximumCommentLength: Int = {
        SequenceStatistics(lost: .min, outOfOrder: .min, duplicates: .min, restarts: .min).commentLength
    }()
}

// MARK: - Allocation-free text formatting

/// Where formatted text goes: counted (to size a record before writing it) or stored. The same
/// formatting code drives both, so the computed length is always the written length. No
/// String, no interpolation: integers are formatted by hand, digit by digit.
public protocol ByteSink {
    mutating func put(byte: UInt8)
    mutating func put(_ text: StaticString)
    /// `value` in decimal, without leading zeros.
    mutating func putDecimal(_ value: UInt64)
    /// The low `digits` nibbles of `value` in lower-case hex, zero-padded to exactly `digits`.
    mutating func putHex(_ value: UInt64, digits: Int)
}

extension ByteSink {
    /// `value` in decimal with a leading `-` when negative (Int64.min included).
    @inline(__always)
    public mutating func putSigned(_ value: Int64) {
        if value < 0 { put(byte: 0x2D) }
        putDecimal(value.magnitude)
    }
}

/// Decimal digits of `value` (1 for 0), by comparison: no division.
@inline(__always)
public func decimalDigitCount(_ value: UInt64) -> Int {
    var count = 1
    var threshold: UInt64 = 10
    while count < 20, value >= threshold {
        count += 1
        threshold &*= 10
    }
    return count
}

/// Counts bytes, stores nothing.
public struct ByteCounter: ByteSink {
    public private(set) var count = 0

    public init() {}

    @inline(__always) public mutating func put(byte: UInt8) { count += 1 }
    @inline(__always) public mutating func put(_ text: StaticString) { count += text.utf8CodeUnitCount }
    @inline(__always) public mutating func putDecimal(_ value: UInt64) { count += decimalDigitCount(value) }
    @inline(__always) public mutating func putHex(_ value: UInt64, digits: Int) { count += digits }
}

/// Stores bytes at a raw destination the caller sized (with a `ByteCounter` pass).
public struct ByteWriter: ByteSink {
    public let base: UnsafeMutableRawPointer
    public private(set) var count = 0

    public init(base: UnsafeMutableRawPointer) { self.base = base }

    @inline(__always)
    public mutating func put(byte: UInt8) {
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    public mutating func put(_ text: StaticString) {
        (base + count).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
        count += text.utf8CodeUnitCount
    }

    /// Digits are stored from the last one back (division by the constant 10 compiles to a
    /// multiplication).
    @inline(__always)
    public mutating func putDecimal(_ value: UInt64) {
        let digits = decimalDigitCount(value)
        var rest = value
        var position = count + digits - 1
        while position >= count {
            let (quotient, digit) = rest.quotientAndRemainder(dividingBy: 10)
            base.storeBytes(of: 0x30 &+ UInt8(truncatingIfNeeded: digit), toByteOffset: position, as: UInt8.self)
            rest = quotient
            position -= 1
        }
        count += digits
    }

    @inline(__always)
    public mutating func putHex(_ value: UInt64, digits: Int) {
        var shift = (digits - 1) * 4
        while shift >= 0 {
            let nibble = UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xF
            put(byte: nibble < 10 ? 0x30 &+ nibble : 0x57 &+ nibble)  // 0x57 + 10 = "a"
            shift -= 4
        }
    }
}
