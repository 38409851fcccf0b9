/// Reads pcapng (draft-ietf-opsawg-pcapng) from bytes in memory: a mapped file or a stream's
/// buffer (see `CaptureRecordReader`). Every section (a new Section Header Block restarts the
/// interface list and may change the byte order), every interface with its own link type,
/// `if_tsresol` (a power of 10 or of 2) and `if_tsoffset`; packets from Enhanced, Simple and
/// the obsolete Packet Blocks; every other block is skipped whole.
///
/// What cannot be read is counted in `corruptBytes`, never a trap: a block whose framing is
/// broken (length below 12, not a multiple of 4, above `maximumBlockLength`, trailing length
/// different) makes the reader scan forward, 4 bytes at a time, for the next plausible block (a
/// known type whose total length is sane and whose trailing length matches); a block that is
/// framed correctly but unusable (an interface ID out of range, a captured length past the
/// block, a timestamp that does not fit in 64 bits of nanoseconds) is skipped alone.
public struct PcapNGReader: CaptureRecordReader, Sendable {
    /// Larger blocks are taken for corrupt (Wireshark's limit is of the same order).
    public static let maximumBlockLength = 16 << 20

    static let sectionHeader: UInt32 = 0x0A0D_0D0A
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
    static let interfaceDescription: UInt32 = 1
    static let packet: UInt32 = 2
    static let simplePacket: UInt32 = 3
    static let enhancedPacket: UInt32 = 6
    /// Block types taken as evidence of a real block when resynchronising: SHB, IDB, PB, SPB,
    /// NRB, ISB, EPB, systemd journal, DSB, custom.
    static let knownTypes: Set<UInt32> = [sectionHeader, 1, 2, 3, 4, 5, 6, 9, 10, 0x0000_0BAD, 0x4000_0BAD]

    /// One Interface Description Block: its link type and how to turn its timestamps into
    /// nanoseconds since the epoch.
    public struct Interface: Sendable, Equatable {
        public var linkType: UInt32
        public var snapshotLength: UInt32
        /// `if_tsresol`: the exponent, and whether it is of 2 (else of 10). Default 10^-6.
        public var resolutionExponent: UInt8 = 6
        public var resolutionIsPowerOfTwo = false
        /// `if_tsoffset`: seconds added to every timestamp.
        public var offsetSeconds: Int64 = 0

        public init(linkType: UInt32, snapshotLength: UInt32) {
            self.linkType = linkType
            self.snapshotLength = snapshotLength
        }

        /// `units` of this interface in nanoseconds, or nil when that does not fit in UInt64.
        public func nanoseconds(units: UInt64) -> UInt64? {
            var value: UInt64
            if resolutionIsPowerOfTwo {
                // units * 10^9 / 2^exponent, through 128 bits.
                let (high, low) = units.multipliedFullWidth(by: 1_000_000_000)
                let shift = Int(resolutionExponent)
                if shift == 0 {
                    guard high == 0 else { return nil }
                    value = low
                } else if shift < 64 {
                    guard high >> shift == 0 else { return nil }
                    value = (low >> shift) | (high << (64 - shift))
                } else {
                    value = shift < 128 ? high >> (shift - 64) : 0
                }
            } else if resolutionExponent <= 9 {
                let (product, overflow) = units.multipliedReportingOverflow(by: Self.powerOfTen(9 - Int(resolutionExponent)))
                guard !overflow else { return nil }
                value = product
            } else {
                let exponent = Int(resolutionExponent) - 9
                value = exponent > 19 ? 0 : units / Self.powerOfTen(exponent)
            }
            guard offsetSeconds != 0 else { return value }
            let (offset, overflow) = offsetSeconds.magnitude.multipliedReportingOverflow(by: 1_000_000_000)
            guard !overflow else { return nil }
            if offsetSeconds > 0 {
                let (sum, carry) = value.addingReportingOverflow(offset)
                return carry ? nil : sum
            }
            return value >= offset ? value - offset : nil
        }

        static func powerOfTen(_ exponent: Int) -> UInt64 {
            var value: UInt64 = 1
            for _ in 0..<exponent { value *= 10 }
            return value
        }
    }

