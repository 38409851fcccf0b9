import CLinuxPacket

#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket for the loopback status endpoint, and the client side `stats` uses.
/// Blocking sockets with timeouts: one request at a time is all a scrape needs.
public final class TCPListener: @unchecked Sendable {
    private let socket: FileDescriptor
    public let address: String

    /// Listens on `host:port` (IPv4 or bracketed IPv6, e.g. `127.0.0.1:9477`, `[::1]:9477`).
    public init(listenOn address: String) throws(SystemError) {
        self.address = address
        guard let endpoint = Endpoint(address) else { throw SystemError(call: "listen", subject: address, errno: EINVAL) }
        let fd = try Syscall.retrying("socket", address) { Glibc.socket(endpoint.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        socket = FileDescriptor(adopting: fd)
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = endpoint.withSockaddr { bind(fd, $0, $1) }
        guard bound == 0 else { throw SystemError(call: "bind", subject: address, errno: Glibc.errno) }
        guard listen(fd, 16) == 0 else { throw SystemError(call: "listen", subject: address, errno: Glibc.errno) }
    }

    /// Times `accept` found no descriptor (or memory) for a connection. The connection stays
    /// queued, so poll reports it again at once: each such failure waits 100 ms instead of
    /// spinning. Read and written by the accepting thread only.
    public private(set) var descriptorShortages = 0

    /// Waits up to `milliseconds` for a connection; nil on timeout or when the process has no
    /// descriptor left for it (then after a 100 ms pause; see `descriptorShortages`).
    public func accept(timeoutMilliseconds: Int32) -> TCPConnection? {
        var descriptor = pollfd(fd: socket.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, timeoutMilliseconds) > 0 else { return nil }
        let fd = Glibc.accept(socket.rawValue, nil, nil)
        guard fd >= 0 else {
            let error = errno
            if error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM {
                descriptorShortages += 1
                usleep(100_000)
            }
            return nil
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return TCPConnection(adopting: fd)
    }
}

/// One accepted or connected TCP stream with a receive/send timeout.
public final class TCPConnection: @unchecked Sendable {
    private let socket: FileDescriptor

    init(adopting fd: Int32) {
        socket = FileDescriptor(adopting: fd)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Connects to `host:port`.
    public convenience init(connectingTo address: String) throws(SystemError) {
        guard let endpoint = Endpoint(address) else { throw SystemError(call: "connect", subject: address, errno: EINVAL) }
        let fd = try Syscall.retrying("socket", address) { Glibc.socket(endpoint.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        self.init(adopting: fd)
        let connected = endpoint.withSockaddr { Glibc.connect(fd, $0, $1) }
        guard connected == 0 else { throw SystemError(call: "connect", subject: address, errno: Glibc.errno) }
    }

    /// Reads until `isComplete` says the bytes so far are enough, the peer closes, `limit`
    /// bytes arrived, or the 2 s timeout passes.
    public func read(limit: Int, isComplete: ([UInt8]) -> Bool = { _ in false }) -> [UInt8] {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while received.count < limit {
            let count = recv(socket.rawValue, &chunk, chunk.count, 0)
            if count <= 0 { break }
            received += chunk[0..<count]
            if isComplete(received) { break }
        }
        return received
    }

    /// Writes all bytes (best effort: a peer that went away is not an error worth raising).
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { return false }
            sent += count
        }
        return true
    }
}

/// `host:port` parsed into a socket address.
struct Endpoint {
    var family: Int32
    var v4 = sockaddr_in()
    var v6 = sockaddr_in6()

    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if inet_pton(AF_INET, host, &v4.sin_addr) == 1 {
            family = AF_INET
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
        } else if inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 {
            family = AF_INET6
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
        } else {
            return nil
        }
    }

    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        if family == AF_INET {
            var address = v4
            return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        var address = v6
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
    }
}
