/// A set of VLAN IDs (0-4095) as a 512-byte bitmap: the configured RSPAN VLANs. Membership is
/// one load and a mask, cheap enough to test on every tagged frame. The bitmap is inline (no
/// heap storage), so the decoder's configuration costs no reference counting per frame.
public struct VLANSet: Sendable, Hashable {
    private var words = InlineArray<64, UInt64>(repeating: 0)
    public private(set) var isEmpty = true

    public static func == (a: VLANSet, b: VLANSet) -> Bool {
        (0..<64).allSatisfy { a.words[$0] == b.words[$0] }
    }

    public func hash(into hasher: inout Hasher) {
        for index in 0..<64 { hasher.combine(words[index]) }
    }

    public init() {}

    public init(_ ids: some Sequence<UInt16>) {
        for id in ids { insert(id) }
    }

    public mutating func insert(_ id: UInt16) {
        let id = Int(id & 0x0FFF)
        words[id >> 6] |= 1 << UInt64(id & 63)
        isEmpty = false
    }

    @inline(__always)
    public func contains(_ id: UInt16) -> Bool {
        let id = Int(id & 0x0FFF)
        return words[id >> 6] & (1 << UInt64(id & 63)) != 0
    }

    /// The members in ascending order.
    public var members: [UInt16] { (0..<4096).filter { contains(UInt16($0)) }.map(UInt16.init) }
}
