#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, on what, and the errno it returned. The only error type
/// this module throws; operators see `description`.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The C function that failed, e.g. `open`.
    public var call: String
    /// The path or object it worked on, when there is one.
    public var subject: String
    public var errno: Int32

    public init(call: String, subject: String = "", errno: Int32) {
        self.call = call
        self.subject = subject
        self.errno = errno
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        return subject.isEmpty ? "\(call): \(reason)" : "\(call) \(subject): \(reason)"
    }

    /// The file or directory does not exist.
    public var isNotFound: Bool { errno == ENOENT }

    /// No space left on the device (or quota exhausted).
    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
}

/// The errno chokepoint for calls that may be interrupted (open, read, write, socket, ...):
/// EINTR is retried in one place and every failure carries the call's name. Calls that cannot
/// return EINTR (mkdir, stat, opendir, mmap) build their `SystemError` where they are made; no
/// libc call happens outside this module.
enum Syscall {
    @inline(__always)
    static func retrying<T: BinaryInteger>(
        _ call: String, _ subject: @autoclosure () -> String = "", _ body: () -> T
    ) throws(SystemError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let error = Glibc.errno
            if error == EINTR { continue }
            throw SystemError(call: call, subject: subject(), errno: error)
        }
    }
}
