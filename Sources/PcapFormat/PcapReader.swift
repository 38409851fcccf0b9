/// Reads classic pcap (microsecond or nanosecond, either byte order) from bytes in memory,
/// typically a mapped file. Records are returned as offsets, so the data is never copied.
public struct ClassicPcapReader: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        case notClassicPcap
        case unsupportedVersion(UInt16, UInt16)
    }

    /// One record: where its data lies in the file and what its header says.
    public struct Record: Sendable {
        public var dataOffset: Int
        public var capturedLength: Int
        public var wireLength: Int
        public var timestampNanoseconds: UInt64
    }

    public let linkType: UInt32
    public let isNanosecond: Bool
    public let isSwapped: Bool
    public let snapshotLength: UInt32
    public private(set) var offset: Int
    /// Set when the file ends inside a record (a crashed writer, a cut download).
    public private(set) var endedInsideRecord = false
    let count: Int

    /// Whether `bytes` starts with a classic pcap magic.
    public static func recognizes(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 4 else { return false }
        let magic = bytes.loadUnaligned(as: UInt32.self)
        return [PcapFileHeader.nanosecondMagic, PcapFileHeader.microsecondMagic].contains(magic)
            || [PcapFileHeader.nanosecondMagic, PcapFileHeader.microsecondMagic].contains(magic.byteSwapped)
    }

    public init(header bytes: UnsafeRawBufferPointer) throws(Failure) {
        guard bytes.count >= PcapFileHeader.length else { throw .notClassicPcap }
        let magic = bytes.loadUnaligned(as: UInt32.self)
        switch magic {
        case PcapFileHeader.nanosecondMagic: (isNanosecond, isSwapped) = (true, false)
        case PcapFileHeader.microsecondMagic: (isNanosecond, isSwapped) = (false, false)
        case PcapFileHeader.nanosecondMagic.byteSwapped: (isNanosecond, isSwapped) = (true, true)
        case PcapFileHeader.microsecondMagic.byteSwapped: (isNanosecond, isSwapped) = (false, true)
        default: throw .notClassicPcap
        }
        let swapped = isSwapped
        func u16(_ at: Int) -> UInt16 {
            let v = bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)
            return swapped ? v.byteSwapped : v
        }
        func u32(_ at: Int) -> UInt32 {
            let v = bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)
            return swapped ? v.byteSwapped : v
        }
        guard u16(4) == 2 else { throw .unsupportedVersion(u16(4), u16(6)) }
        snapshotLength = u32(16)
        // The upper bits of the link-type word carry FCS information (LINKTYPE_... docs).
        linkType = u32(20) & 0x03FF_FFFF
        offset = PcapFileHeader.length
        count = bytes.count
    }

    /// The next record of `bytes` (the same bytes given to `init`), or nil at the end.
    @inline(__always)
    public mutating func next(in bytes: UnsafeRawBufferPointer) -> Record? {
        guard offset + PcapRecord.headerLength <= bytes.count else {
            if offset != bytes.count { endedInsideRecord = true }
            return nil
        }
        var seconds = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        var fraction = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
        var captured = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
        var wire = bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)
        if isSwapped {
            seconds = seconds.byteSwapped
            fraction = fraction.byteSwapped
            captured = captured.byteSwapped
            wire = wire.byteSwapped
        }
        let dataOffset = offset + PcapRecord.headerLength
        guard Int(captured) <= bytes.count - dataOffset else {
            endedInsideRecord = true
            offset = bytes.count
            return nil
        }
        offset = dataOffset + Int(captured)
        let nanoseconds = isNanosecond ? UInt64(fraction) : UInt64(fraction) * 1000
        return Record(
            dataOffset: dataOffset, capturedLength: Int(captured), wireLength: max(Int(wire), Int(captured)),
            timestampNanoseconds: UInt64(seconds) * 1_000_000_000 + nanoseconds)
    }
}
