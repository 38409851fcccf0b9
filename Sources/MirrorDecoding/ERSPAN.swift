/// ERSPAN Type II and Type III headers (draft-foschiano-erspan-03 as implemented by the Linux
/// kernel, Wireshark and tcpdump). Type I has no header at all. Field masks are on big-endian
/// words, bit 0 being the most significant (see PROTOCOLS.md A.4-A.6).
public struct ERSPANMetadata: Sendable, Hashable {
    /// The header's Ver field: 1 for Type II, 2 for Type III, 0 for Type I (no header).
    public var version: UInt8 = 0
    /// Original VLAN of the mirrored frame (undefined for Type II En = 3).
    public var vlan: UInt16 = 0
    public var classOfService: UInt8 = 0
    /// Type II: En (trunk encapsulation). Type III: BSO (bad/short/oversized).
    public var encapsulationOrBSO: UInt8 = 0
    /// T: the switch truncated the copy.
    public var truncated: Bool = false
    public var sessionID: UInt16 = 0
    /// Type II: port index / direction, platform dependent.
    public var index: UInt32 = 0
    /// Type III: the raw 32-bit timestamp and its granularity (Gra).
    public var timestamp: UInt32 = 0
    public var granularity: UInt8 = 0
    public var securityGroupTag: UInt16 = 0
    public var frameType: UInt8 = 0
    public var hardwareID: UInt8 = 0
    /// Type III D bit: false ingress, true egress.
    public var egress: Bool = false
    /// Type III optional platform-specific sub-header, raw 64 bits (valid when `hasPlatform`).
    public var platform: UInt64 = 0
    public var hasPlatform: Bool = false

    @inlinable
    public init() {}

    /// The 6-bit Platf ID of the sub-header.
    public var platformID: UInt8 { UInt8(truncatingIfNeeded: platform >> 58) }
}

enum ERSPANHeader {
    static let typeIILength = 8
    static let typeIIILength = 12
    static let platformLength = 8

    /// Reads the Ver nibble at `offset` without consuming anything.
    static func version(_ bytes: UnsafeRawBufferPointer, at offset: Int, end: Int) throws(DiscardReason) -> UInt8 {
        guard end >= offset + 2 else { throw .erspanTruncated }
        return bytes.byte(at: offset) >> 4
    }

    /// Parses a Type II header; returns the offset of the mirrored frame.
    @inline(__always)
    static func parseTypeII(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, end: Int, into metadata: inout ERSPANMetadata
    ) throws(DiscardReason) -> Int {
        guard end >= offset + typeIILength else { throw .erspanTruncated }
        let word0 = bytes.bigEndian16(at: offset)
        let word1 = bytes.bigEndian16(at: offset + 2)
        metadata.version = UInt8(word0 >> 12)
        metadata.vlan = word0 & 0x0FFF
        metadata.classOfService = UInt8(word1 >> 13)
        metadata.encapsulationOrBSO = UInt8(word1 >> 11 & 0x3)
        metadata.truncated = word1 & 0x0400 != 0
        metadata.sessionID = word1 & 0x03FF
        metadata.index = bytes.bigEndian32(at: offset + 4) & 0x000F_FFFF
        return offset + typeIILength
    }

    /// FT values: the mirrored frame is Ethernet, or an IP packet without link header.
    static let frameTypeEthernet: UInt8 = 0
    static let frameTypeIP: UInt8 = 2

    /// Parses a Type III header and its optional platform sub-header; returns the offset of the
    /// mirrored frame. FT is recorded, not judged: the decoder decides what it can write.
    @inline(__always)
    static func parseTypeIII(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, end: Int, into metadata: inout ERSPANMetadata
    ) throws(DiscardReason) -> Int {
        guard end >= offset + typeIIILength else { throw .erspanTruncated }
        let word0 = bytes.bigEndian16(at: offset)
        let word1 = bytes.bigEndian16(at: offset + 2)
        let word5 = bytes.bigEndian16(at: offset + 10)
        metadata.version = UInt8(word0 >> 12)
        metadata.vlan = word0 & 0x0FFF
        metadata.classOfService = UInt8(word1 >> 13)
        metadata.encapsulationOrBSO = UInt8(word1 >> 11 & 0x3)
        metadata.truncated = word1 & 0x0400 != 0
        metadata.sessionID = word1 & 0x03FF
        metadata.timestamp = bytes.bigEndian32(at: offset + 4)
        metadata.securityGroupTag = bytes.bigEndian16(at: offset + 8)
        metadata.frameType = UInt8(word5 >> 10 & 0x1F)
        metadata.hardwareID = UInt8(word5 >> 4 & 0x3F)
        metadata.egress = word5 & 0x0008 != 0
        metadata.granularity = UInt8(word5 >> 1 & 0x3)
        var cursor = offset + typeIIILength
        if word5 & 0x0001 != 0 {
            // Everyone skips exactly 8 bytes whatever the Platf ID; keep the raw value.
            guard end >= cursor + platformLength else { throw .erspanPlatformTruncated }
            metadata.platform = bytes.bigEndian64(at: cursor)
            metadata.hasPlatform = true
            cursor += platformLength
        }
        return cursor
    }
}
