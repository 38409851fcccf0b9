/// The link layers of captures without an Ethernet header: Linux cooked v1 (LINKTYPE_LINUX_SLL,
/// 16 bytes, protocol at 14) and v2 (LINKTYPE_LINUX_SLL2, 20 bytes, protocol at 0), what
/// `tcpdump -i any` writes, and raw IP (version nibble). A cooked header whose protocol is an
/// 802.1Q / 802.1ad / 0x9100 tag is followed by the tag's TCI and the encapsulated protocol
/// (libpcap's layout), walked like Ethernet tags; so are the leftover inner tags of a frame
/// whose outer tag the NIC or veth stripped (Linux 6.x, below).
enum CookedLinkHeader {
    /// The EtherType of the network layer and where it starts.
    @inline(__always)
    static func networkLayer(_ bytes: UnsafeRawBufferPointer, linkType: LinkType) throws(DiscardReason) -> (etherType: UInt16, offset: Int) {
        var etherType: UInt16
        var offset: Int
        switch linkType {
        case .linuxCooked:
            guard bytes.count >= 16 else { throw .linkTruncated }
            etherType = bytes.bigEndian16(at: 14)
            offset = 16
        case .linuxCookedV2:
            guard bytes.count >= 20 else { throw .linkTruncated }
            etherType = bytes.bigEndian16(at: 0)
            offset = 20
        case .rawIP:
            guard bytes.count >= 1 else { throw .linkTruncated }
            return (bytes.byte(at: 0) >> 4 == 6 ? 0x86DD : 0x0800, 0)
        case .ethernet:
            let ethernet = try EthernetHeader(parsing: bytes, offloadedTag: nil)
            return (ethernet.etherType, ethernet.payloadOffset)
        }
        var tags = 0
        while VLANTag.isTagProtocol(etherType) {
            guard tags < EthernetHeader.maximumTags else { throw .nonIP }
            guard bytes.count >= offset + VLANTag.length else { throw .vlanTruncated }
            etherType = bytes.bigEndian16(at: offset + 2)
            offset += VLANTag.length
            tags += 1
        }
        // Linux 6.x (AF_PACKET SOCK_DGRAM) reports the protocol after all the tags while the
        // data still starts with the inner tags' TCI and encapsulated protocol (the outermost,
        // offloaded tag is gone): `tcpdump -i any` records QinQ that way. When the version
        // nibble says the data is not IP yet, such leftover tags are walked too.
        let version: UInt8 = etherType == 0x0800 ? 4 : 6
        if etherType == 0x0800 || etherType == 0x86DD, bytes.count > offset, bytes.byte(at: offset) >> 4 != version {
            var probe = offset
            while tags < EthernetHeader.maximumTags, bytes.count >= probe + VLANTag.length + 1,
                bytes.byte(at: probe) >> 4 != version
            {
                let next = bytes.bigEndian16(at: probe + 2)
                guard next == etherType || VLANTag.isTagProtocol(next) else { break }
                probe += VLANTag.length
                tags += 1
            }
            if bytes.count > probe, bytes.byte(at: probe) >> 4 == version { offset = probe }
        }
        return (etherType, offset)
    }
}
