/// An IPv4 or IPv6 address as two 64-bit words, cheap to hash and compare on the hot path.
/// IPv4 addresses live in the low 32 bits of `low` with `high == 0` and `isIPv6 == false`.
public struct IPAddress: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64
    public var isIPv6: Bool

    @inlinable
    public init(ipv4 value: UInt32) {
        high = 0
        low = UInt64(value)
        isIPv6 = false
    }

    public init(ipv6High high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
        isIPv6 = true
    }

    /// The unspecified address, used where a transport has no exporter (RSPAN).
    @inlinable
    public static var none: IPAddress { IPAddress(ipv4: 0) }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and an embedded dotted quad).
    public init?(_ text: some StringProtocol) {
        if text.contains(":") {
            guard let words = Self.parseIPv6(Substring(text)) else { return nil }
            var high: UInt64 = 0
            var low: UInt64 = 0
            for i in 0..<4 { high = high << 16 | UInt64(words[i]) }
            for i in 4..<8 { low = low << 16 | UInt64(words[i]) }
            self.init(ipv6High: high, low: low)
        } else {
            guard let value = Self.parseIPv4(Substring(text)) else { return nil }
            self.init(ipv4: value)
        }
    }

    private static func parseIPv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit),
                let octet = UInt32(part), octet <= 255
            else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    private static func parseIPv6(_ text: Substring) -> [UInt16]? {
        let gaps = Array(text.ranges(of: "::"))
        guard gaps.count <= 1 else { return nil }
        let halves = gaps.first.map { [text[..<$0.lowerBound], text[$0.upperBound...]] } ?? [text]
        func groups(_ part: Substring, allowIPv4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, field) in fields.enumerated() {
                if allowIPv4, index == fields.count - 1, field.contains(".") {
                    guard let v4 = parseIPv4(field) else { return nil }
                    result.append(UInt16(v4 >> 16))
                    result.append(UInt16(v4 & 0xFFFF))
                } else {
                    guard (1...4).contains(field.count), field.allSatisfy(\.isHexDigit),
                        let word = UInt16(field, radix: 16)
                    else { return nil }
                    result.append(word)
                }
            }
            return result
        }
        if halves.count == 2 {
            guard let head = groups(halves[0], allowIPv4: false), let tail = groups(halves[1], allowIPv4: true),
                head.count + tail.count <= 7
            else { return nil }
            return head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard let all = groups(text, allowIPv4: true), all.count == 8 else { return nil }
        return all
    }

    /// The eight 16-bit groups of an IPv6 address.
    var groups: [UInt16] {
        (0..<8).map { i in
            let word = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(i % 4)))
        }
    }
}

extension IPAddress: CustomStringConvertible {
    /// Canonical text: dotted quad, or RFC 5952 for IPv6 (lower case, no leading zeros, the
    /// longest run of two or more zero groups as `::`, the first on a tie, IPv4-mapped as
    /// `::ffff:a.b.c.d`).
    public var description: String {
        guard isIPv6 else {
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        }
        if high == 0, low >> 32 == 0xFFFF {
            return "::ffff:" + IPAddress(ipv4: UInt32(truncatingIfNeeded: low)).description
        }
        let words = groups
        var bestStart = -1
        var bestLength = 0
        var index = 0
        while index < 8 {
            if words[index] == 0 {
                var end = index
                while end < 8, words[end] == 0 { end += 1 }
                if end - index > bestLength {
                    bestStart = index
                    bestLength = end - index
                }
                index = end
            } else {
                index += 1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        var text = ""
        index = 0
        while index < 8 {
            if index == bestStart {
                text += "::"
                index += bestLength
                continue
            }
            if !text.isEmpty, !text.hasSuffix(":") { text += ":" }
            text += String(words[index], radix: 16)
            index += 1
        }
        return text
    }
}

/// An address prefix such as `198.51.100.0/24` or `2001:db8::/32`.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var length: Int

    /// Parses `ADDRESS/LENGTH`, or a bare address as a host prefix.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(parts[0]) else { return nil }
        let maximum = address.isIPv6 ? 128 : 32
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy(\.isASCIIDigit), let length = Int(parts[1]),
                length <= maximum
            else { return nil }
            self.length = length
        } else {
            self.length = maximum
        }
        self.address = address
    }

    /// Whether `candidate` lies inside the prefix. Families never match each other.
    @inline(__always)
    public func contains(_ candidate: IPAddress) -> Bool {
        guard candidate.isIPv6 == address.isIPv6 else { return false }
        if !address.isIPv6 {
            guard length > 0 else { return true }
            let mask = UInt64(UInt32.max << UInt32(32 - length))
            return candidate.low & mask == address.low & mask
        }
        if length == 0 { return true }
        if length <= 64 {
            let mask: UInt64 = length == 64 ? .max : ~(UInt64.max >> UInt64(length))
            return candidate.high & mask == address.high & mask
        }
        let lowBits = length - 64
        let mask: UInt64 = lowBits == 64 ? .max : ~(UInt64.max >> UInt64(lowBits))
        return candidate.high == address.high && candidate.low & mask == address.low & mask
    }

    public var description: String { "\(address)/\(length)" }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
