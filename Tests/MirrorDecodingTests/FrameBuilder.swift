// A tiny hand-written frame builder for unit tests. The fixtures under Tests/Fixtures come
// from scapy (an independent generator); these frames pin single fields and edge cases.

func hex(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }
    var bytes: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        bytes.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

enum Frames {
    /// An inner Ethernet/IPv4/UDP frame of `payload` bytes (a valid IPv4 total length).
    static func inner(payload: Int = 8) -> [UInt8] {
        let ipLength = 20 + 8 + payload
        var frame = hex("020000000002 020000000001 0800")
        frame += [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xFF), 0, 1, 0, 0, 64, 17, 0, 0]
        frame += [192, 0, 2, 1, 192, 0, 2, 2]
        frame += [0x03, 0xE8, 0x07, 0xD0, UInt8((8 + payload) >> 8), UInt8((8 + payload) & 0xFF), 0, 0]
        frame += (0..<payload).map { UInt8(truncatingIfNeeded: $0) }
        return frame
    }

    /// Ethernet + IPv4 (198.51.100.1 → .2, protocol) around `payload`, plus `trailer` bytes
    /// after the datagram (padding or an outer FCS).
    static func ipv4(protocol proto: UInt8, _ payload: [UInt8], trailer: [UInt8] = [], tags: [[UInt8]] = []) -> [UInt8] {
        let total = 20 + payload.count
        var frame = hex("0200000000bb 0200000000aa")
        for tag in tags { frame += tag }
        frame += [0x08, 0x00]
        frame += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0x40, 0, 64, proto, 0, 0]
        frame += [198, 51, 100, 1, 198, 51, 100, 2]
        return frame + payload + trailer
    }

    /// Ethernet + IPv6 (2001:db8::1 → ::2) with optional extension headers before `payload`.
    static func ipv6(next: UInt8, extensions: [UInt8] = [], _ payload: [UInt8]) -> [UInt8] {
        let length = extensions.count + payload.count
        var frame = hex("0200000000bb 0200000000aa 86dd")
        frame += [0x60, 0, 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), next, 64]
        frame += hex("20010db8000000000000000000000001 20010db8000000000000000000000002")
        return frame + extensions + payload
    }
}
