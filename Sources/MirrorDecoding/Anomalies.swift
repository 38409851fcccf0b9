/// Things worth counting about a frame that is still written: the decoder accepted it, but a
/// sender broke a rule or the frame is unusual. They never take part in the accounting law.
public struct Anomalies: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// GRE C bit set and the one's-complement sum over the complete GRE packet is not zero.
    public static let greChecksumBad = Anomalies(rawValue: 1 << 0)
    /// GRE reserved bits (s, Recur, Flags) set; RFC 2784 would discard, vendors do set them.
    public static let greReservedBits = Anomalies(rawValue: 1 << 1)
    /// ERSPAN header version disagrees with the GRE protocol type (trusted: the version).
    public static let erspanVersionMismatch = Anomalies(rawValue: 1 << 2)
    /// VXLAN reserved bits or bytes not zero (tolerated).
    public static let vxlanReservedBits = Anomalies(rawValue: 1 << 3)
    /// The decapsulated frame itself is GRE or VXLAN: a mirror loop upstream.
    public static let nestedMirror = Anomalies(rawValue: 1 << 4)
    /// 0x88BE with S clear but C or K set: Type I here, the Linux kernel would disagree.
    public static let erspanTypeIWithOptions = Anomalies(rawValue: 1 << 5)
    /// Geneve O bit: an OAM (tunnel control) frame, written like any other.
    public static let geneveOAM = Anomalies(rawValue: 1 << 6)

    /// Every anomaly with its stable name, in bit order.
    public static let all: [(Anomalies, String)] = [
        (.greChecksumBad, "gre_checksum_bad"),
        (.greReservedBits, "gre_reserved_bits"),
        (.erspanVersionMismatch, "erspan_version_mismatch"),
        (.vxlanReservedBits, "vxlan_reserved_bits"),
        (.nestedMirror, "nested_mirror"),
        (.erspanTypeIWithOptions, "erspan1_with_key_or_checksum"),
        (.geneveOAM, "geneve_oam"),
    ]
}
