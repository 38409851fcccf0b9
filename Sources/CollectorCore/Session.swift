import MirrorDecoding
import PcapFormat
import PcapStorage
import Synchronization

/// What identifies a mirror session: the exporter, the transport family and its identifier
/// (ERSPAN session ID, GRE key, VNI, RSPAN VLAN); for RSPAN the capture interface instead of an
/// exporter. The ERSPAN direction bit and the II/III distinction are metadata, not identity.
struct SessionKey: Hashable {
    var exporter: IPAddress
    var family: SessionFamily
    var identifier: UInt32
    var hasIdentifier: Bool
    var interface: UInt32

    /// Three words instead of seven fields: hashing is on the per-frame path.
    @inline(__always)
    func hash(into hasher: inout Hasher) {
        hasher.combine(exporter.high)
        hasher.combine(exporter.low)
        hasher.combine(packedTail)
    }

    @inline(__always)
    var packedTail: UInt64 {
        UInt64(identifier) << 32 | UInt64(interface & 0xFFFF) << 16 | UInt64(family.rawValue) << 8
            | (hasIdentifier ? 2 : 0) | (exporter.isIPv6 ? 1 : 0)
    }

    /// A cheap mix for the direct-mapped cache in front of the session dictionary. Anyone can
    /// make it collide; a collision only costs a dictionary lookup.
    @inline(__always)
    var cacheSlot: Int {
        var mixed = exporter.low ^ exporter.high &* 0x9E37_79B9_7F4A_7C15 ^ packedTail &* 0xC2B2_AE3D_27D4_EB4F
        mixed ^= mixed >> 29
        return Int(truncatingIfNeeded: mixed)
    }

    @inline(__always)
    init(_ frame: MirrorFrame, interface: UInt32) {
        exporter = frame.exporter
        family = frame.encapsulation.sessionFamily
        identifier = frame.sessionID
        hasIdentifier = frame.hasSessionID
        self.interface = frame.encapsulation == .rspan ? interface : 0
    }
}

/// One mirror session: its name, its counters and its files. Owned by one capture thread.
final class Session: SequenceStatisticsSource {
    let key: SessionKey
    let name: String
    /// The transport of the first frame seen (ERSPAN II and III share a session).
    let encapsulation: Encapsulation
    let recorder: SessionRecorder
    /// The same recorder without reference counting, for the per-frame path (`recorder` owns it).
    let recorderOnFramePath: Unmanaged<SessionRecorder>
    var sequence = SequenceTracker()
    /// Whether a `[[session]]` rule named it: such sessions are never evicted for others.
    let isConfigured: Bool
    /// The pipeline's frame count at this session's latest frame: which session was least
    /// recently active when the table is full (one store per frame, no clock read).
    var lastActive: Int64 = 0
    /// How this session's record times are made (`receive` unless configured per exporter).
    var timestampMode = SwitchTimestampPolicy.Mode.receive
    var relativeClock = RelativeClock()
    /// Fingerprints of recent frames by sequence number, as wide as the sequence tracker's
    /// window (only with --drop-duplicates).
    private var fingerprints: [UInt64] = []

    func recentFingerprint(_ sequence: UInt32) -> UInt64 {
        fingerprints.isEmpty ? 0 : fingerprints[Int(sequence) & (SequenceTracker.window - 1)]
    }

    func remember(_ sequence: UInt32, fingerprint: UInt64) {
        if fingerprints.isEmpty { fingerprints = Array(repeating: 0, count: SequenceTracker.window) }
        fingerprints[Int(sequence) & (SequenceTracker.window - 1)] = fingerprint
    }
    var truncated: Int64 = 0
    /// pcapng: records carry the transport's metadata (`RecordAnnotations`) and raw-IP frames
    /// go to interface 1 of the same files. pcap: neither; raw IP goes to `rawIPSession`.
    let writesMetadata: Bool
    /// pcap only: the `<name>-ip` series (link type 101) of this session's raw-IP frames
    /// (ERSPAN III FT = 2), made at the first one. It has the same key; its own summary entry
    /// counts its frames, while sequence accounting stays with this session.
    var rawIPSession: Session?
    /// What the `-ip` series is made with: this session's rule overrides and description.
    let overrides: StorageConfiguration.SessionOverrides
    let interfaceDescription: String

