/// UDP (RFC 768) and VXLAN (RFC 7348) headers. VXLAN is recognised by the destination port only:
/// mirror traffic is sent *to* the collector, and the source port is per-flow entropy.
enum UDPHeader {
    static let length = 8

    /// Returns the destination port; `end` bounds the datagram inside the captured bytes.
    static func destinationPort(_ bytes: UnsafeRawBufferPointer, at offset: Int, end: Int) throws(DiscardReason) -> UInt16 {
        guard end >= offset + length else { throw .udpTruncated }
        return bytes.bigEndian16(at: offset + 2)
    }
}

/// VXLAN (RFC 7348) on a VXLAN port (default 4789). Only the I flag is checked: reserved
/// fields "MUST be ignored on receipt", and Linux 6.14 lets users set them, so a frame with
/// 0x04 set here is VXLAN with a reserved bit, not VXLAN-GPE (that lives on its own ports).
struct VXLANHeader {
    static let length = 8
    static let flagVNIValid: UInt8 = 0x08

    var vni: UInt32
    var anomalies: Anomalies

    init(parsing bytes: UnsafeRawBufferPointer, at offset: Int, end: Int) throws(DiscardReason) {
        guard end >= offset + Self.length else { throw .vxlanTruncated }
        let flags = bytes.byte(at: offset)
        guard flags & Self.flagVNIValid != 0 else { throw .vxlanFlags }
        let word0 = bytes.bigEndian32(at: offset)
        let word1 = bytes.bigEndian32(at: offset + 4)
        vni = word1 >> 8
        let reserved = (word0 & 0x00FF_FFFF) | (word1 & 0xFF) | UInt32(flags & ~Self.flagVNIValid) << 24
        anomalies = reserved == 0 ? [] : .vxlanReservedBits
    }
}

/// VXLAN-GPE (draft-ietf-nvo3-vxlan-gpe) on a GPE port (default 4790): flags R R Ver(2) I P B O,
/// then reserved bytes, the next protocol in byte 3, the VNI and a reserved byte.
struct VXLANGPEHeader {
    static let length = 8
    static let flagNextProtocol: UInt8 = 0x04
    /// Ver (must be 0), I, P, B (BUM traffic) and O (OAM): every bit but the two reserved ones.
    static let definedFlags: UInt8 = 0x3F
    static let nextProtocolIPv4: UInt8 = 1
    static let nextProtocolIPv6: UInt8 = 2
    static let nextProtocolEthernet: UInt8 = 3

    var vni: UInt32
    /// The payload is an IPv4/IPv6 packet without link header (next protocol 1 or 2).
    var isRawIP: Bool
    /// The IP version the next protocol announces for a raw-IP payload (4 or 6).
    var rawIPVersion: UInt8
    var anomalies: Anomalies

    init(parsing bytes: UnsafeRawBufferPointer, at offset: Int, end: Int) throws(DiscardReason) {
        guard end >= offset + Self.length else { throw .vxlanTruncated }
        let flags = bytes.byte(at: offset)
        // I set and Ver 0: a receiver "MUST drop" a version it does not support.
        guard flags & VXLANHeader.flagVNIValid != 0, flags & 0x30 == 0 else { throw .vxlanFlags }
        let word0 = bytes.bigEndian32(at: offset)
        let word1 = bytes.bigEndian32(at: offset + 4)
        vni = word1 >> 8
        (isRawIP, rawIPVersion) = (false, 0)
        var reserved = (word0 & 0x00FF_FF00) | (word1 & 0xFF) | UInt32(flags & ~Self.definedFlags) << 24
        // P clear: no next protocol (byte 3 is reserved too), the payload is Ethernet as in
        // plain VXLAN (the draft's backward compatibility with RFC 7348 senders).
        if flags & Self.flagNextProtocol == 0 {
            reserved |= word0 & 0xFF
        } else {
            switch UInt8(truncatingIfNeeded: word0) {
            case Self.nextProtocolEthernet: break
            case Self.nextProtocolIPv4: (isRawIP, rawIPVersion) = (true, 4)
            case Self.nextProtocolIPv6: (isRawIP, rawIPVersion) = (true, 6)
            default: throw .vxlanGPEProtocol
            }
        }
        anomalies = reserved == 0 ? [] : .vxlanReservedBits
    }
}
