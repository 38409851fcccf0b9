/// Reads classic pcap (microsecond or nanosecond, either byte order) from bytes in memory: a
/// mapped file or a stream's buffer (see `CaptureRecordReader`). Records are returned as
/// offsets, so the data is never copied.
///
/// A record header whose captured length exceeds what the file can hold (more than the
/// snapshot length and 256 KiB) is corrupt: the reader then scans forward byte by byte for the
/// next plausible record, as Wireshark's and pcapfix's readers do: captured length within
/// bounds, original length not below it, a valid fraction of a second, a timestamp within a day
/// of the last good record, and the record after it plausible too (or the input ending exactly
/// there). The bytes skipped count as `corruptBytes`.
public struct ClassicPcapReader: CaptureRecordReader, Sendable {
    public enum Failure: Error, Equatable, Sendable {
        case notClassicPcap
        case unsupportedVersion(UInt16, UInt16)
    }

    public typealias Record = CaptureRecord

    public let linkType: UInt32
    public let isNanosecond: Bool
    public let isSwapped: Bool
    public let snapshotLength: UInt32
    /// Where the next record starts (stored for the inlinable fast path of `next`).
    public var offset: Int { nextOffset }
    @usableFromInline var nextOffset: Int
    public private(set) var corruptBytes = 0
    public private(set) var truncatedBytes = 0
    /// Set when the file ends inside a record (a crashed writer, a cut download).
    public var endedInsideRecord: Bool { truncatedBytes > 0 }
    /// The largest captured length a record may have.
    @usableFromInline let maximumCapturedLength: Int
    /// Scanning for the next plausible record after a corrupt one.
    @usableFromInline var resynchronizing = false
    /// The scan stopped at the window's end with `offset` not yet examined.
    private var resumeAtOffset = false
    /// Where a record that runs past the end of the input starts: the input was cut there,
    /// unless resynchronisation finds a record after it.
    private var cutAt: Int?
    /// Seconds of the last record returned (resynchronisation wants candidates near it).
    @usableFromInline var lastSeconds: UInt32?

    /// Whether `bytes` starts with a classic pcap magic.
    public static func recognizes(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 4 else { return false }
        let magic = bytes.loadUnaligned(as: UInt32.self)
        return [PcapFileHeader.nanosecondMagic, PcapFileHeader.microsecondMagic].contains(magic)
            || [PcapFileHeader.nanosecondMagic, PcapFileHeader.microsecondMagic].contains(magic.byteSwapped)
    }

