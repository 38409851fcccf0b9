#if canImport(Glibc)
import Glibc
#endif

/// An owned file descriptor, closed when the last reference goes away or by `close()`.
public final class FileDescriptor: @unchecked Sendable {
    public private(set) var rawValue: Int32

    public init(adopting rawValue: Int32) { self.rawValue = rawValue }

    deinit { if rawValue >= 0 { _ = Glibc.close(rawValue) } }

    /// Closes the descriptor. The corresponding C function is `close(2)`; EINTR is not retried
    /// (on Linux the descriptor is gone either way).
    public func close() throws(SystemError) {
        guard rawValue >= 0 else { return }
        let fd = rawValue
        rawValue = -1
        if Glibc.close(fd) != 0 { throw SystemError(call: "close", errno: Glibc.errno) }
    }
}

/// File operations the storage layer needs, as thin typed wrappers.
public enum FileSystem {
    /// Creates (or truncates) `path` for writing with `mode`. The corresponding C function is
    /// `open(2)` with `O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC`.
    public static func createForWriting(_ path: String, mode: mode_t = 0o640) throws(SystemError) -> FileDescriptor {
        let fd = try Syscall.retrying("open", path) { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode) }
        return FileDescriptor(adopting: fd)
    }

    /// Opens `path` read-only. The corresponding C function is `open(2)`.
    public static func openForReading(_ path: String) throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try Syscall.retrying("open", path) { open(path, O_RDONLY | O_CLOEXEC) })
    }

    /// Opens `path` for reading and writing without truncating it.
    public static func openForUpdate(_ path: String) throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try Syscall.retrying("open", path) { open(path, O_RDWR | O_CLOEXEC) })
    }

    /// Opens `path` for reading and writing without following a symbolic link in its last
    /// component (ELOOP) and without blocking on a FIFO: for files found in a directory that
    /// someone else may also write. The corresponding C function is `open(2)` with
    /// `O_RDWR|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC`.
    public static func openForUpdateNotFollowing(_ path: String) throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try Syscall.retrying("open", path) { open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) })
    }

    /// What `stat(2)` tells about a file.
    public struct Status: Sendable, Equatable {
        public var isRegularFile: Bool
        public var isDirectory: Bool
        public var owner: UInt32
        /// Names the file has; 0 once it was removed while still open.
        public var linkCount: Int
        public var size: Int
    }

    private static func status(_ info: stat) -> Status {
        Status(
            isRegularFile: info.st_mode & S_IFMT == S_IFREG, isDirectory: info.st_mode & S_IFMT == S_IFDIR,
            owner: info.st_uid, linkCount: Int(info.st_nlink), size: Int(info.st_size))
    }

    /// The status of an open file. The corresponding C function is `fstat(2)`.
    public static func status(of fd: FileDescriptor, path: String) throws(SystemError) -> Status {
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw SystemError(call: "fstat", subject: path, errno: Glibc.errno) }
        return status(info)
    }

    /// The status of `path` itself, a symbolic link not followed; nil when it does not exist.
    /// The corresponding C function is `lstat(2)`.
    public static func linkStatus(_ path: String) -> Status? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return status(info)
    }

    /// The effective user ID of this process. The corresponding C function is `geteuid(2)`.
    public static var effectiveUserID: UInt32 { geteuid() }

    /// Checks that files can be created in `directory` (made first, with any missing parents):
    /// creates, writes and removes a small probe file. Throws what failed, naming the path.
    public static func checkWritable(directory: String, mode: mode_t = 0o750) throws(SystemError) {
        try createDirectory(directory, mode: mode)
        let probe = directory + "/.span-collector-probe-\(getpid())"
        let fd = FileDescriptor(
            adopting: try Syscall.retrying("open", probe) { open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) })
        defer { _ = unlink(probe) }
        var byte: UInt8 = 0
        _ = try Syscall.retrying("write", probe) { Glibc.write(fd.rawValue, &byte, 1) }
        try fd.close()
    }

    /// Writes all of `bytes`, looping over short writes. The corresponding C function is
    /// `write(2)`. On failure the file may hold a prefix of `bytes`.
    public static func writeAll(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, path: String) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let written = try Syscall.retrying("write", path) {
                Glibc.write(fd.rawValue, bytes.baseAddress! + done, bytes.count - done)
            }
            if written == 0 { throw SystemError(call: "write", subject: path, errno: EIO) }
            done += written
        }
    }

    /// Cuts the file to `length` bytes. The corresponding C function is `ftruncate(2)`.
    public static func truncate(_ fd: FileDescriptor, to length: Int, path: String) throws(SystemError) {
        _ = try Syscall.retrying("ftruncate", path) { ftruncate(fd.rawValue, off_t(length)) }
    }

    /// The corresponding C function is `rename(2)`.
    public static func rename(_ from: String, to: String) throws(SystemError) {
        _ = try Syscall.retrying("rename", from) { Glibc.rename(from, to) }
    }

    /// Removes a file. The corresponding C function is `unlink(2)`.
    public static func remove(_ path: String) throws(SystemError) {
        _ = try Syscall.retrying("unlink", path) { unlink(path) }
    }

    /// Creates a directory and any missing parents; an existing directory is fine.
    public static func createDirectory(_ path: String, mode: mode_t = 0o750) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, mode) != 0 {
                let error = Glibc.errno
                if error != EEXIST { throw SystemError(call: "mkdir", subject: prefix, errno: error) }
                guard isDirectory(prefix) else { throw SystemError(call: "mkdir", subject: prefix, errno: ENOTDIR) }
            }
            prefix += "/"
        }
    }

    /// Removes an empty directory. The corresponding C function is `rmdir(2)`.
    public static func removeDirectory(_ path: String) throws(SystemError) {
        guard rmdir(path) == 0 else { throw SystemError(call: "rmdir", subject: path, errno: Glibc.errno) }
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// The size of a file in bytes, or nil when it does not exist.
    public static func size(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    /// Names in a directory (not `.`/`..`). The corresponding C functions are `opendir(3)` and
    /// `readdir(3)`.
    public static func contents(ofDirectory path: String) throws(SystemError) -> [String] {
        guard let directory = opendir(path) else { throw SystemError(call: "opendir", subject: path, errno: Glibc.errno) }
        defer { closedir(directory) }
        var names: [String] = []
        // A readdir record is only d_reclen bytes, often fewer than `struct dirent`: read the
        // name in place up to its NUL, never a copy of the struct or of all of d_name (that
        // reads past the end of glibc's buffer for the last record; AddressSanitizer saw it).
        let nameOffset = MemoryLayout<dirent>.offset(of: \.d_name)!
        while let entry = readdir(directory) {
            let name = String(cString: UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Whether a descriptor is a terminal (for progress output).
    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }
}
