#if canImport(Glibc)
import Glibc
#endif

extension FileSystem {
    /// Free and total bytes of the filesystem holding `path`, as an unprivileged user sees
    /// them (f_bavail). The corresponding C function is `statvfs(3)`.
    public static func space(of path: String) throws(SystemError) -> (available: Int, total: Int) {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { throw SystemError(call: "statvfs", subject: path, errno: Glibc.errno) }
        return (Int(info.f_bavail) * Int(info.f_frsize), Int(info.f_blocks) * Int(info.f_frsize))
    }

    /// Size and modification time (ns since the epoch) of a regular file; nil when it is not one.
    /// The corresponding C function is `stat(2)`.
    public static func fileInfo(_ path: String) -> (size: Int, modifiedNanoseconds: UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return (Int(info.st_size), UInt64(info.st_mtim.tv_sec) * 1_000_000_000 + UInt64(info.st_mtim.tv_nsec))
    }
}
