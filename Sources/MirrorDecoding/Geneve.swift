/// Geneve (RFC 8926) header, after the UDP header on a Geneve port (default 6081). Open vSwitch
/// and OVN mirror to Geneve tunnel ports; cloud appliance load balancers carry their own
/// options. The collector does not interpret options: it skips them, whatever the C bit says
/// (a critical option asks a *tunnel endpoint* to understand it; we only keep the frame).
///
///     byte 0    Ver (2 bits, 0) · Opt Len (6 bits, in 4-byte words)
///     byte 1    O (OAM) · C (critical options) · reserved (6 bits)
///     bytes 2-3 Protocol Type (an EtherType: 0x6558 Ethernet, 0x0800/0x86DD raw IP)
///     bytes 4-6 VNI
///     byte 7    reserved
///     options   Opt Len x 4 bytes
struct GeneveHeader {
    static let length = 8
    static let flagOAM: UInt8 = 0x80
    static let protocolTransparentEthernet: UInt16 = 0x6558
    static let protocolIPv4: UInt16 = 0x0800
    static let protocolIPv6: UInt16 = 0x86DD

    var vni: UInt32
    /// The payload is an IPv4/IPv6 packet without link header (Protocol Type 0x0800/0x86DD).
    var isRawIP: Bool
    /// The IP version the Protocol Type announces for a raw-IP payload (4 or 6).
    var rawIPVersion: UInt8
    /// Offset of the mirrored frame: after the fixed header and the options.
    var payloadOffset: Int
    var anomalies: Anomalies

    init(parsing bytes: UnsafeRawBufferPointer, at offset: Int, end: Int) throws(DiscardReason) {
        guard end >= offset + Self.length else { throw .geneveTruncated }
        let first = bytes.byte(at: offset)
        // Another version may lay out the rest differently: nothing after Ver can be trusted.
        guard first >> 6 == 0 else { throw .geneveVersion }
        payloadOffset = offset + Self.length + Int(first & 0x3F) * 4
        guard end >= payloadOffset else { throw .geneveTruncated }
        switch bytes.bigEndian16(at: offset + 2) {
        case Self.protocolTransparentEthernet: (isRawIP, rawIPVersion) = (false, 0)
        case Self.protocolIPv4: (isRawIP, rawIPVersion) = (true, 4)
        case Self.protocolIPv6: (isRawIP, rawIPVersion) = (true, 6)
        default: throw .geneveProtocol
        }
        vni = bytes.bigEndian32(at: offset + 4) >> 8
        // OAM frames are the tunnel's own control traffic, still what arrived on the mirror
        // port: written, and counted so an operator can tell them apart.
        anomalies = bytes.byte(at: offset + 1) & Self.flagOAM != 0 ? .geneveOAM : []
    }
}
