import CFileInput

#if canImport(Glibc)
import Glibc
#endif

/// One replay input, opened exactly once: a regular uncompressed file is mapped (`mapped`: the
/// fast path, guarded against the file shrinking); everything else, a FIFO, standard input
/// (`-`) or a gzip/zstd-compressed file (told by its magic, never by its name), is read as a
/// stream with read(2) into a reusable buffer, decompressed on the way (concatenated gzip
/// members and zstd frames included). A directory is refused.
///
/// A stream's unread bytes are `window`; the reader consumes records from its front and calls
/// `refill(dropping:)` for more.
public final class CaptureInput {
    public enum Compression: String, Sendable {
        case none
        case gzip
        case zstd
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public let path: String
    public private(set) var compression = Compression.none
    /// The mapping, for a regular uncompressed file; nil for a stream.
    public let mapped: MappedFile?
    /// The size of the file on disk when known (progress), else 0.
    public let fileSize: Int

    private let descriptor: FileDescriptor
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    /// Compressed bytes read, not yet decompressed.
    private var raw: UnsafeMutableRawBufferPointer
    private var rawStart = 0
    private var rawEnd = 0
    private var rawEnded = false
    private var decompressor: OpaquePointer?
    /// Bytes read from the descriptor so far (progress).
    public private(set) var bytesRead = 0

    /// The largest window a record can need: a 16 MiB pcapng block, twice for headroom.
    static let maximumWindow = 32 << 20

    public init(path: String) throws(Failure) {
        self.path = path
        let fd: FileDescriptor
        if path == "-" {
            let copy = dup(0)
            guard copy >= 0 else { throw Failure("standard input: \(SystemError(call: "dup", errno: Glibc.errno))") }
            fd = FileDescriptor(adopting: copy)
        } else {
            do {
                fd = try FileSystem.openForReading(path)
            } catch {
                throw Failure(error.description)
            }
        }
        descriptor = fd
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else {
            throw Failure(SystemError(call: "fstat", subject: path, errno: Glibc.errno).description)
        }
        let type = info.st_mode & S_IFMT
        guard type != S_IFDIR else { throw Failure("\(path) is a directory, not a capture file") }
        buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        raw = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        if type == S_IFREG {
            fileSize = Int(info.st_size)
            var magic: UInt32 = 0
            let count = withUnsafeMutableBytes(of: &magic) { pread(fd.rawValue, $0.baseAddress, 4, 0) }
            let kind = count == 4 ? Self.compression(magic: magic) : Compression.none
            if kind == .none {
                do {
                    mapped = try MappedFile(descriptor: fd, path: path)
                } catch {
                    throw Failure(error.description)
                }
                return
            }
        } else {
            fileSize = 0
        }
        mapped = nil
        buffer = .allocate(byteCount: 1 << 20, alignment: 16)
        raw = .allocate(byteCount: 256 << 10, alignment: 16)
        // The first bytes tell a compressed stream from a plain one.
        while rawEnd < 4, !rawEnded { try readRaw() }
        var magic: UInt32 = 0
        if rawEnd >= 4 { magic = UnsafeRawPointer(raw.baseAddress!).loadUnaligned(as: UInt32.self) }
        compression = rawEnd >= 4 ? Self.compression(magic: magic) : .none
        switch compression {
        case .none:
            // Plain stream: what was read is the start of the window.
            buffer.baseAddress!.copyMemory(from: raw.baseAddress!, byteCount: rawEnd)
            end = rawEnd
            rawStart = rawEnd
        case .gzip, .zstd:
            guard let created = CFileInput_decompressorCreate(compression == .gzip ? Int32(CFileInput_gzip) : Int32(CFileInput_zstd)) else {
                throw Failure("\(path): cannot create a \(compression.rawValue) decompressor")
            }
            decompressor = created
        }
    }

    deinit {
        if let decompressor { CFileInput_decompressorFree(decompressor) }
        if buffer.baseAddress != nil { buffer.deallocate() }
        if raw.baseAddress != nil { raw.deallocate() }
    }

    /// gzip (1f 8b) or zstd (28 b5 2f fd) from the first four bytes, in file order.
    public static func compression(magic: UInt32) -> Compression {
        let bytes = UInt32(littleEndian: magic)
        if bytes & 0xFFFF == 0x8B1F { return .gzip }
        if bytes == 0xFD2F_B528 { return .zstd }
        return .none
    }

    /// The stream's unread bytes (empty for a mapped file).
    public var window: UnsafeRawBufferPointer {
        guard let base = buffer.baseAddress else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + start, count: end - start)
    }

    /// Drops the first `consumed` bytes of the window and appends more of the stream. Returns
    /// false at the end of the stream (nothing was appended). Throws on a read error, a corrupt
    /// or cut compressed stream, or a window that would exceed `maximumWindow`.
    public func refill(dropping consumed: Int) throws(Failure) -> Bool {
        start += consumed
        if start == end {
            start = 0
            end = 0
        } else if start > 0 {
            (buffer.baseAddress! + 0).copyMemory(from: buffer.baseAddress! + start, byteCount: end - start)
            end -= start
            start = 0
        }
        if end == buffer.count {
            guard buffer.count < Self.maximumWindow else { throw Failure("\(path): a record larger than \(Self.maximumWindow) bytes") }
            let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count * 2, alignment: 16)
            grown.baseAddress!.copyMemory(from: buffer.baseAddress!, byteCount: end)
            buffer.deallocate()
            buffer = grown
        }
        guard let decompressor else {
            let count = try read(into: buffer.baseAddress! + end, count: buffer.count - end)
            end += count
            return count > 0
        }
        while true {
            if rawStart < rawEnd {
                var used = 0
                let produced = CFileInput_decompress(
                    decompressor, raw.baseAddress! + rawStart, rawEnd - rawStart, &used, buffer.baseAddress! + end, buffer.count - end)
                guard produced >= 0 else {
                    throw Failure("\(path): corrupt \(compression.rawValue) data (\(String(cString: CFileInput_decompressorError(decompressor))))")
                }
                rawStart += used
                end += produced
                if produced > 0 { return true }
                if used > 0 { continue }
            }
            if rawEnded {
                guard CFileInput_decompressorAtBoundary(decompressor) != 0 else {
                    throw Failure("\(path): the \(compression.rawValue) stream is cut (it ends inside a compressed block)")
                }
                return false
            }
            try readRaw()
        }
    }

    /// Reads more compressed input into `raw`, after what is still unused.
    private func readRaw() throws(Failure) {
        if rawStart > 0 {
            raw.baseAddress!.copyMemory(from: raw.baseAddress! + rawStart, byteCount: rawEnd - rawStart)
            rawEnd -= rawStart
            rawStart = 0
        }
        let count = try read(into: raw.baseAddress! + rawEnd, count: raw.count - rawEnd)
        rawEnd += count
        if count == 0 { rawEnded = true }
    }

    private func read(into destination: UnsafeMutableRawPointer, count: Int) throws(Failure) -> Int {
        while true {
            let result = Glibc.read(descriptor.rawValue, destination, count)
            if result >= 0 {
                bytesRead += result
                return result
            }
            if Glibc.errno == EINTR { continue }
            throw Failure(SystemError(call: "read", subject: path, errno: Glibc.errno).description)
        }
    }
}
