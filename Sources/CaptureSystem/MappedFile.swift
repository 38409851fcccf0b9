import CFileInput

#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped read-only, with sequential read-ahead advised. Replay reads regular
/// uncompressed files through this: it avoids libpcap's per-record copy and a read(2) per
/// buffer, which measured as the difference between 1.05x and 1.5x tcpdump's rate (see
/// docs/ARCHITECTURE.md).
///
/// The mapping is guarded against the file shrinking under it: a SIGBUS on its pages does not
/// kill the process (the C handler maps zeroes over the page and raises a flag), and
/// `isIntact(through:)` tells the reader, per record, whether it may use the bytes.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    /// The SIGBUS guard's slot, -1 when unguarded.
    @usableFromInline let guardSlot: Int32

    public convenience init(path: String) throws(SystemError) {
        try self.init(descriptor: try FileSystem.openForReading(path), path: path)
    }

    /// Maps the file open as `fd` (which may be closed afterwards); `path` is for messages.
    public init(descriptor fd: FileDescriptor, path: String) throws(SystemError) {
        self.path = path
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw SystemError(call: "fstat", subject: path, errno: Glibc.errno) }
        let length = Int(info.st_size)
        if length == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            guardSlot = -1
            return
        }
        guard let base = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd.rawValue, 0), base != MAP_FAILED else {
            throw SystemError(call: "mmap", subject: path, errno: Glibc.errno)
        }
        _ = madvise(base, length, MADV_SEQUENTIAL)
        _ = madvise(base, length, MADV_WILLNEED)
        bytes = UnsafeRawBufferPointer(start: base, count: length)
        guardSlot = CFileInput_guardMapping(base, length)
    }

    /// Whether the bytes before `end` can be used: reads the byte at `end - 1` (a fault, if the
    /// file shrank below it, happens now and is caught) and checks that no page of the mapping
    /// has faulted so far. The file shrinks from its end, so when this byte is there, all
    /// before it are.
    @inlinable
    public func isIntact(through end: Int) -> Bool {
        guard let base = bytes.baseAddress, end > 0 else { return CFileInput_mappingFaulted(guardSlot) == 0 }
        return CFileInput_touch(base + (end - 1), guardSlot) != 0
    }

    /// Maps the next `window` bytes from `offset` in one call (MADV_POPULATE_READ, Linux 5.14+)
    /// instead of one page fault per 16 pages as the reader walks them: page-fault handling was
    /// up to 14% of replay time. Ignored where the kernel lacks it.
    public func prefault(from offset: Int, window: Int = 64 << 20) {
        guard let base = bytes.baseAddress, offset < bytes.count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        let length = min(window, bytes.count - start)
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), length, 22)  // MADV_POPULATE_READ
    }

    /// Tells the kernel the bytes before `offset` will not be read again, so a large replay
    /// does not keep the whole file resident.
    public func release(before offset: Int) {
        guard let base = bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = offset / page * page
        if length > 0 { _ = madvise(UnsafeMutableRawPointer(mutating: base), length, MADV_DONTNEED) }
    }

    deinit {
        CFileInput_unguardMapping(guardSlot)
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
