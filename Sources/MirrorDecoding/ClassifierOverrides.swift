/// Per-exporter ERSPAN type overrides for devices that break the classification rules
/// (PROTOCOLS.md A.7 step 4; what Wireshark's old "fake ERSPAN" preference was for): a sender
/// that sets S on Type I frames, or writes a wrong Ver nibble. A matching exporter's 0x88BE /
/// 0x22EB traffic is decoded as the forced type whatever the flags and version say. Kept
/// inline (at most `capacity` entries), so the decoder's configuration stays free of reference
/// counting; checked only for ERSPAN protocol types.
public struct ClassifierOverrides: Sendable, Hashable {
    public enum ForcedType: UInt8, Sendable, Hashable, CaseIterable {
        case typeI = 1
        case typeII = 2
        case typeIII = 3

        /// Parses `I`, `II`, `III` (or 1, 2, 3).
        public init?(_ text: String) {
            switch text.uppercased() {
            case "I", "1": self = .typeI
            case "II", "2": self = .typeII
            case "III", "3": self = .typeIII
            default: return nil
            }
        }
    }

    public static let capacity = 16
    private var prefixes = InlineArray<16, IPPrefix>(repeating: IPPrefix("0.0.0.0/0")!)
    private var types = InlineArray<16, UInt8>(repeating: 0)
    public private(set) var count = 0

    public init(_ entries: [(IPPrefix, ForcedType)] = []) {
        for (prefix, type) in entries.prefix(Self.capacity) {
            prefixes[count] = prefix
            types[count] = type.rawValue
            count += 1
        }
    }

    /// Parses `CIDR=TYPE`, e.g. `198.51.100.7/32=I`.
    public static func parseEntry(_ text: String) -> (IPPrefix, ForcedType)? {
        let parts = text.split(separator: "=", omittingEmptySubsequences: false)
        guard parts.count == 2, let prefix = IPPrefix(String(parts[0])), let type = ForcedType(String(parts[1])) else {
            return nil
        }
        return (prefix, type)
    }

    public var isEmpty: Bool { count == 0 }

    /// The forced type for `exporter`, first match wins.
    @inline(__always)
    public func forcedType(for exporter: IPAddress) -> ForcedType? {
        for index in 0..<count where prefixes[index].contains(exporter) { return ForcedType(rawValue: types[index]) }
        return nil
    }

    public var entries: [(IPPrefix, ForcedType)] {
        (0..<count).map { (prefixes[$0], ForcedType(rawValue: types[$0])!) }
    }

    public static func == (a: ClassifierOverrides, b: ClassifierOverrides) -> Bool {
        a.entries.map { "\($0.0)=\($0.1)" } == b.entries.map { "\($0.0)=\($0.1)" }
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(entries.map { "\($0.0)=\($0.1)" }) }
}
