/// Why a received frame was not written. Every reason belongs to exactly one bucket of the
/// accounting law (`docs/COUNTERS.md`):
///
///     packets_received = packets_written + dropped.{kernel,queue,write}
///                      + discarded.{malformed,not_mirror,unknown_session,unauthorized_exporter,
///                                   duplicate}
///
/// The raw values index fixed-size counter arrays, so they are dense and start at 0.
public enum DiscardReason: UInt8, CaseIterable, Sendable, Error {
    // malformed: claims to be IP or a mirror encapsulation but cannot be decoded.
    case linkTruncated
    case vlanTruncated
    case ipv4Truncated
    case ipv4Header
    case ipv6Truncated
    case ipv6Header
    case ipFragment
    case ipFragmentIncomplete
    case ipFragmentOverlap
    case ipFragmentLimit
    case greTruncated
    case greVersion
    case greRouting
    case erspanTruncated
    case erspanVersion
    case erspanPlatformTruncated
    case erspanFrameType
    case udpTruncated
    case vxlanTruncated
    case vxlanFlags
    case vxlanGPEProtocol
    case geneveTruncated
    case geneveVersion
    case innerIPVersion
    case innerTruncated
    // not_mirror: well-formed traffic that is not a mirror transport.
    case nonIP
    case ipProtocol
    case udpPort
    case greProtocol
    case greKeepalive
    case geneveProtocol
    /// A capture-file record of a link type the decoder does not read (replay).
    case linkType
    // unknown_session: a mirror frame we were told not to keep.
    case sessionNotConfigured
    case sessionLimit
    // unauthorized_exporter
    case exporterNotAllowed
    // duplicate: a transport duplicate (same session, GRE sequence number and bytes), only
    // with --drop-duplicates.
    case transportDuplicate

    /// The accounting bucket the reason belongs to.
    public var bucket: DiscardBucket {
        switch self {
        case .linkTruncated, .vlanTruncated, .ipv4Truncated, .ipv4Header, .ipv6Truncated, .ipv6Header,
            .ipFragment, .ipFragmentIncomplete, .ipFragmentOverlap, .ipFragmentLimit, .greTruncated, .greVersion, .greRouting, .erspanTruncated, .erspanVersion,
            .erspanPlatformTruncated, .erspanFrameType, .udpTruncated, .vxlanTruncated, .vxlanFlags,
            .vxlanGPEProtocol, .geneveTruncated, .geneveVersion, .innerIPVersion, .innerTruncated:
            return .malformed
        case .nonIP, .ipProtocol, .udpPort, .greProtocol, .greKeepalive, .geneveProtocol, .linkType:
            return .notMirror
        case .sessionNotConfigured, .sessionLimit:
            return .unknownSession
        case .exporterNotAllowed:
            return .unauthorizedExporter
        case .transportDuplicate:
            return .duplicate
        }
    }

    /// The stable dotted name used in JSON, metrics and docs, e.g. `malformed.gre_truncated`.
    public var name: String { "\(bucket.name).\(detail)" }

    /// The part of `name` after the bucket.
    public var detail: String {
        switch self {
        case .linkTruncated: "link_truncated"
        case .vlanTruncated: "vlan_truncated"
        case .ipv4Truncated: "ipv4_truncated"
        case .ipv4Header: "ipv4_header"
        case .ipv6Truncated: "ipv6_truncated"
        case .ipv6Header: "ipv6_header"
        case .ipFragment: "ip_fragment"
        case .ipFragmentIncomplete: "ip_fragment_incomplete"
        case .ipFragmentOverlap: "ip_fragment_overlap"
        case .ipFragmentLimit: "ip_fragment_limit"
        case .greTruncated: "gre_truncated"
        case .greVersion: "gre_version"
        case .greRouting: "gre_routing"
        case .erspanTruncated: "erspan_truncated"
        case .erspanVersion: "erspan_version"
        case .erspanPlatformTruncated: "erspan_platform_truncated"
        case .erspanFrameType: "erspan_frame_type"
        case .udpTruncated: "udp_truncated"
        case .vxlanTruncated: "vxlan_truncated"
        case .vxlanFlags: "vxlan_flags"
        case .vxlanGPEProtocol: "vxlan_gpe_protocol"
        case .geneveTruncated: "geneve_truncated"
        case .geneveVersion: "geneve_version"
        case .innerIPVersion: "inner_ip_version"
        case .innerTruncated: "inner_truncated"
        case .nonIP: "non_ip"
        case .ipProtocol: "ip_protocol"
        case .udpPort: "udp_port"
        case .greProtocol: "gre_protocol"
        case .greKeepalive: "gre_keepalive"
        case .geneveProtocol: "geneve_protocol"
        case .linkType: "link_type"
        case .sessionNotConfigured: "not_configured"
        case .sessionLimit: "session_limit"
        case .exporterNotAllowed: "allow_list"
        case .transportDuplicate: "transport"
        }
    }
}

/// The five "we chose not to keep it" buckets of the accounting law.
public enum DiscardBucket: UInt8, CaseIterable, Sendable {
    case malformed
    case notMirror
    case unknownSession
    case unauthorizedExporter
    case duplicate

    /// The JSON key, e.g. `not_mirror`.
    public var name: String {
        switch self {
        case .malformed: "malformed"
        case .notMirror: "not_mirror"
        case .unknownSession: "unknown_session"
        case .unauthorizedExporter: "unauthorized_exporter"
        case .duplicate: "duplicate"
        }
    }
}
