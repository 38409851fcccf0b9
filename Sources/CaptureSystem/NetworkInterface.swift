import CLinuxPacket

#if canImport(Glibc)
import Glibc
#endif

/// Interface names, indexes and the default route.
public enum NetworkInterface {
    /// The interface index for `name`. The corresponding C function is `if_nametoindex(3)`.
    public static func index(of name: String) throws(SystemError) -> Int32 {
        let index = if_nametoindex(name)
        guard index != 0 else { throw SystemError(call: "if_nametoindex", subject: name, errno: Glibc.errno) }
        return Int32(index)
    }

    /// The ARPHRD_* hardware type from /sys/class/net/NAME/type (1 Ethernet, 772 loopback).
    public static func hardwareType(of name: String) -> Int? {
        guard !name.contains("/"), let text = readText("/sys/class/net/\(name)/type") else { return nil }
        return Int(text.trimmingCharacters(in: " \n"))
    }

    /// The interface of the IPv4 (else IPv6) default route, from /proc/self/net/route and
    /// /proc/self/net/ipv6_route (the same files as /proc/net/..., which a procfs mounted with
    /// subset=pid, as the unit's ProcSubset=pid does, hides); nil when there is none.
    public static func defaultRouteInterface() -> String? {
        if let text = readText("/proc/self/net/route") {
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count > 3, fields[1] == "00000000", let flags = Int(fields[3], radix: 16), flags & 1 != 0 else { continue }
                return String(fields[0])
            }
        }
        if let text = readText("/proc/self/net/ipv6_route") {
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 10, fields[0] == String(repeating: "0", count: 32), fields[1] == "00",
                    fields[9] != "lo"
                else { continue }
                return String(fields[9])
            }
        }
        return nil
    }

    static func readText(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var view = Substring(self)
        while let first = view.first, set.contains(first) { view = view.dropFirst() }
        while let last = view.last, set.contains(last) { view = view.dropLast() }
        return String(view)
    }
}
