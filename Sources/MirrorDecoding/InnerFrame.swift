/// Facts about the decapsulated (inner) Ethernet frame that need a look inside it: its
/// original length according to its own IP header, and whether it is itself a mirror stream.
enum InnerFrame {
    /// Both facts in one walk of the inner headers (the per-frame path; the two functions
    /// below say the same thing one at a time and are what the tests pin down). Whether a UDP
    /// port is a mirror port is left to the caller: `udpDestinationPort` is the inner UDP
    /// destination port (-1 when the frame is not UDP), `carriesGRE` is the rest of the answer.
    @inline(__always)
    static func inspect(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, count: Int
    ) -> (statedLength: Int?, carriesGRE: Bool, udpDestinationPort: Int) {
        var typeOffset = offset + 12
        var tags = 0
        while count >= typeOffset - offset + 2 {
            let etherType = bytes.bigEndian16(at: typeOffset)
            let ipOffset = typeOffset + 2
            let available = count - (ipOffset - offset)
            switch etherType {
            case 0x0800:
                guard available >= 4, bytes.byte(at: ipOffset) >> 4 == 4 else { return (nil, false, -1) }
                let stated = ipOffset - offset + Int(bytes.bigEndian16(at: ipOffset + 2))
                guard tags <= 1, available >= 20 else { return (stated, false, -1) }
                let protocolNumber = bytes.byte(at: ipOffset + 9)
                if protocolNumber == IPv4Header.protocolGRE { return (stated, true, -1) }
                let headerLength = Int(bytes.byte(at: ipOffset) & 0x0F) * 4
                guard protocolNumber == IPv4Header.protocolUDP, available >= headerLength + 4 else { return (stated, false, -1) }
                return (stated, false, Int(bytes.bigEndian16(at: ipOffset + headerLength + 2)))
            case 0x86DD:
                guard available >= 6, bytes.byte(at: ipOffset) >> 4 == 6 else { return (nil, false, -1) }
                let stated = ipOffset - offset + 40 + Int(bytes.bigEndian16(at: ipOffset + 4))
                guard tags <= 1, available >= 44 else { return (stated, false, -1) }
                let next = bytes.byte(at: ipOffset + 6)
                if next == IPv4Header.protocolGRE { return (stated, true, -1) }
                guard next == IPv4Header.protocolUDP else { return (stated, false, -1) }
                return (stated, false, Int(bytes.bigEndian16(at: ipOffset + 42)))
            case 0x8100, 0x88A8, 0x9100:
                tags += 1
                guard tags <= 2 else { return (nil, false, -1) }
                typeOffset += 4
            default:
                return (nil, false, -1)
            }
        }
        return (nil, false, -1)
    }

    /// The inner frame's length as its IPv4/IPv6 header states it (L2 header + IP length), or
    /// nil when it carries no readable IP header. A switch that truncated the copy (ERSPAN T
    /// bit, AWS PacketLength) leaves this header intact, so it reveals the original size.
    static func statedLength(_ bytes: UnsafeRawBufferPointer, at offset: Int, count: Int) -> Int? {
        var etherTypeOffset = offset + 12
        var tags = 0
        while count >= etherTypeOffset - offset + 2 {
            let etherType = bytes.bigEndian16(at: etherTypeOffset)
            let ipOffset = etherTypeOffset + 2
            let available = count - (ipOffset - offset)
            switch etherType {
            case 0x0800:
                guard available >= 4, bytes.byte(at: ipOffset) >> 4 == 4 else { return nil }
                return ipOffset - offset + Int(bytes.bigEndian16(at: ipOffset + 2))
            case 0x86DD:
                guard available >= 6, bytes.byte(at: ipOffset) >> 4 == 6 else { return nil }
                return ipOffset - offset + 40 + Int(bytes.bigEndian16(at: ipOffset + 4))
            case 0x8100, 0x88A8, 0x9100:
                tags += 1
                guard tags <= 2 else { return nil }
                etherTypeOffset += 4
            default:
                return nil
            }
        }
        return nil
    }

    /// Whether the inner frame is IPv4/IPv6 carrying GRE, or UDP to a VXLAN, VXLAN-GPE or
    /// Geneve port: the mirror
    /// source is mirroring the mirror stream (a loop upstream). Only untagged or single-tagged
    /// frames with the header in the first bytes are checked; this is a counter, not a filter.
    static func isNestedMirror(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, count: Int, mirrorPorts: UDPMirrorPorts
    ) -> Bool {
        var typeOffset = offset + 12
        guard count >= 14 else { return false }
        if VLANTag.isTagProtocol(bytes.bigEndian16(at: typeOffset)) { typeOffset += 4 }
        guard count >= typeOffset - offset + 2 else { return false }
        let ipOffset = typeOffset + 2
        let available = count - (ipOffset - offset)
        switch bytes.bigEndian16(at: typeOffset) {
        case 0x0800:
            guard available >= 20 else { return false }
            let protocolNumber = bytes.byte(at: ipOffset + 9)
            if protocolNumber == IPv4Header.protocolGRE { return true }
            let headerLength = Int(bytes.byte(at: ipOffset) & 0x0F) * 4
            guard protocolNumber == IPv4Header.protocolUDP, available >= headerLength + 4 else { return false }
            return mirrorPorts.contains(bytes.bigEndian16(at: ipOffset + headerLength + 2))
        case 0x86DD:
            guard available >= 44 else { return false }
            let next = bytes.byte(at: ipOffset + 6)
            if next == IPv4Header.protocolGRE { return true }
            return next == IPv4Header.protocolUDP && mirrorPorts.contains(bytes.bigEndian16(at: ipOffset + 42))
        default:
            return false
        }
    }
}
