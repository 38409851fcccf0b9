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

struct VXLANHeader {
    static let length = 8
    static let flagVNIValid: UInt8 = 0x08
    static let flagGPENextProtocol: UInt8 = 0x04
    static let gpeNextProtocolEthernet: UInt8 = 3

    var vni: UInt32
    var anomalies: Anomalies

    init(parsing bytes: UnsafeRawBufferPointer, at offset: Int, end: Int) throws(DiscardReason) {
        guard end >= offset + Self.length else { throw .vxlanTruncated }
        let flags = bytes.byte(at: offset)
        guard flags & Self.flagVNIValid != 0 else { throw .vxlanFlags }
        let word0 = bytes.bigEndian32(at: offset)
        let word1 = bytes.bigEndian32(at: offset + 4)
        vni = word1 >> 8
        if flags & Self.flagGPENextProtocol != 0 {
            // VXLAN-GPE: byte 3 names the payload; only Ethernet is a mirrored frame.
            guard UInt8(truncatingIfNeeded: word0) == Self.gpeNextProtocolEthernet else { throw .vxlanGPEProtocol }
            let reserved = (word0 & 0x00FF_FF00) | (word1 & 0xFF) | UInt32(flags & ~0x0D) << 24
            anomalies = reserved == 0 ? [] : .vxlanReservedBits
        } else {
            let reserved = (word0 & 0x00FF_FFFF) | (word1 & 0xFF) | UInt32(flags & ~Self.flagVNIValid) << 24
            anomalies = reserved == 0 ? [] : .vxlanReservedBits
        }
    }
}
