/// One packet record of a capture file: where its data lies in the bytes the reader was given,
/// and what its header says. Readers never copy the data.
public struct CaptureRecord: Sendable {
    public var dataOffset: Int
    public var capturedLength: Int
    public var wireLength: Int
    public var timestampNanoseconds: UInt64
    /// The LINKTYPE_* of the record's interface (classic pcap: the file's).
    public var linkType: UInt32

    @inlinable
    public init(dataOffset: Int, capturedLength: Int, wireLength: Int, timestampNanoseconds: UInt64, linkType: UInt32) {
        self.dataOffset = dataOffset
        self.capturedLength = capturedLength
        self.wireLength = wireLength
        self.timestampNanoseconds = timestampNanoseconds
        self.linkType = linkType
    }

    /// One past the record's last data byte.
    @inline(__always)
    public var dataEnd: Int { dataOffset + capturedLength }
}

/// A capture-file reader (classic pcap or pcapng): a pure parser over a window of the input.
///
/// The window is either the whole file (a mapping; `final` is true) or the unread part of a
/// stream held in a buffer (`final` is false until the stream has ended). `next` returns nil at
/// the end of what the window holds; with `final` false the caller then drops the first
/// `offset` bytes (`discard`), appends more input and calls `next` again. A record is always
/// whole in the window. Corrupt framing is skipped by scanning forward for the next plausible
/// record or block; the bytes skipped are counted in `corruptBytes`, never silently lost.
public protocol CaptureRecordReader {
    /// Where the next record or block starts, in the current window.
    var offset: Int { get }
    /// Bytes skipped as corrupt so far (bad framing, undecodable blocks).
    var corruptBytes: Int { get }
    /// Bytes left at the end of a final window that do not make a whole record (a cut file).
    var truncatedBytes: Int { get }

    /// The next record of `bytes`, or nil when the window holds no further whole record.
    mutating func next(in bytes: UnsafeRawBufferPointer, final: Bool) -> CaptureRecord?

    /// The caller dropped the first `count` bytes (`count <= offset`) of its window.
    mutating func discard(_ count: Int)
}

/// The capture-file formats an input can hold, told apart by their first four bytes.
public enum CaptureFileKind: Sendable, Equatable {
    case classicPcap
    case pcapng

    /// The kind `bytes` (at least 4 of them) starts with, or nil.
    public init?(magic bytes: UnsafeRawBufferPointer) {
        if ClassicPcapReader.recognizes(bytes) {
            self = .classicPcap
        } else if PcapNGReader.recognizes(bytes) {
            self = .pcapng
        } else {
            return nil
        }
    }
}