    /// Reads the 24-byte file header at the start of `bytes`.
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
        nextOffset = PcapFileHeader.length
        maximumCapturedLength = min(max(Int(snapshotLength), Int(PcapFileHeader.snapshotLength)), PcapNGReader.maximumBlockLength)
    }

    /// The next record of `bytes` (the same input given to `init`), or nil at the end of the
    /// window. `final`: the window holds the rest of the input. Inlinable: a whole, sane record
    /// (the per-frame case of replay) costs no call; everything else goes to `nextSlowly`.
    @inlinable
    public mutating func next(in bytes: UnsafeRawBufferPointer, final: Bool = true) -> Record? {
        if !resynchronizing, nextOffset + PcapRecord.headerLength <= bytes.count {
            let header = self.header(bytes, at: nextOffset)
            let dataOffset = nextOffset + PcapRecord.headerLength
            let captured = Int(header.captured)
            if captured <= maximumCapturedLength, captured <= bytes.count - dataOffset {
                nextOffset = dataOffset + captured
                lastSeconds = header.seconds
                let nanoseconds = isNanosecond ? UInt64(header.fraction) : UInt64(header.fraction) &* 1000
                return Record(
                    dataOffset: dataOffset, capturedLength: captured, wireLength: max(Int(header.wire), captured),
                    timestampNanoseconds: UInt64(header.seconds) &* 1_000_000_000 &+ nanoseconds, linkType: linkType)
            }
        }
        return nextSlowly(in: bytes, final: final)
    }

    @usableFromInline
    mutating func nextSlowly(in bytes: UnsafeRawBufferPointer, final: Bool) -> Record? {
        while true {
            if resynchronizing {
                guard resynchronize(bytes, final: final) else { return nil }
            }
            guard nextOffset + PcapRecord.headerLength <= bytes.count else {
                if final, nextOffset < bytes.count { truncate(bytes) }
                return nil
            }
            let header = self.header(bytes, at: nextOffset)
            guard Int(header.captured) <= maximumCapturedLength else {
                resynchronizing = true
                continue
            }
            let dataOffset = nextOffset + PcapRecord.headerLength
            guard Int(header.captured) <= bytes.count - dataOffset else {
                guard final else { return nil }
                // A cut last record, unless a plausible record follows: then its length is corrupt.
                cutAt = nextOffset
                resynchronizing = true
                continue
            }
            nextOffset = dataOffset + Int(header.captured)
            lastSeconds = header.seconds
            let nanoseconds = isNanosecond ? UInt64(header.fraction) : UInt64(header.fraction) &* 1000
            return Record(
                dataOffset: dataOffset, capturedLength: Int(header.captured),
                wireLength: max(Int(header.wire), Int(header.captured)),
                timestampNanoseconds: UInt64(header.seconds) &* 1_000_000_000 &+ nanoseconds, linkType: linkType)
        }
    }

    public mutating func discard(_ count: Int) {
        nextOffset -= count
    }

    private mutating func truncate(_ bytes: UnsafeRawBufferPointer) {
        truncatedBytes += bytes.count - nextOffset
        nextOffset = bytes.count
    }

    @inlinable
    func header(_ bytes: UnsafeRawBufferPointer, at: Int) -> (seconds: UInt32, fraction: UInt32, captured: UInt32, wire: UInt32) {
        var seconds = bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)
        var fraction = bytes.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)
        var captured = bytes.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self)
        var wire = bytes.loadUnaligned(fromByteOffset: at + 12, as: UInt32.self)
        if isSwapped {
            seconds = seconds.byteSwapped
            fraction = fraction.byteSwapped
            captured = captured.byteSwapped
            wire = wire.byteSwapped
        }
        return (seconds, fraction, captured, wire)
    }

    /// Whether a record header at `at` could be a real one, its timestamp near `seconds`.
    private func isPlausible(_ bytes: UnsafeRawBufferPointer, at: Int, near seconds: UInt32?) -> Bool {
        let header = self.header(bytes, at: at)
        guard Int(header.captured) <= maximumCapturedLength, header.wire >= header.captured,
            Int(header.wire) <= PcapNGReader.maximumBlockLength,
            header.fraction < (isNanosecond ? 1_000_000_000 : 1_000_000)
        else { return false }
        if let seconds {
            let distance = header.seconds > seconds ? header.seconds - seconds : seconds - header.seconds
            guard distance <= 86_400 else { return false }
        }
        return true
    }

    /// Moves `nextOffset` forward to the next plausible record, counting the bytes passed as
    /// corrupt. Returns false when the window ends first (more input is needed, or the input
    /// ended: then the rest counts as corrupt too).
    private mutating func resynchronize(_ bytes: UnsafeRawBufferPointer, final: Bool) -> Bool {
        let start = nextOffset
        var candidate = resumeAtOffset ? nextOffset : nextOffset + 1
        resumeAtOffset = false
        defer {
            if nextOffset == bytes.count, final, cutAt == start {
                truncatedBytes += nextOffset - start
            } else {
                corruptBytes += nextOffset - start
            }
            cutAt = nil
        }
        while true {
            // The candidate, its data and the next record's header must be in the window.
            guard candidate + PcapRecord.headerLength <= bytes.count else { break }
            if isPlausible(bytes, at: candidate, near: lastSeconds) {
                let end = candidate + PcapRecord.headerLength + Int(header(bytes, at: candidate).captured)
                if end == bytes.count, final {
                    nextOffset = candidate
                    resynchronizing = false
                    return true
                }
                if end + PcapRecord.headerLength > bytes.count {
                    if !final {
                        nextOffset = candidate
                        resumeAtOffset = true
                        return false
                    }
                } else if isPlausible(bytes, at: end, near: header(bytes, at: candidate).seconds) {
                    nextOffset = candidate
                    resynchronizing = false
                    return true
                }
            }
            candidate += 1
        }
        if final {
            nextOffset = bytes.count
        } else {
            // The candidates from here on are not examined yet: a header may start among them.
            nextOffset = min(candidate, bytes.count)
            resumeAtOffset = true
        }
        return false
    }
}
