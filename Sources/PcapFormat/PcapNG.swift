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
    /// LINKTYPE_RAW: an IPv4 or IPv6 packet, told apart by its version nibble (ERSPAN III FT = 2).
    public static let linkTypeRawIP: UInt16 = 101

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

/// The options of one Enhanced Packet Block, sized before anything is written (the record length
/// decides rotation): `epb_flags` when non-zero, `opt_comment` when non-empty, then
/// `opt_endofopt` when there is any option. Empty for classic pcap and for frames without
/// metadata.
public struct RecordOptions: Sendable, Equatable {
    public var flags: UInt32
    public var commentLength: Int
    /// Bytes the options take in the block, padding and end-of-options included.
    public var length: Int

    @inlinable
    public static var none: RecordOptions { RecordOptions(flags: 0, commentLength: 0) }

    @inlinable
    public init(flags: UInt32, commentLength: Int) {
        self.flags = flags
        self.commentLength = commentLength
        var length = 0
        if flags != 0 { length += 8 }
        if commentLength > 0 { length += 4 + (commentLength + 3) & ~3 }
        if length > 0 { length += 4 }
        self.length = length
    }

    /// The options `annotations` make.
    @inlinable
    public init(_ annotations: RecordAnnotations) {
        if annotations.transport == .none {
            self = .none
        } else {
            self.init(flags: annotations.flags, commentLength: annotations.commentLength)
        }
    }
}

/// Enhanced Packet Block: 28 bytes of header, the data padded to 32 bits, the options, the
/// trailing length.
public enum EnhancedPacketBlock {
    public static let type: UInt32 = 6
    public static let headerLength = 28
    static let optionComment: UInt16 = 1
    static let optionFlags: UInt16 = 2

    @inlinable
    public static func length(capturedLength: Int, optionsLength: Int = 0) -> Int {
        headerLength + (capturedLength + 3) & ~3 + optionsLength + 4
    }

    @inlinable
    static func writeHeader(
        to destination: UnsafeMutableRawPointer, interfaceID: UInt32 = 0, timestampNanoseconds: UInt64, capturedLength: Int,
        wireLength: Int, optionsLength: Int = 0
    ) {
        let total = UInt32(truncatingIfNeeded: length(capturedLength: capturedLength, optionsLength: optionsLength))
        destination.store32(type, at: 0)
        destination.store32(total, at: 4)
        destination.store32(interfaceID, at: 8)
        destination.store32(UInt32(truncatingIfNeeded: timestampNanoseconds >> 32), at: 12)
        destination.store32(UInt32(truncatingIfNeeded: timestampNanoseconds), at: 16)
        destination.store32(UInt32(truncatingIfNeeded: capturedLength), at: 20)
        destination.store32(UInt32(truncatingIfNeeded: wireLength), at: 24)
    }

    /// The data padding, the options of `annotations` (sized as `options`) and the trailing
    /// length, after the data of the block that starts at `destination`.
    @usableFromInline
    static func writeTrailer(
        to destination: UnsafeMutableRawPointer, capturedLength: Int, options: RecordOptions = .none,
        annotations: RecordAnnotations = .none
    ) {
        let padded = (capturedLength + 3) & ~3
        let dataEnd = destination + headerLength + capturedLength
        for index in 0..<(padded - capturedLength) { dataEnd.storeBytes(of: 0, toByteOffset: index, as: UInt8.self) }
        var offset = headerLength + padded
        if options.length > 0 {
            if options.flags != 0 {
                destination.store16(optionFlags, at: offset)
                destination.store16(4, at: offset + 2)
                destination.store32(options.flags, at: offset + 4)
                offset += 8
            }
            if options.commentLength > 0 {
                destination.store16(optionComment, at: offset)
                destination.store16(UInt16(truncatingIfNeeded: options.commentLength), at: offset + 2)
                let written = annotations.writeComment(to: destination + offset + 4)
                precondition(written == options.commentLength, "comment length changed between sizing and writing")
                let paddedComment = (written + 3) & ~3
                for index in written..<paddedComment {
                    destination.storeBytes(of: 0, toByteOffset: offset + 4 + index, as: UInt8.self)
                }
                offset += 4 + paddedComment
            }
            destination.store32(0, at: offset)  // opt_endofopt
            offset += 4
        }
        let total = UInt32(truncatingIfNeeded: length(capturedLength: capturedLength, optionsLength: options.length))
        destination.store32(total, at: offset)
    }
}

