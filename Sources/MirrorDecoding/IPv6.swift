/// An outer IPv6 header (RFC 8200) with its extension-header chain walked up to the upper-layer
/// protocol. Linux ip6gre/ip6erspan put a Destination Options header (Tunnel Encapsulation
/// Limit) before GRE, so stopping at the fixed header would miss their traffic.
struct IPv6Header {
    static let length = 40
    static let maximumExtensionHeaders = 8

    /// Hop-by-Hop, Routing, Fragment, Destination Options, Authentication.
    static func isExtensionHeader(_ next: UInt8) -> Bool {
        next == 0 || next == 43 || next == 44 || next == 60 || next == 51
    }

    var source: IPAddress
    /// The upper-layer protocol after the extension headers.
    var protocolNumber: UInt8
    var payloadOffset: Int
    var datagramEnd: Int
    var isFragment: Bool
    var destination: IPAddress
    /// Where the Fragment header is, when there is one (even an atomic fragment).
    var fragmentHeaderOffset: Int?
    /// Offset of the byte whose next-header value points at the Fragment header.
    var fragmentPointerOffset = 0
    var fragmentOffset = 0
    var moreFragments = false
    var identification: UInt32 = 0

    init(parsing bytes: UnsafeRawBufferPointer, at offset: Int, wireLength: Int) throws(DiscardReason) {
        guard bytes.count >= offset + Self.length else { throw .ipv6Truncated }
        guard bytes.byte(at: offset) >> 4 == 6 else { throw .ipv6Header }
        let payloadLength = Int(bytes.bigEndian16(at: offset + 4))
        datagramEnd = offset + Self.length + payloadLength
        guard datagramEnd <= max(wireLength, bytes.count) else { throw .ipv6Header }
        source = IPAddress(ipv6High: bytes.bigEndian64(at: offset + 8), low: bytes.bigEndian64(at: offset + 16))
        destination = IPAddress(ipv6High: bytes.bigEndian64(at: offset + 24), low: bytes.bigEndian64(at: offset + 32))
        isFragment = false
        var pointer = offset + 6

        // Extension headers are read only inside the captured and datagram-bounded bytes.
        let limit = min(datagramEnd, bytes.count)
        var next = bytes.byte(at: offset + 6)
        var cursor = offset + Self.length
        for _ in 0...Self.maximumExtensionHeaders {
            switch next {
            case 0, 43, 60:  // Hop-by-Hop, Routing, Destination Options: (length + 1) × 8 bytes
                guard limit >= cursor + 2 else { throw .ipv6Truncated }
                let headerLength = (Int(bytes.byte(at: cursor + 1)) + 1) * 8
                guard limit >= cursor + headerLength else { throw .ipv6Truncated }
                next = bytes.byte(at: cursor)
                pointer = cursor
                cursor += headerLength
            case 44:  // Fragment: fixed 8 bytes; offset/M tell whether this is really a piece
                guard limit >= cursor + 8 else { throw .ipv6Truncated }
                let offsetAndFlags = bytes.bigEndian16(at: cursor + 2)
                if offsetAndFlags & 0xFFF9 != 0 { isFragment = true }
                fragmentHeaderOffset = cursor
                fragmentPointerOffset = pointer
                fragmentOffset = Int(offsetAndFlags & 0xFFF8)
                moreFragments = offsetAndFlags & 0x0001 != 0
                identification = bytes.bigEndian32(at: cursor + 4)
                next = bytes.byte(at: cursor)
                pointer = cursor
                cursor += 8
            case 51:  // Authentication Header: (length + 2) × 4 bytes
                guard limit >= cursor + 2 else { throw .ipv6Truncated }
                let headerLength = (Int(bytes.byte(at: cursor + 1)) + 2) * 4
                guard limit >= cursor + headerLength else { throw .ipv6Truncated }
                next = bytes.byte(at: cursor)
                pointer = cursor
                cursor += headerLength
            default:
                protocolNumber = next
                payloadOffset = cursor
                return
            }
            if isFragment { break }
        }
        if isFragment {
            protocolNumber = next
            payloadOffset = cursor
            return
        }
        throw .ipv6Header
    }
}
