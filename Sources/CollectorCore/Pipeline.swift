public import MirrorDecoding
public import PcapStorage

/// The per-frame path: decode, authorize, find the session, account the sequence number and
/// append the frame to the session's files. One pipeline per capture thread; nothing in it is
/// shared, so nothing is locked. Allocates only when a new session appears.
public final class Pipeline {
    let decoder: MirrorDecoder
    let storage: Storage
    let allowedExporters: [IPPrefix]
    /// `!allowedExporters.isEmpty`, as a plain flag the frame path can read for free.
    let hasAllowList: Bool
    /// Names of the capture interfaces, indexed by `process(interface:)`, for RSPAN session
    /// names (`replay` in replay).
    let interfaceNames: [String]
    /// Named sessions from the configuration file, consulted once per new session key.
    private(set) var sessionRules: SessionRules
    /// When false, mirror traffic that matches no rule is discarded as
    /// `unknown_session.not_configured`.
    private(set) var acceptUnknownSessions: Bool
    /// Keys refused for matching no rule, so their frames cost a lookup rather than a rule scan.
    private var rejectedKeys = RejectedSessionKeys()

    private var sessionIndex: [SessionKey: Session] = [:]
    private(set) var sessions: [Session] = []
    /// Direct-mapped cache of recently used sessions, checked before the dictionary.
    private static let cacheSize = 256
    /// Unretained: `sessions` owns every session for the pipeline's lifetime, and the frame path
    /// then pays no reference counting for the lookup (measured: 10% of replay time).
    private var cache: ContiguousArray<Unmanaged<Session>?> = ContiguousArray(repeating: nil, count: Pipeline.cacheSize)

    /// Frames seen, including those the kernel dropped (added by the live source).
    public private(set) var received: Int64 = 0
    public var kernelDropped: Int64 = 0
    private(set) var discards: [Int64] = Array(repeating: 0, count: DiscardReason.allCases.count)
    private(set) var anomalies: [Int64] = Array(repeating: 0, count: Anomalies.all.count)

    public init(configuration: CollectorConfiguration, storage: Storage, interfaceNames: [String]) {
        decoder = MirrorDecoder(configuration: configuration.decoderConfiguration)
        self.storage = storage
        allowedExporters = configuration.allowedExporters
        hasAllowList = !configuration.allowedExporters.isEmpty
        self.interfaceNames = interfaceNames
        sessionRules = SessionRules(configuration.sessionRules)
        acceptUnknownSessions = configuration.acceptUnknownSessions
    }

    /// Processes one captured frame.
    @inline(__always)
    public func process(
        _ bytes: UnsafeRawBufferPointer, wireLength: Int, timestampNanoseconds: UInt64, linkType: LinkType = .ethernet,
        offloadedTag: VLANTag? = nil, interface: UInt32 = 0
    ) {
        received += 1
        var frame = MirrorFrame()
        if let reason = decoder.decode(bytes, wireLength: wireLength, linkType: linkType, offloadedTag: offloadedTag, into: &frame) {
            discards[Int(reason.rawValue)] += 1
            return
        }
        if hasAllowList, frame.encapsulation != .rspan, !isAllowed(frame.exporter) {
            discards[Int(DiscardReason.exporterNotAllowed.rawValue)] += 1
            return
        }
        if frame.anomalies.rawValue != 0 { countAnomalies(frame.anomalies) }

        let key = SessionKey(frame, interface: interface)
        let slot = key.cacheSlot & (Self.cacheSize - 1)
        let session: Unmanaged<Session>
        if let cached = cache[slot], cached._withUnsafeGuaranteedRef({ $0.key == key }) {
            session = cached
        } else if let known = sessionIndex[key] {
            session = Unmanaged.passUnretained(known)
            cache[slot] = session
        } else if let created = newSession(key: key, encapsulation: frame.encapsulation) {
            session = Unmanaged.passUnretained(created)
            cache[slot] = session
        } else {
            discards[Int(DiscardReason.sessionNotConfigured.rawValue)] += 1
            return
        }
        session._withUnsafeGuaranteedRef { session in
            if frame.hasSequence { session.sequence.observe(frame.sequence) }
            session.recorderOnFramePath._withUnsafeGuaranteedRef { recorder in
                if frame.isTruncated || frame.innerCapturedLength > recorder.maximumCapturedLength { session.truncated += 1 }
                recorder.append(
                    timestampNanoseconds: timestampNanoseconds, source: bytes, offset: frame.innerOffset,
                    capturedLength: frame.innerCapturedLength, removedOffset: frame.removedOffset,
                    removedLength: frame.removedLength, wireLength: frame.innerWireLength)
            }
        }
    }