/// Interface Statistics Block (type 5) for one interface of a file: `isb_starttime` (2),
/// `isb_endtime` (3), `isb_ifrecv` (4), `isb_ifdrop` (5), `isb_usrdeliv` (8), and, when
/// `sequence` is given, an `opt_comment` with the GRE sequence accounting over the file.
public struct InterfaceStatisticsBlock: Sendable, Equatable {
    public static let type: UInt32 = 5

    public var interfaceID: UInt32
    public var startNanoseconds: UInt64
    public var endNanoseconds: UInt64
    public var received: UInt64
    public var dropped: UInt64
    public var delivered: UInt64
    public var sequence: SequenceStatistics?

    public init(
        interfaceID: UInt32, startNanoseconds: UInt64, endNanoseconds: UInt64, received: UInt64, dropped: UInt64,
        delivered: UInt64, sequence: SequenceStatistics? = nil
    ) {
        self.interfaceID = interfaceID
        self.startNanoseconds = startNanoseconds
        self.endNanoseconds = endNanoseconds
        self.received = received
        self.dropped = dropped
        self.delivered = delivered
        self.sequence = sequence
    }

    /// 24 bytes of block framing and fixed fields, five 12-byte options, the end of options.
    static let fixedLength = 24 + 5 * 12 + 4

    public static func length(commentLength: Int) -> Int {
        fixedLength + (commentLength > 0 ? 4 + (commentLength + 3) & ~3 : 0)
    }

    public var length: Int { Self.length(commentLength: sequence?.commentLength ?? 0) }

    /// The longest block (with the longest sequence comment): what a file must keep free for it.
    public static let maximumLength = length(commentLength: SequenceStatistics.maximumCommentLength)

    /// Writes the block at `destination` (room for `length` bytes); returns its length.
    @discardableResult
    public func write(to destination: UnsafeMutableRawPointer) -> Int {
        let commentLength = sequence?.commentLength ?? 0
        let total = Self.length(commentLength: commentLength)
        destination.store32(Self.type, at: 0)
        destination.store32(UInt32(truncatingIfNeeded: total), at: 4)
        destination.store32(interfaceID, at: 8)
        destination.store32(UInt32(truncatingIfNeeded: endNanoseconds >> 32), at: 12)
        destination.store32(UInt32(truncatingIfNeeded: endNanoseconds), at: 16)
        var offset = 20
        func option64(_ code: UInt16, high: UInt32, low: UInt32) {
            destination.store16(code, at: offset)
            destination.store16(8, at: offset + 2)
            destination.store32(high, at: offset + 4)
            destination.store32(low, at: offset + 8)
            offset += 12
        }
        func counter(_ code: UInt16, _ value: UInt64) {
            destination.store16(code, at: offset)
            destination.store16(8, at: offset + 2)
            destination.store64(value, at: offset + 4)
            offset += 12
        }
        // Timestamps as in an Enhanced Packet Block: high word, then low word (if_tsresol 9).
        option64(2, high: UInt32(truncatingIfNeeded: startNanoseconds >> 32), low: UInt32(truncatingIfNeeded: startNanoseconds))
        option64(3, high: UInt32(truncatingIfNeeded: endNanoseconds >> 32), low: UInt32(truncatingIfNeeded: endNanoseconds))
        counter(4, received)  // isb_ifrecv
        counter(5, dropped)  // isb_ifdrop
        counter(8, delivered)  // isb_usrdeliv
        if let sequence, commentLength > 0 {
            destination.store16(1, at: offset)
            destination.store16(UInt16(truncatingIfNeeded: commentLength), at: offset + 2)
            var writer = ByteWriter(base: destination + offset + 4)
            sequence.writeComment(to: &writer)
            let padded = (commentLength + 3) & ~3
            for index in commentLength..<padded {
                destination.storeBytes(of: 0, toByteOffset: offset + 4 + index, as: UInt8.self)
            }
            offset += 4 + padded
        }
        destination.store32(0, at: offset)  // opt_endofopt
        offset += 4
        destination.store32(UInt32(truncatingIfNeeded: total), at: offset)
        return total
    }

    /// The block as bytes (tests, tools; the recorder writes in place).
    public var bytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: length)
        bytes.withUnsafeMutableBytes { _ = write(to: $0.baseAddress!) }
        return bytes
    }
}
