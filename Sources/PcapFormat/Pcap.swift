/// Classic pcap with nanosecond timestamps (the 0xA1B23C4D magic).
public enum PcapFileHeader {
    public static let length = 24
    public static let nanosecondMagic: UInt32 = 0xA1B2_3C4D
    public static let microsecondMagic: UInt32 = 0xA1B2_C3D4
    /// The snapshot length we announce: the largest frame libpcap itself accepts.
    public static let snapshotLength: UInt32 = 262_144

    public static func bytes(linkType: UInt32) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: length)
        header.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            base.store32(nanosecondMagic, at: 0)
            base.store16(2, at: 4)  // version 2.4
            base.store16(4, at: 6)
            base.store32(0, at: 8)  // thiszone
            base.store32(0, at: 12)  // sigfigs
            base.store32(snapshotLength, at: 16)
            base.store32(linkType, at: 20)
        }
        return header
    }
}

/// A classic pcap record header: seconds, nanoseconds, captured length, original length.
public enum PcapRecord {
    public static let headerLength = 16

    @inlinable
    public static func writeHeader(
        to destination: UnsafeMutableRawPointer, timestampNanoseconds: UInt64, capturedLength: Int, wireLength: Int
    ) {
        let (seconds, nanoseconds) = timestampNanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        destination.store32(UInt32(truncatingIfNeeded: seconds), at: 0)
        destination.store32(UInt32(truncatingIfNeeded: nanoseconds), at: 4)
        destination.store32(UInt32(truncatingIfNeeded: capturedLength), at: 8)
        destination.store32(UInt32(truncatingIfNeeded: wireLength), at: 12)
    }
}
