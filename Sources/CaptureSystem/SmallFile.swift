#if canImport(Glibc)
import Glibc
#endif

/// Reading a small regular file whole (the configuration file), refusing anything else before
/// reading a byte: a device such as /dev/zero never ends, a FIFO may block forever, a huge
/// file is a mistaken path.
public enum SmallFile {
    public enum Failure: Error, Sendable, Equatable {
        case notFound
        case isDirectory
        /// Not a regular file: what it is ("a character device", "a FIFO", ...).
        case notRegular(kind: String)
        case tooLarge(bytes: Int, limit: Int)
        case cannotRead(SystemError)
    }

    /// The bytes of the regular file at `path`, at most `limit` of them.
    public static func read(_ path: String, limit: Int) throws(Failure) -> [UInt8] {
        // O_NONBLOCK: opening a FIFO without a writer must not wait; fstat decides the rest.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            let error = SystemError(call: "open", subject: path, errno: errno)
            throw error.isNotFound ? .notFound : .cannotRead(error)
        }
        let descriptor = FileDescriptor(adopting: fd)
        var status = stat()
        guard fstat(descriptor.rawValue, &status) == 0 else { throw .cannotRead(SystemError(call: "fstat", subject: path, errno: errno)) }
        switch status.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw .isDirectory
        case S_IFCHR: throw .notRegular(kind: "a character device")
        case S_IFBLK: throw .notRegular(kind: "a block device")
        case S_IFIFO: throw .notRegular(kind: "a FIFO")
        case S_IFSOCK: throw .notRegular(kind: "a socket")
        default: throw .notRegular(kind: "not a regular file")
        }
        guard Int(status.st_size) <= limit else { throw .tooLarge(bytes: Int(status.st_size), limit: limit) }
        // Read at most limit + 1 bytes: a file growing meanwhile is still refused, never read on.
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { Glibc.read(descriptor.rawValue, $0.baseAddress! + count, $0.count - count) }
            if got == 0 { break }
            if got < 0 {
                if errno == EINTR { continue }
                throw .cannotRead(SystemError(call: "read", subject: path, errno: errno))
            }
            count += got
        }
        guard count <= limit else { throw .tooLarge(bytes: count, limit: limit) }
        return Array(bytes[..<count])
    }
}
