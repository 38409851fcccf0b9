/// The mirror transport a frame arrived in; also the `encapsulation` JSON value.
public enum Encapsulation: UInt8, Sendable, Hashable, CaseIterable {
    case erspan1
    case erspan2
    case erspan3
    case gre
    case vxlan
    case rspan
    case geneve

    public var name: String {
        switch self {
        case .erspan1: "erspan1"
        case .erspan2: "erspan2"
        case .erspan3: "erspan3"
        case .gre: "gre"
        case .vxlan: "vxlan"
        case .rspan: "rspan"
        case .geneve: "geneve"
        }
    }

    /// ERSPAN II and III share sessions: a sender may switch between them when reconfigured.
    public var sessionFamily: SessionFamily {
        switch self {
        case .erspan1: .erspan1
        case .erspan2, .erspan3: .erspan
        case .gre: .gre
        case .vxlan: .vxlan
        case .rspan: .rspan
        case .geneve: .geneve
        }
    }
}

/// What identifies a session besides the exporter: the family of transport.
public enum SessionFamily: UInt8, Sendable, Hashable {
    case erspan1
    case erspan
    case gre
    case vxlan
    case rspan
    case geneve
}

/// A decoded mirror frame: where the original frame lies in the captured bytes and what the
/// encapsulation said about it. Plain value, no references: decoding allocates nothing.
public struct MirrorFrame: Sendable {
    public var encapsulation: Encapsulation = .erspan1
    /// Outer source address (the switch); `.none` for RSPAN.
    public var exporter: IPAddress = .none
    /// ERSPAN session ID, GRE key, VNI (VXLAN, Geneve) or RSPAN VLAN; meaningful when `hasSessionID`.
    public var sessionID: UInt32 = 0
    public var hasSessionID: Bool = false
    /// GRE sequence number; meaningful when `hasSequence`.
    public var sequence: UInt32 = 0
    public var hasSequence: Bool = false
    /// The GRE key when present (for ERSPAN it is recorded, it is not the session).
    public var greKey: UInt32? = nil

    /// Offset of the original frame in the captured bytes.
    public var innerOffset: Int = 0
    /// Captured bytes of the original frame, counting from `innerOffset` and skipping the
    /// `removedLength` bytes at `innerOffset + removedOffset` (the RSPAN tag).
    public var innerCapturedLength: Int = 0
    /// Length of the original frame on its wire (≥ `innerCapturedLength`).
    public var innerWireLength: Int = 0
    /// Relative offset and length of bytes to leave out when copying (RSPAN tag removal).
    public var removedOffset: Int = 0
    public var removedLength: Int = 0

    /// The original frame is an IP packet without link header (ERSPAN III FT = 2, Geneve
    /// Protocol Type 0x0800/0x86DD, VXLAN-GPE next protocol 1/2), written with
    /// link type 101 (LINKTYPE_RAW); otherwise it is Ethernet.
    public var isRawIP: Bool = false
    /// The frame is shorter than it was: ERSPAN T bit, snap truncation, or the inner IP header
    /// proves more bytes existed.
    public var isTruncated: Bool = false
    public var anomalies: Anomalies = Anomalies(rawValue: 0)
    public var erspan: ERSPANMetadata = ERSPANMetadata()

    /// An empty frame to decode into (`MirrorDecoder.decode(_:...into:)`). Inlinable: the
    /// caller's stack slot is filled in place, per frame, without a call or a copy.
    @inlinable
    public init() {}

    /// Starts a new frame in place: every field back to its initial value.
    @inline(__always)
    mutating func reset(encapsulation: Encapsulation, exporter: IPAddress, innerOffset: Int) {
        self = MirrorFrame()
        self.encapsulation = encapsulation
        self.exporter = exporter
        self.innerOffset = innerOffset
    }
}

/// The outcome of decoding one captured frame.
public enum DecodeResult: Sendable {
    case mirror(MirrorFrame)
    case discard(DiscardReason)
}
