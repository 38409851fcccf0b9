/// The outer Ethernet header of a captured frame, with up to `maximumTags` 802.1Q / 802.1ad /
/// 0x9100 tags walked. A NIC-stripped outer tag reported by the kernel (VLAN offload) is passed
/// in as `offloadedTag` and treated as if it were still the outermost tag, so live capture and
/// replay classify the same bytes the same way without re-inserting 4 bytes.
struct EthernetHeader {
    static let length = 14
    static let maximumTags = 4

    /// The outermost tag, whether on the wire or offloaded; nil when untagged.
    var outermostTag: VLANTag?
    /// Whether `outermostTag` is in the bytes (`false` when it came from offload metadata).
    var outermostTagInBytes: Bool
    /// EtherType after all tags.
    var etherType: UInt16
    /// Offset of the payload after all tags.
    var payloadOffset: Int

    @inline(__always)
    init(parsing bytes: UnsafeRawBufferPointer, offloadedTag: VLANTag?) throws(DiscardReason) {
        guard bytes.count >= Self.length else { throw .linkTruncated }
        var etherType = bytes.bigEndian16(at: 12)
        var offset = Self.length
        outermostTag = offloadedTag
        outermostTagInBytes = false
        var tags = offloadedTag == nil ? 0 : 1
        while VLANTag.isTagProtocol(etherType) {
            guard tags < Self.maximumTags else { throw .nonIP }
            guard bytes.count >= offset + VLANTag.length else { throw .vlanTruncated }
            if tags == 0 {
                outermostTag = VLANTag(protocolID: etherType, controlInformation: bytes.bigEndian16(at: offset))
                outermostTagInBytes = true
            }
            etherType = bytes.bigEndian16(at: offset + 2)
            offset += VLANTag.length
            tags += 1
        }
        self.etherType = etherType
        payloadOffset = offset
    }
}

/// An 802.1Q-style tag: tag protocol identifier and tag control information.
public struct VLANTag: Hashable, Sendable {
    static let length = 4

    /// TPID: 0x8100 (802.1Q), 0x88A8 (802.1ad) or 0x9100.
    public var protocolID: UInt16
    /// TCI: PCP (3 bits), DEI (1 bit), VID (12 bits).
    public var controlInformation: UInt16

    public init(protocolID: UInt16 = 0x8100, controlInformation: UInt16) {
        self.protocolID = protocolID
        self.controlInformation = controlInformation
    }

    /// The 12-bit VLAN identifier.
    public var vlanID: UInt16 { controlInformation & 0x0FFF }

    @inline(__always)
    static func isTagProtocol(_ etherType: UInt16) -> Bool {
        etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100
    }
}
