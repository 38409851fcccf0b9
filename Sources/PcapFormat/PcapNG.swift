/// pcapng blocks (draft-ietf-opsawg-pcapng): Section Header, Interface Description and Enhanced
/// Packet. Options are encoded as code, length, value padded to 32 bits.
enum PcapNGOptions {
    static func option(_ code: UInt16, _ value: [UInt8]) -> [UInt8] {
        var bytes = littleOrHost16(code) + littleOrHost16(UInt16(value.count)) + value
        while bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }

    static func option(_ code: UInt16, _ text: String) -> [UInt8] { option(code, Array(text.utf8)) }

    static let end: [UInt8] = [0, 0, 0, 0]

    static func littleOrHost16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    static func host32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    static func host64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    /// Wraps `body` into a block of `type`: type, total length, body, total length.
    static func block(type: UInt32, body: [UInt8]) -> [UInt8] {
        let total = UInt32(12 + body.count)
        return host32(type) + host32(total) + body + host32(total)
    }
}

public enum SectionHeaderBlock {
    public static let type: UInt32 = 0x0A0D_0D0A
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D

    public static func bytes(application: String) -> [UInt8] {
        var body = PcapNGOptions.host32(byteOrderMagic)
        body += PcapNGOptions.littleOrHost16(1) + PcapNGOptions.littleOrHost16(0)  // version 1.0
        body += PcapNGOptions.host64(UInt64.max)  // section length unknown
        body += PcapNGOptions.option(4, application)  // shb_userappl
        body += PcapNGOptions.end
        return PcapNGOptions.block(type: type, body: body)
    }
}

public enum InterfaceDescriptionBlock {
    public static let type: UInt32 = 1

    public static func bytes(linkType: UInt16, name: String, description: String) -> [UInt8] {
        var body = PcapNGOptions.littleOrHost16(linkType) + [0, 0]
        body += PcapNGOptions.host32(PcapFileHeader.snapshotLength)
        body += PcapNGOptions.option(2, name)  // if_name
        body += PcapNGOptions.option(3, description)  // if_description
        body += PcapNGOptions.option(9, [9])  // if_tsresol: 10^-9
        body += PcapNGOptions.end
        return PcapNGOptions.block(type: type, body: body)
    }
}

/// Enhanced Packet Block: 28 bytes of header, the data padded to 32 bits, the trailing length.
public enum EnhancedPacketBlock {
    public static let type: UInt32 = 6
    public static let headerLength = 28

    @inline(__always)
    public static func length(capturedLength: Int) -> Int {
        headerLength + (capturedLength + 3) & ~3 + 4
    }

    @inline(__always)
    static func writeHeader(
        to destination: UnsafeMutableRawPointer, timestampNanoseconds: UInt64, capturedLength: Int, wireLength: Int
    ) {
        let total = UInt32(truncatingIfNeeded: length(capturedLength: capturedLength))
        destination.store32(type, at: 0)
        destination.store32(total, at: 4)
        destination.store32(0, at: 8)  // interface 0
        destination.store32(UInt32(truncatingIfNeeded: timestampNanoseconds >> 32), at: 12)
        destination.store32(UInt32(truncatingIfNeeded: timestampNanoseconds), at: 16)
        destination.store32(UInt32(truncatingIfNeeded: capturedLength), at: 20)
        destination.store32(UInt32(truncatingIfNeeded: wireLength), at: 24)
    }

    @inline(__always)
    static func writeTrailer(to destination: UnsafeMutableRawPointer, capturedLength: Int) {
        let padded = (capturedLength + 3) & ~3
        let dataEnd = destination + headerLength + capturedLength
        for index in 0..<(padded - capturedLength) { dataEnd.storeBytes(of: 0, toByteOffset: index, as: UInt8.self) }
        let total = UInt32(truncatingIfNeeded: length(capturedLength: capturedLength))
        destination.store32(total, at: headerLength + padded)
    }
}