    @inline(__always)
    private func isAllowed(_ exporter: IPAddress) -> Bool {
        for prefix in allowedExporters where prefix.contains(exporter) { return true }
        return false
    }

    private func countAnomalies(_ set: Anomalies) {
        for (index, entry) in Anomalies.all.enumerated() where set.contains(entry.0) { anomalies[index] += 1 }
    }

    /// A session for a key seen for the first time: named and configured by the first
    /// matching session rule, or by default; nil when it matches no rule and unknown sessions
    /// are refused (remembered, so the next frame of the key costs no rule scan).
    private func newSession(key: SessionKey, encapsulation: Encapsulation) -> Session? {
        if !acceptUnknownSessions, rejectedKeys.contains(key) { return nil }
        let interfaceName = Int(key.interface) < interfaceNames.count ? interfaceNames[Int(key.interface)] : "if\(key.interface)"
        let rule = sessionRules.isEmpty ? nil : sessionRules.firstMatch(key, interfaceName: interfaceName)
        if rule == nil, !acceptUnknownSessions {
            rejectedKeys.insert(key)
            return nil
        }
        let name = rule.map { sessionRules.rules[$0].name } ?? Session.defaultName(for: key, interfaceName: interfaceName)
        let overrides = rule.map(sessionRules.overrides) ?? .init()
        let description = key.family == .rspan ? "RSPAN VLAN \(key.identifier) on \(interfaceName)" : "exporter \(key.exporter)"
        // A rule matching several keys (an exporter prefix, no id) names the first NAME and the
        // others NAME~2, NAME~3, ... (Storage.makeRecorder keeps names unique).
        let recorder = storage.makeRecorder(
            sessionName: name, linkType: 1, interfaceDescription: description, overrides: overrides)
        // The storage may have had to make the name unique (see Storage.makeRecorder).
        let session = Session(key: key, name: recorder.files.name, encapsulation: encapsulation, recorder: recorder)
        sessionIndex[key] = session
        sessions.append(session)
        return session
    }

    /// How many refused session keys are remembered (bounded by `RejectedSessionKeys.limit`).
    var rejectedSessionKeyCount: Int { rejectedKeys.count }

    /// Installs reloaded session rules (SIGHUP). Sessions already open keep their names; new
    /// ones, and keys refused before, are judged by the new rules.
    func update(sessionRules rules: [SessionRule], acceptUnknownSessions accept: Bool) {
        sessionRules = SessionRules(rules)
        acceptUnknownSessions = accept
        rejectedKeys = RejectedSessionKeys()
    }

    /// The session recorders, for periodic housekeeping by the owning thread.
    var recorders: [SessionRecorder] { sessions.map(\.recorder) }

    /// The counters as they stand; exact once the storage is closed.
    public func summary() -> Summary {
        var summary = Summary()
        summary.sessions = sessions.map { $0.summary() }.sorted { $0.name < $1.name }
        summary.packetsReceived = received + kernelDropped
        summary.packetsWritten = summary.sessions.reduce(0) { $0 + $1.packets }
        summary.dropped.kernel = kernelDropped
        summary.dropped.queue = summary.sessions.reduce(0) { $0 + $1.droppedQueue }
        summary.dropped.write = summary.sessions.reduce(0) { $0 + $1.droppedWrite }
        for reason in DiscardReason.allCases {
            let count = discards[Int(reason.rawValue)]
            summary.discardReasons[reason.name] = count
            switch reason.bucket {
            case .malformed: summary.discarded.malformed += count
            case .notMirror: summary.discarded.notMirror += count
            case .unknownSession: summary.discarded.unknownSession += count
            case .unauthorizedExporter: summary.discarded.unauthorizedExporter += count
            }
        }
        for (index, entry) in Anomalies.all.enumerated() { summary.anomalies[entry.1] = anomalies[index] }
        return summary
    }
}