    init(
        key: SessionKey, name: String, encapsulation: Encapsulation, recorder: SessionRecorder, writesMetadata: Bool = false,
        overrides: StorageConfiguration.SessionOverrides = .init(), interfaceDescription: String = "", isConfigured: Bool = false
    ) {
        self.key = key
        self.isConfigured = isConfigured
        self.name = name
        self.encapsulation = encapsulation
        self.recorder = recorder
        recorderOnFramePath = Unmanaged.passUnretained(recorder)
        self.writesMetadata = writesMetadata
        self.overrides = overrides
        self.interfaceDescription = interfaceDescription
    }

    /// The GRE sequence accounting so far, for the recorder's per-file statistics block.
    var sequenceStatistics: SequenceStatistics {
        SequenceStatistics(
            lost: sequence.lost, outOfOrder: sequence.outOfOrder, duplicates: sequence.duplicates, restarts: sequence.restarts)
    }

    /// The default name (docs/FORMATS.md): `<exporter>-erspan-<id>`, `<exporter>-erspan1`,
    /// `<exporter>-gre[-<key>]`, `<exporter>-vxlan-<vni>`, `<exporter>-geneve-<vni>`,
    /// `<interface>-vlan-<vid>`.
    static func defaultName(for key: SessionKey, interfaceName: String) -> String {
        let exporter = key.exporter.description
        switch key.family {
        case .erspan1: return "\(exporter)-erspan1"
        case .erspan: return "\(exporter)-erspan-\(key.identifier)"
        case .gre: return key.hasIdentifier ? "\(exporter)-gre-\(key.identifier)" : "\(exporter)-gre"
        case .vxlan: return "\(exporter)-vxlan-\(key.identifier)"
        case .geneve: return "\(exporter)-geneve-\(key.identifier)"
        case .rspan: return "\(interfaceName)-vlan-\(key.identifier)"
        }
    }

    func summary() -> SessionSummary {
        let writeDropped = recorder.files.writeDroppedPackets.load(ordering: .relaxed)
        let writeDroppedBytes = recorder.files.writeDroppedBytes.load(ordering: .relaxed)
        return SessionSummary(
            name: name,
            exporter: key.family == .rspan ? nil : key.exporter.description,
            encapsulation: encapsulation.name,
            id: key.hasIdentifier ? key.identifier : nil,
            packets: recorder.appendedPackets - writeDropped,
            bytes: recorder.appendedBytes - writeDroppedBytes,
            lost: sequence.lost,
            outOfOrder: sequence.outOfOrder,
            duplicates: sequence.duplicates,
            restarts: sequence.restarts,
            truncated: truncated,
            files: recorder.files.filesFinished.load(ordering: .relaxed),
            droppedQueue: recorder.queueDroppedPackets,
            droppedWrite: writeDropped)
    }
}

extension RecordAnnotations {
    /// What a pcapng record says about `frame` (docs/FORMATS.md, "Per-packet metadata"): the
    /// GRE and ERSPAN fields; nothing for VXLAN, Geneve and RSPAN (only the raw-IP interface).
    /// Copies integers, allocates nothing.
    @inline(__always)
    init(_ frame: MirrorFrame) {
        self.init()
        isRawIP = frame.isRawIP
        switch frame.encapsulation {
        case .erspan1: transport = .erspan1
        case .erspan2: transport = .erspan2
        case .erspan3: transport = .erspan3
        case .gre: transport = .greTEB
        case .vxlan, .geneve, .rspan: return
        }
        hasSequence = frame.hasSequence
        sequence = frame.sequence
        if let greKey = frame.greKey {
            hasKey = true
            key = greKey
        }
        let erspan = frame.erspan
        sessionID = erspan.sessionID
        vlan = erspan.vlan
        classOfService = erspan.classOfService
        encapsulationOrBSO = erspan.encapsulationOrBSO
        truncated = erspan.truncated
        index = erspan.index
        timestamp = erspan.timestamp
        granularity = erspan.granularity
        securityGroupTag = erspan.securityGroupTag
        hardwareID = erspan.hardwareID
        frameType = erspan.frameType
        egress = erspan.egress
        hasPlatform = erspan.hasPlatform
        platform = erspan.platform
    }
}