    public private(set) var offset = 0
    public private(set) var corruptBytes = 0
    public private(set) var truncatedBytes = 0
    /// Blocks skipped whole because they could not be used (counted in `corruptBytes`).
    public private(set) var unusableBlocks = 0
    /// The interfaces of the current section.
    public private(set) var interfaces: [Interface] = []
    /// Sections seen.
    public private(set) var sections = 0
    private var isSwapped = false
    private var resynchronizing = false
    private var resumeAtOffset = false
    /// Where a block that runs past the end of the input starts: the input was cut there,
    /// unless resynchronisation finds a block after it.
    private var cutAt: Int?
    /// Simple Packet Blocks have no timestamp: they get the last one seen.
    private var lastTimestamp: UInt64 = 0

    /// Whether `bytes` starts with a Section Header Block.
    public static func recognizes(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes.loadUnaligned(as: UInt32.self) == sectionHeader
    }

    public init() {}

    public mutating func discard(_ count: Int) {
        offset -= count
    }

    @inline(__always)
    private func u16(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> UInt16 {
        let value = bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)
        return isSwapped ? value.byteSwapped : value
    }

    @inline(__always)
    private func u32(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        let value = bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)
        return isSwapped ? value.byteSwapped : value
    }

    /// The byte order a Section Header Block at `at` declares (true: swapped), or nil.
    private static func sectionByteOrder(_ bytes: UnsafeRawBufferPointer, at: Int) -> Bool? {
        guard at + 12 <= bytes.count, bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self) == sectionHeader else { return nil }
        switch bytes.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self) {
        case byteOrderMagic: return false
        case byteOrderMagic.byteSwapped: return true
        default: return nil
        }
    }

    /// The total length of the block at `at` if its framing is sound and it is whole in the
    /// window; `.incomplete` when the window ends first; `.corrupt` otherwise.
    private enum Framing {
        case block(length: Int, swapped: Bool)
        case incomplete
        case corrupt
    }

    private func framing(_ bytes: UnsafeRawBufferPointer, at: Int) -> Framing {
        guard at + 12 <= bytes.count else { return .incomplete }
        var swapped = isSwapped
        if bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self) == Self.sectionHeader {
            guard let order = Self.sectionByteOrder(bytes, at: at) else { return .corrupt }
            swapped = order
        }
        var length = bytes.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)
        if swapped { length = length.byteSwapped }
        guard length >= 12, length % 4 == 0, Int(length) <= Self.maximumBlockLength else { return .corrupt }
        guard at + Int(length) <= bytes.count else { return .incomplete }
        var trailing = bytes.loadUnaligned(fromByteOffset: at + Int(length) - 4, as: UInt32.self)
        if swapped { trailing = trailing.byteSwapped }
        return trailing == length ? .block(length: Int(length), swapped: swapped) : .corrupt
    }

    public mutating func next(in bytes: UnsafeRawBufferPointer, final: Bool = true) -> CaptureRecord? {
        while true {
            if resynchronizing {
                guard resynchronize(bytes, final: final) else { return nil }
            }
            let length: Int
            switch framing(bytes, at: offset) {
            case .incomplete:
                guard final, offset < bytes.count else { return nil }
                // A cut last block, unless a plausible block follows: then its length is corrupt.
                cutAt = offset
                resynchronizing = true
                continue
            case .corrupt:
                resynchronizing = true
                continue
            case .block(let blockLength, let swapped):
                length = blockLength
                if bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self) == Self.sectionHeader {
                    isSwapped = swapped
                }
            }
            let block = offset
            offset += length
            if let record = read(bytes, block: block, length: length) { return record }
        }
    }

    /// The record a block holds, nil for a block without one (or unusable: counted).
    private mutating func read(_ bytes: UnsafeRawBufferPointer, block: Int, length: Int) -> CaptureRecord? {
        let type = u32(bytes, block)
        let bodyEnd = block + length - 4
        switch type {
        case Self.sectionHeader:
            // Version 1.x; a new section forgets the previous one's interfaces.
            guard length >= 28, u16(bytes, block + 12) == 1 else { return unusable(length) }
            interfaces.removeAll(keepingCapacity: true)
            sections += 1
            return nil
        case Self.interfaceDescription:
            guard length >= 20 else { return unusable(length) }
            var interface = Interface(linkType: UInt32(u16(bytes, block + 8)), snapshotLength: u32(bytes, block + 12))
            var option = block + 16
            while option + 4 <= bodyEnd {
                let code = u16(bytes, option)
                let optionLength = Int(u16(bytes, option + 2))
                guard code != 0, option + 4 + optionLength <= bodyEnd else { break }
                switch (code, optionLength) {
                case (9, 1):  // if_tsresol
                    let resolution = bytes[option + 4]
                    interface.resolutionIsPowerOfTwo = resolution & 0x80 != 0
                    interface.resolutionExponent = resolution & 0x7F
                case (14, 8):  // if_tsoffset
                    // One 64-bit value in the section's byte order.
                    let value = bytes.loadUnaligned(fromByteOffset: option + 4, as: Int64.self)
                    interface.offsetSeconds = isSwapped ? value.byteSwapped : value
                default:
                    break
                }
                option += 4 + (optionLength + 3) & ~3
            }
            interfaces.append(interface)
            return nil
        case Self.enhancedPacket, Self.packet:
            guard length >= 32 else { return unusable(length) }
            let interfaceID = type == Self.packet ? Int(u16(bytes, block + 8)) : Int(u32(bytes, block + 8))
            let captured = Int(u32(bytes, block + 20))
            let wire = Int(u32(bytes, block + 24))
            guard interfaceID < interfaces.count, captured <= bodyEnd - (block + 28) else { return unusable(length) }
            let interface = interfaces[interfaceID]
            let units = UInt64(u32(bytes, block + 12)) << 32 | UInt64(u32(bytes, block + 16))
            guard let timestamp = interface.nanoseconds(units: units) else { return unusable(length) }
            lastTimestamp = timestamp
            return CaptureRecord(
                dataOffset: block + 28, capturedLength: captured, wireLength: max(wire, captured),
                timestampNanoseconds: timestamp, linkType: interface.linkType)
        case Self.simplePacket:
            guard length >= 16, let interface = interfaces.first else { return unusable(length) }
            let wire = Int(u32(bytes, block + 8))
            var captured = min(wire, bodyEnd - (block + 12))
            if interface.snapshotLength > 0 { captured = min(captured, Int(interface.snapshotLength)) }
            return CaptureRecord(
                dataOffset: block + 12, capturedLength: captured, wireLength: max(wire, captured),
                timestampNanoseconds: lastTimestamp, linkType: interface.linkType)
        default:
            return nil
        }
    }

    private mutating func unusable(_ length: Int) -> CaptureRecord? {
        unusableBlocks += 1
        corruptBytes += length
        return nil
    }

    /// Moves `offset` forward, 4 bytes at a time, to the next plausible block, counting the
    /// bytes passed as corrupt. Returns false when the window ends first.
    private mutating func resynchronize(_ bytes: UnsafeRawBufferPointer, final: Bool) -> Bool {
        let start = offset
        var candidate = resumeAtOffset ? offset : offset + 4
        resumeAtOffset = false
        defer {
            if offset == bytes.count, final, cutAt == start {
                truncatedBytes += offset - start
            } else {
                corruptBytes += offset - start
            }
            cutAt = nil
        }
        while candidate + 12 <= bytes.count {
            var type = bytes.loadUnaligned(fromByteOffset: candidate, as: UInt32.self)
            if isSwapped, type != Self.sectionHeader { type = type.byteSwapped }
            if Self.knownTypes.contains(type) {
                switch framing(bytes, at: candidate) {
                case .block:
                    offset = candidate
                    resynchronizing = false
                    return true
                case .incomplete where !final:
                    offset = candidate
                    resumeAtOffset = true
                    return false
                case .incomplete, .corrupt:
                    break
                }
            }
            candidate += 4
        }
        if final {
            offset = bytes.count
        } else {
            // The candidates from here on are not examined yet.
            offset = min(candidate, bytes.count)
            resumeAtOffset = true
        }
        return false
    }
}
