public import MirrorDecoding
public import PcapStorage
import PcapFormat

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

    /// The session table: sessions that may receive frames, by key.
    private var sessionIndex: [SessionKey: Session] = [:]
    /// Why `newSession` last refused: not configured, or over the session cap.
    private var refusal = DiscardReason.sessionNotConfigured
    /// Sessions in the table at most (`max_sessions`).
    let maximumSessions: Int
    /// Sessions in the table that no rule named (the ones eviction may pick).
    private var unknownSessionCount = 0
    /// Slots unknown sessions may not take, so configured sessions find room without evicting:
    /// one per rule, at most half the table.
    private var reservedForRules: Int
    /// Sessions evicted from the table (their files finished), by key: kept for the summary,
    /// and taken back (same name, counters going on, a new file) when their key returns.
    private var evictedSessions: [SessionKey: Session] = [:]
    /// Frames refused as `unknown_session.session_limit`, by exporter prefix (bounded).
    private var sessionLimitByPrefix = PrefixCounts()
    /// Switch timestamps per exporter (`--erspan-timestamps`); empty: receive time for all.
    let timestamps: SwitchTimestampPolicy
    let hasTimestampRules: Bool
    private(set) var implausibleTimestamps: Int64 = 0
    /// Drop transport duplicates (`--drop-duplicates`); off by default, frames are kept.
    let dropDuplicates: Bool
    private let reassembler: FragmentReassembler
    /// Fragments held by the reassembler: received, not yet written or discarded.
    public private(set) var pendingFragments = 0
    private(set) var sessions: [Session] = []
    /// Direct-mapped cache of recently used sessions, checked before the dictionary.
    private static let cacheSize = 256
    /// Unretained: `sessions` owns every session for the pipeline's lifetime, and the frame path
    /// then pays no reference counting for the lookup (measured: 10% of replay time).
    private var cache: ContiguousArray<Unmanaged<Session>?> = ContiguousArray(repeating: nil, count: Pipeline.cacheSize)

    /// The frame being decoded: one per pipeline rather than one per call, so the decoder's
    /// reset of it is the only initialization a frame costs.
    private var scratch = MirrorFrame()

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
        maximumSessions = configuration.maximumSessions
        reservedForRules = min(configuration.sessionRules.count, configuration.maximumSessions / 2)
        dropDuplicates = configuration.dropDuplicates
        timestamps = configuration.switchTimestamps
        hasTimestampRules = !configuration.switchTimestamps.rules.isEmpty
        reassembler = FragmentReassembler(limits: configuration.reassemblyLimits)
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
        if let reason = decoder.decode(bytes, wireLength: wireLength, linkType: linkType, offloadedTag: offloadedTag, into: &scratch) {
            if reason == .ipFragment {
                reassemble(
                    bytes, wireLength: wireLength, timestampNanoseconds: timestampNanoseconds, linkType: linkType,
                    offloadedTag: offloadedTag, interface: interface)
            } else {
                discards[Int(reason.rawValue)] += 1
            }
            return
        }
        accept(bytes: bytes, timestampNanoseconds: timestampNanoseconds, interface: interface)
    }

    /// A capture-file record that is not decoded at all (a link type the decoder does not
    /// read): received and discarded for `reason`, so the accounting law holds.
    public func discard(_ reason: DiscardReason) {
        received += 1
        discards[Int(reason.rawValue)] += 1
    }

    /// A fragment: held until its datagram is complete, which then goes through the frame path
    /// as one frame. Accounting: the fragments of a rebuilt datagram count as one received
    /// frame (as live capture sees it after the kernel's fanout DEFRAG); fragments that never
    /// make it (overlap, timeout, caps) each count as received and discarded.
    private func reassemble(
        _ bytes: UnsafeRawBufferPointer, wireLength: Int, timestampNanoseconds: UInt64, linkType: LinkType, offloadedTag: VLANTag?,
        interface: UInt32
    ) {
        switch reassembler.add(
            bytes, wireLength: wireLength, timestampNanoseconds: timestampNanoseconds, offloadedTag: offloadedTag, linkType: linkType)
        {
        case .pending:
            pendingFragments += 1
        case .discarded(let reason):
            discards[Int(reason.rawValue)] += 1
        case .completed(let datagram, let fragments):
            pendingFragments -= fragments - 1
            received -= Int64(fragments - 1)
            // The link layer's tag went into the datagram's bytes only if it was in the first
            // fragment's bytes; an offloaded tag stays offloaded.
            if let reason = decoder.decode(
                datagram, wireLength: datagram.count, linkType: linkType, offloadedTag: offloadedTag, into: &scratch)
            {
                discards[Int(reason.rawValue)] += 1
            } else {
                accept(bytes: datagram, timestampNanoseconds: timestampNanoseconds, interface: interface)
            }
        }
        countReassemblyDiscards()
    }

    private func countReassemblyDiscards() {
        for (reason, count) in reassembler.takeDiscards() {
            discards[Int(reason.rawValue)] += Int64(count)
            pendingFragments -= count
        }
    }

    /// Gives up every incomplete datagram (end of a replay, shutdown): their fragments are
    /// discarded as `malformed.ip_fragment_incomplete`, so the accounting law holds exactly.
    public func finishReassembly() {
        reassembler.flush()
        countReassemblyDiscards()
    }

    /// Gives up datagrams older than the reassembly timeout (periodic, live capture).
    public func expireFragments(asOf timestampNanoseconds: UInt64) {
        reassembler.expire(asOf: timestampNanoseconds)
        countReassemblyDiscards()
    }

    /// The frame just decoded into `scratch`: authorize, find the session, account, append.
    /// It reads `scratch` in place: a copy would load every field of the frame, used or not,
    /// because the calls in between could change it.
    @inline(__always)
    private func accept(bytes: UnsafeRawBufferPointer, timestampNanoseconds: UInt64, interface: UInt32) {
        if hasAllowList, scratch.encapsulation != .rspan, !isAllowed(scratch.exporter) {
            discards[Int(DiscardReason.exporterNotAllowed.rawValue)] += 1
            return
        }
        if scratch.anomalies.rawValue != 0 { countAnomalies(scratch.anomalies) }

        let key = SessionKey(scratch, interface: interface)
        let slot = key.cacheSlot & (Self.cacheSize - 1)
        let session: Unmanaged<Session>
        if let cached = cache[slot], cached._withUnsafeGuaranteedRef({ $0.key == key }) {
            session = cached
        } else if let known = sessionIndex[key] {
            session = Unmanaged.passUnretained(known)
            cache[slot] = session
        } else if let created = newSession(key: key, encapsulation: scratch.encapsulation) {
            session = Unmanaged.passUnretained(created)
            cache[slot] = session
        } else {
            refuse(key)
            return
        }
        session._withUnsafeGuaranteedRef { session in
            deliver(bytes: bytes, timestampNanoseconds: timestampNanoseconds, to: session)
        }
    }

    /// A frame whose session could not be had: counted under the refusal's reason. Out of
    /// line: the frame path stays small enough for the compiler to inline it whole.
    @inline(never)
    private func refuse(_ key: SessionKey) {
        discards[Int(refusal.rawValue)] += 1
        if refusal == .sessionLimit { sessionLimitByPrefix.add(key.exporter) }
    }

    /// The rest of `accept`, once the session is known.
    @inline(__always)
    private func deliver(bytes: UnsafeRawBufferPointer, timestampNanoseconds: UInt64, to session: Session) {
        session.lastActive = received
        var timestampNanoseconds = timestampNanoseconds
        if hasTimestampRules, scratch.encapsulation == .erspan3 {
            var implausible = false
            if let switchTime = timestamps.recordTime(
                for: scratch, receive: timestampNanoseconds, mode: session.timestampMode, clock: &session.relativeClock,
                implausible: &implausible)
            {
                timestampNanoseconds = switchTime
            }
            if implausible { implausibleTimestamps += 1 }
        }
        if dropDuplicates, scratch.hasSequence {
            // A transport duplicate: the number seen before and the same bytes.
            // The first frame seen with a number is the reference its repeats are compared to.
            let fingerprint = Self.fingerprint(bytes, offset: scratch.innerOffset, count: scratch.innerCapturedLength)
            if session.sequence.hasSeen(scratch.sequence) {
                if session.recentFingerprint(scratch.sequence) == fingerprint {
                    session.sequence.observe(scratch.sequence)  // still counted as a duplicate
                    discards[Int(DiscardReason.transportDuplicate.rawValue)] += 1
                    return
                }
            } else {
                session.remember(scratch.sequence, fingerprint: fingerprint)
            }
        }
        if scratch.isRawIP, !session.writesMetadata {
            // pcap: one link type per file, so raw IP has its own `-ip` series.
            record(bytes: bytes, timestampNanoseconds: timestampNanoseconds, in: rawIPSession(of: session))
        } else {
            record(bytes: bytes, timestampNanoseconds: timestampNanoseconds, in: session)
        }
        // After the append: a gap this frame reveals belongs to the file it lands in (the
        // recorder reads the accounting when a file starts and ends).
        if scratch.hasSequence { session.sequence.observe(scratch.sequence) }
    }

    /// Appends a decoded frame to `session`'s files, with its metadata when they are pcapng.
    @inline(__always)
    private func record(bytes: UnsafeRawBufferPointer, timestampNanoseconds: UInt64, in session: Session) {
        session.recorderOnFramePath._withUnsafeGuaranteedRef { recorder in
            if scratch.isTruncated || scratch.innerCapturedLength > recorder.maximumCapturedLength { session.truncated += 1 }
            recorder.append(
                timestampNanoseconds: timestampNanoseconds, source: bytes, offset: scratch.innerOffset,
                capturedLength: scratch.innerCapturedLength, removedOffset: scratch.removedOffset,
                removedLength: scratch.removedLength, wireLength: scratch.innerWireLength,
                annotations: session.writesMetadata ? RecordAnnotations(scratch) : nil)
        }
    }

    /// FNV-1a over the mirrored frame: enough to tell a repeated copy from a different frame
    /// that reuses a sequence number. A 64-bit collision would drop such a different frame as a
    /// duplicate: a 2^-64 event per repeated number.
    @inline(__always)
    static func fingerprint(_ bytes: UnsafeRawBufferPointer, offset: Int, count: Int) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for index in offset..<(offset + count) {
            hash = (hash ^ UInt64(bytes[index])) &* 0x0000_0100_0000_01B3
        }
        return hash | 1  // never 0: 0 marks an empty slot
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
    /// are refused (remembered, so the next frame of the key costs no rule scan), or when the
    /// table is full of configured sessions.
    private func newSession(key: SessionKey, encapsulation: Encapsulation) -> Session? {
        refusal = .sessionNotConfigured
        if !acceptUnknownSessions, rejectedKeys.contains(key) { return nil }
        let interfaceName = Int(key.interface) < interfaceNames.count ? interfaceNames[Int(key.interface)] : "if\(key.interface)"
        let rule = sessionRules.isEmpty ? nil : sessionRules.firstMatch(key, interfaceName: interfaceName)
        if rule == nil, !acceptUnknownSessions {
            rejectedKeys.insert(key)
            return nil
        }
        // The session cap: hostile or broken senders cannot make unbounded state (each session
        // holds a buffer, files and counters). Unknown sessions leave the reserved slots to
        // configured ones; when there is no room, the least recently active unknown sessions
        // make room, so a flood of spoofed exporters cannot lock real ones out.
        let unknownLimit = maximumSessions - reservedForRules
        let returning = evictedSessions.isEmpty ? nil : evictedSessions[key]
        let isConfigured = returning?.isConfigured ?? (rule != nil)
        if sessionIndex.count >= maximumSessions || (!isConfigured && unknownSessionCount >= unknownLimit) {
            evictLeastRecentlyActive()
        }
        guard sessionIndex.count < maximumSessions, isConfigured || unknownSessionCount < unknownLimit else {
            refusal = .sessionLimit
            return nil
        }
        if let returning {
            // An evicted session back: its name, rules and counters as before; its recorder
            // starts a new file at this frame, as after an idle timeout.
            evictedSessions[key] = nil
            returning.lastActive = received
            sessionIndex[key] = returning
            sessions.append(returning)
            if let rawIP = returning.rawIPSession { sessions.append(rawIP) }
            if !returning.isConfigured { unknownSessionCount += 1 }
            return returning
        }
        let name = rule.map { sessionRules.rules[$0].name } ?? Session.defaultName(for: key, interfaceName: interfaceName)
        let overrides = rule.map(sessionRules.overrides) ?? .init()
        let description = key.family == .rspan ? "RSPAN VLAN \(key.identifier) on \(interfaceName)" : "exporter \(key.exporter)"
        // A rule matching several keys (an exporter prefix, no id) names the first NAME and the
        // others NAME~2, NAME~3, ... (Storage.makeRecorder keeps names unique).
        let recorder = storage.makeRecorder(
            sessionName: name, linkType: 1, interfaceDescription: description, overrides: overrides)
        // The storage may have had to make the name unique (see Storage.makeRecorder).
        let session = Session(
            key: key, name: recorder.files.name, encapsulation: encapsulation, recorder: recorder,
            writesMetadata: storage.configuration.format == .pcapng, overrides: overrides, interfaceDescription: description,
            isConfigured: rule != nil)
        recorder.sequenceSource = session
        if hasTimestampRules { session.timestampMode = timestamps.mode(for: key.exporter) }
        session.lastActive = received
        sessionIndex[key] = session
        sessions.append(session)
        if rule == nil { unknownSessionCount += 1 }
        return session
    }

    /// Makes room in a full table: finishes the files of the least recently active unknown
    /// sessions (published and counted like any finished file) and takes them out of the
    /// table; a later frame of theirs starts a new session with a new file. A thirty-second
    /// of the unknown sessions goes at once (at least one), so that under a flood the scan
    /// is paid once per many new sessions, not per frame. Configured sessions stay. An evicted
    /// session is kept (for the summary, and to take back when its key returns): memory grows
    /// by one session object per distinct key seen, as files on disk do.
    private func evictLeastRecentlyActive() {
        guard unknownSessionCount > 0 else { return }
        let count = max(1, unknownSessionCount / 32)
        let candidates = sessionIndex.values.filter { !$0.isConfigured }.sorted { $0.lastActive < $1.lastActive }
        var evicted: Set<ObjectIdentifier> = []
        for session in candidates.prefix(count) {
            session.recorder.finishFile()
            if let rawIP = session.rawIPSession {
                rawIP.recorder.finishFile()
                evicted.insert(ObjectIdentifier(rawIP))
            }
            sessionIndex[session.key] = nil
            evictedSessions[session.key] = session
            let slot = session.key.cacheSlot & (Self.cacheSize - 1)
            if let cached = cache[slot], cached.toOpaque() == Unmanaged.passUnretained(session).toOpaque() { cache[slot] = nil }
            evicted.insert(ObjectIdentifier(session))
            unknownSessionCount -= 1
            evictionCount += 1
        }
        sessions.removeAll { evicted.contains(ObjectIdentifier($0)) }
    }

    /// Sessions evicted so far.
    private(set) var evictionCount: Int64 = 0

    /// The `<name>-ip` series of `parent` (pcap output): raw-IP frames (ERSPAN III FT = 2) in
    /// files of link type 101, made at the first such frame. It is a session of its own in the
    /// summary (same key, encapsulation and ID) but not in the index: frames reach it only
    /// through `parent`, whose sequence accounting covers both.
    private func rawIPSession(of parent: Session) -> Session {
        if let existing = parent.rawIPSession { return existing }
        let recorder = storage.makeRecorder(
            sessionName: parent.name + "-ip", linkType: UInt32(LinkType.rawIP.rawValue),
            interfaceDescription: parent.interfaceDescription, overrides: parent.overrides)
        let session = Session(
            key: parent.key, name: recorder.files.name, encapsulation: parent.encapsulation, recorder: recorder,
            writesMetadata: false, overrides: parent.overrides, interfaceDescription: parent.interfaceDescription)
        parent.rawIPSession = session
        sessions.append(session)
        return session
    }

    /// How many refused session keys are remembered (bounded by `RejectedSessionKeys.limit`).
    var rejectedSessionKeyCount: Int { rejectedKeys.count }

    /// Installs reloaded session rules (SIGHUP). Sessions already open keep their names; new
    /// ones, and keys refused before, are judged by the new rules.
    func update(sessionRules rules: [SessionRule], acceptUnknownSessions accept: Bool) {
        sessionRules = SessionRules(rules)
        reservedForRules = min(rules.count, maximumSessions / 2)
        acceptUnknownSessions = accept
        rejectedKeys = RejectedSessionKeys()
    }

    /// The session recorders, for periodic housekeeping by the owning thread.
    var recorders: [SessionRecorder] { sessions.map(\.recorder) }

    /// The counters as they stand; exact once the storage is closed.
    public func summary() -> Summary {
        var summary = Summary()
        let evicted = evictedSessions.values.flatMap { [$0] + ($0.rawIPSession.map { [$0] } ?? []) }
        summary.sessions = (sessions + evicted).map { $0.summary() }.sorted { $0.name < $1.name }
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
            case .duplicate: summary.discarded.duplicate += count
            }
        }
        for (index, entry) in Anomalies.all.enumerated() { summary.anomalies[entry.1] = anomalies[index] }
        summary.anomalies["erspan_ts_implausible"] = implausibleTimestamps
        let statistics = reassembler.statistics
        summary.reassembly.fragments = Int64(statistics.fragments)
        summary.reassembly.datagrams = Int64(statistics.datagrams)
        summary.reassembly.mergedFragments = Int64(statistics.mergedFragments)
        summary.reassembly.incompleteDatagrams = Int64(statistics.incompleteDatagrams)
        summary.reassembly.overlappingDatagrams = Int64(statistics.overlappingDatagrams)
        summary.reassembly.limitedFragments = Int64(statistics.limitedFragments)
        summary.reassembly.pendingFragments = Int64(pendingFragments)
        summary.sessionTable = SessionTableSummary(evicted: evictionCount, sessionLimitByPrefix: sessionLimitByPrefix.counts)
        return summary
    }
}

/// Frames refused for the session cap, by exporter prefix (/24 for IPv4, /64 for IPv6): where
/// a flood comes from. At most `limit` prefixes; later ones count under `other`.
struct PrefixCounts {
    static let limit = 32
    private(set) var counts: [String: Int64] = [:]
    private var last: (IPAddress, String)?

    /// The refused-frame path: allocates only for the first frame of a new prefix.
    mutating func add(_ exporter: IPAddress) {
        let network =
            exporter.isIPv6
            ? IPAddress(ipv6High: exporter.high, low: 0) : IPAddress(ipv4: UInt32(truncatingIfNeeded: exporter.low) & 0xFFFF_FF00)
        let name: String
        if let last, last.0 == network {
            name = last.1
        } else {
            let text = "\(network)/\(exporter.isIPv6 ? 64 : 24)"
            name = counts[text] != nil || counts.count < Self.limit ? text : "other"
            last = (network, name)
        }
        counts[name, default: 0] += 1
    }
}
