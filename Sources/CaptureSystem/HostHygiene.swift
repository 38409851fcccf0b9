import CLinuxPacket

#if canImport(Glibc)
import Glibc
#endif

/// Sockets held only so the kernel does not answer mirror traffic addressed to this host with
/// ICMP unreachables: a raw socket for protocol 47 (IPv4 and IPv6) stops "protocol
/// unreachable", a UDP socket on each VXLAN, VXLAN-GPE and Geneve port stops "port
/// unreachable". Each has a drop-all filter and a tiny buffer, so nothing queues. (If the
/// kernel's ip_gre module is loaded it answers GRE for tunnels it does not know with "port
/// unreachable" regardless; see docs/OPERATIONS.md.)
public final class HostHygiene: @unchecked Sendable {
    private var descriptors: [FileDescriptor] = []
    /// What could not be opened (e.g. a port already taken), for the log.
    public private(set) var problems: [SystemError] = []

    /// `udpPorts`: every UDP port a mirror transport arrives on.
    public init(udpPorts: [UInt16]) {
        open(family: AF_INET, type: Int32(SOCK_RAW.rawValue), protocol: Int32(IPPROTO_GRE), port: nil)
        open(family: AF_INET6, type: Int32(SOCK_RAW.rawValue), protocol: Int32(IPPROTO_GRE), port: nil)
        for port in udpPorts {
            if !open(family: AF_INET6, type: Int32(SOCK_DGRAM.rawValue), protocol: Int32(IPPROTO_UDP), port: port) {
                open(family: AF_INET, type: Int32(SOCK_DGRAM.rawValue), protocol: Int32(IPPROTO_UDP), port: port)
            }
        }
    }

    public var openSockets: Int { descriptors.count }

    @discardableResult
    private func open(family: Int32, type: Int32, protocol proto: Int32, port: UInt16?) -> Bool {
        let fd = socket(family, type | Int32(SOCK_CLOEXEC.rawValue), proto)
        guard fd >= 0 else {
            problems.append(SystemError(call: "socket", subject: "protocol \(proto)", errno: Glibc.errno))
            return false
        }
        let descriptor = FileDescriptor(adopting: fd)
        var small: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        BPFProgram.dropAll.instructions.withUnsafeBufferPointer { program in
            _ = CLinuxPacket_attachFilter(fd, program.baseAddress, UInt16(program.count))
        }
        if let port {
            var zero: Int32 = 0
            var result: Int32
            if family == AF_INET6 {
                _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = port.bigEndian
                result = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                }
            } else {
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                result = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            guard result == 0 else {
                problems.append(SystemError(call: "bind", subject: "UDP port \(port)", errno: Glibc.errno))
                return false
            }
        }
        descriptors.append(descriptor)
        return true
    }
}
