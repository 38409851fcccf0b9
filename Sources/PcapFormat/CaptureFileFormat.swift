/// The two output formats. Both are written in host byte order, as libpcap and Wireshark do;
/// readers detect the order from the magic.
///
/// - pcap: the nanosecond-resolution classic format (magic 0xA1B23C4D), one link type per file.
/// - pcapng: a Section Header Block naming the collector, one Interface Description Block per
///   link type carrying the session name and exporter (`if_tsresol` = 9, nanoseconds), an
///   Enhanced Packet Block per frame with the transport's metadata as options
///   (`RecordAnnotations`), and Interface Statistics Blocks at the end.
public enum CaptureFileFormat: String, Sendable, CaseIterable {
    case pcap
    case pcapng

    /// The file name extension, without the dot.
    public var fileExtension: String { rawValue }

    /// Bytes a record of `capturedLength` data bytes takes in the file (with `options`, which
    /// only pcapng has: see `options(for:)`).
    @inlinable
    public func recordLength(capturedLength: Int, options: RecordOptions = .none) -> Int {
        switch self {
        case .pcap: PcapRecord.headerLength + capturedLength
        case .pcapng: EnhancedPacketBlock.length(capturedLength: capturedLength, optionsLength: options.length)
        }
    }

    /// The options a record with `annotations` carries: none in classic pcap.
    @inline(__always)
    public func options(for annotations: RecordAnnotations) -> RecordOptions {
        self == .pcapng ? RecordOptions(annotations) : .none
    }

    /// The largest options a record can carry in this format.
    public var maximumOptions: RecordOptions {
        self == .pcapng ? RecordOptions(flags: 1, commentLength: RecordAnnotations.maximumCommentLength) : .none
    }

    /// The bytes that open a file: the pcap file header, or SHB + IDB.
    public func fileHeader(linkType: UInt32, interfaceName: String, interfaceDescription: String) -> [UInt8] {
        switch self {
        case .pcap:
            return PcapFileHeader.bytes(linkType: linkType)
        case .pcapng:
            return SectionHeaderBlock.bytes(application: SpanCollectorVersion.application)
                + InterfaceDescriptionBlock.bytes(
                    linkType: UInt16(truncatingIfNeeded: linkType), name: interfaceName, description: interfaceDescription)
        }
    }

    /// Writes a record's framing before the data at `destination`; returns the data offset.
    /// `interfaceID` and `options` only matter to pcapng.
    @inlinable
    public func writeRecordPrefix(
        to destination: UnsafeMutableRawPointer, interfaceID: UInt32 = 0, timestampNanoseconds: UInt64, capturedLength: Int,
        wireLength: Int, options: RecordOptions = .none
    ) -> Int {
        switch self {
        case .pcap:
            PcapRecord.writeHeader(
                to: destination, timestampNanoseconds: timestampNanoseconds, capturedLength: capturedLength,
                wireLength: wireLength)
            return PcapRecord.headerLength
        case .pcapng:
            EnhancedPacketBlock.writeHeader(
                to: destination, interfaceID: interfaceID, timestampNanoseconds: timestampNanoseconds,
                capturedLength: capturedLength, wireLength: wireLength, optionsLength: options.length)
            return EnhancedPacketBlock.headerLength
        }
    }

    /// Writes what follows the data (pcapng padding, options and trailing length). `options`
    /// must be `options(for: annotations)`.
    @inlinable
    public func writeRecordSuffix(
        to destination: UnsafeMutableRawPointer, capturedLength: Int, options: RecordOptions = .none,
        annotations: RecordAnnotations = .none
    ) {
        if self == .pcapng {
            EnhancedPacketBlock.writeTrailer(
                to: destination, capturedLength: capturedLength, options: options, annotations: annotations)
        }
    }
}
