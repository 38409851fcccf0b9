/// An outer IPv4 header (RFC 791), options included. The payload is bounded by Total Length,
/// never by the captured length: bytes after it are Ethernet padding or an outer FCS.
struct IPv4Header {
    static let minimumLength = 20
    static let protocolGRE: UInt8 = 47
    static let protocolUDP: UInt8 = 17

    var source: IPAddress
    var protocolNumber: UInt8
    var payloadOffset: Int
    /// Offset one past the datagram's last byte according to Total Length; may lie beyond the
    /// captured bytes when the capture was snap-truncated.
    var datagramEnd: Int
    var isFragment: Bool
    var destination: IPAddress
    var identification: UInt16
    /// Fragment offset in bytes, and the MF flag.
    var fragmentOffset: Int
    var moreFragments: Bool

    @inline(__always)
    init(parsing bytes: UnsafeRawBufferPointer, at offset: Int, wireLength: Int) throws(DiscardReason) {
        guard bytes.count >= offset + Self.minimumLength else { throw .ipv4Truncated }
        let versionAndLength = bytes.byte(at: offset)
        guard versionAndLength >> 4 == 4 else { throw .ipv4Header }
        let headerLength = Int(versionAndLength & 0x0F) * 4
        guard headerLength >= Self.minimumLength else { throw .ipv4Header }
        guard bytes.count >= offset + headerLength else { throw .ipv4Truncated }
        let totalLength = Int(bytes.bigEndian16(at: offset + 2))
        guard totalLength >= headerLength, offset + totalLength <= max(wireLength, bytes.count) else {
            throw .ipv4Header
        }
        let fragmentWord = bytes.bigEndian16(at: offset + 6)
        isFragment = fragmentWord & 0x3FFF != 0  // MF or a non-zero fragment offset
        fragmentOffset = Int(fragmentWord & 0x1FFF) * 8
        moreFragments = fragmentWord & 0x2000 != 0
        identification = bytes.bigEndian16(at: offset + 4)
        destination = IPAddress(ipv4: bytes.bigEndian32(at: offset + 16))
        protocolNumber = bytes.byte(at: offset + 9)
        source = IPAddress(ipv4: bytes.bigEndian32(at: offset + 12))
        payloadOffset = offset + headerLength
        datagramEnd = offset + totalLength
    }
}
