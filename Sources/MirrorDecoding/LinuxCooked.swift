/// The link layers of captures without an Ethernet header: Linux cooked v1 (LINKTYPE_LINUX_SLL,
/// 16 bytes, protocol at 14) and v2 (LINKTYPE_LINUX_SLL2, 20 bytes, protocol at 0), what
/// `tcpdump -i any` writes, and raw IP (version nibble). A cooked header whose protocol is an
/// 802.1Q / 802.1ad / 0x9100 tag is followed by the tag's TCI and the encapsulated protocol
/// (libpcap's layout), walked like Ethernet tags.
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
        return (etherType, offset)
    }
}
