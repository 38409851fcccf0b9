/// A GRE header (RFC 2784 with RFC 2890 key and sequence number). Only version 0 carries
/// mirror traffic; the routing (R) bit is dropped as the kernel and Zeek do, because a
/// collector has no use for source routes and parsing them is a classic bounds bug.
struct GREHeader {
    static let protocolERSPANTypeIorII: UInt16 = 0x88BE
    static let protocolERSPANTypeIII: UInt16 = 0x22EB
    static let protocolTransparentEthernet: UInt16 = 0x6558
    static let protocolKeepalive: UInt16 = 0x0000

    static let checksumBit: UInt16 = 0x8000
    static let routingBit: UInt16 = 0x4000
    static let keyBit: UInt16 = 0x2000
    static let sequenceBit: UInt16 = 0x1000
    /// s, Recur and the reserved flag bits (RFC 1701 leftovers).
    static let reservedBits: UInt16 = 0x0FF8

    var flags: UInt16
    var protocolType: UInt16
    var key: UInt32?
    var sequence: UInt32?
    var payloadOffset: Int
    var anomalies: Anomalies

    var hasChecksum: Bool { flags & Self.checksumBit != 0 }
    var hasSequence: Bool { flags & Self.sequenceBit != 0 }

    /// Parses the header at `offset`; `end` bounds the GRE packet inside the captured bytes.
    @inline(__always)
    init(parsing bytes: UnsafeRawBufferPointer, at offset: Int, end: Int) throws(DiscardReason) {
        guard end >= offset + 4 else { throw .greTruncated }
        flags = bytes.bigEndian16(at: offset)
        protocolType = bytes.bigEndian16(at: offset + 2)
        switch protocolType {
        case Self.protocolERSPANTypeIorII, Self.protocolERSPANTypeIII, Self.protocolTransparentEthernet:
            break
        case Self.protocolKeepalive:
            throw .greKeepalive
        default:
            throw .greProtocol  // IP-in-GRE, WCCP, PPTP (version 1), ...
        }
        guard flags & 0x0007 == 0 else { throw .greVersion }
        guard flags & Self.routingBit == 0 else { throw .greRouting }
        anomalies = flags & Self.reservedBits == 0 ? [] : .greReservedBits

        var cursor = offset + 4
        if flags & Self.checksumBit != 0 { cursor += 4 }
        let keyOffset = cursor
        if flags & Self.keyBit != 0 { cursor += 4 }
        let sequenceOffset = cursor
        if flags & Self.sequenceBit != 0 { cursor += 4 }
        guard end >= cursor else { throw .greTruncated }
        key = flags & Self.keyBit != 0 ? bytes.bigEndian32(at: keyOffset) : nil
        sequence = flags & Self.sequenceBit != 0 ? bytes.bigEndian32(at: sequenceOffset) : nil
        payloadOffset = cursor
    }

    /// Verifies the RFC 1071 checksum over the whole GRE packet `[offset, end)`, which must be
    /// complete (not snap-truncated): the one's-complement sum including the checksum is 0xFFFF.
    static func checksumIsValid(_ bytes: UnsafeRawBufferPointer, from offset: Int, to end: Int) -> Bool {
        var sum: UInt64 = 0
        var index = offset
        while index + 8 <= end {
            let word = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            // Add the four 16-bit halves without overflow.
            sum &+= (word >> 48) &+ (word >> 32 & 0xFFFF) &+ (word >> 16 & 0xFFFF) &+ (word & 0xFFFF)
            index += 8
        }
        while index + 2 <= end {
            sum &+= UInt64(bytes.bigEndian16(at: index))
            index += 2
        }
        if index < end { sum &+= UInt64(bytes.byte(at: index)) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return sum == 0xFFFF
    }
}
