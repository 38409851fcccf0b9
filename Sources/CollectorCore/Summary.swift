import Foundation

/// One session's line of the summary (docs/COUNTERS.md).
public struct SessionSummary: Codable, Sendable, Equatable {
    public var name: String
    /// Outer source address; null for RSPAN.
    public var exporter: String?
    public var encapsulation: String
    /// ERSPAN session ID, GRE key, VNI or VLAN; null for ERSPAN I and key-less GRE.
    public var id: UInt32?
    public var packets: Int64
    /// Sum of the captured lengths written.
    public var bytes: Int64
    public var lost: Int64
    public var outOfOrder: Int64
    public var duplicates: Int64
    public var restarts: Int64
    public var truncated: Int64
    public var files: Int64
    public var droppedQueue: Int64
    public var droppedWrite: Int64

    init(
        name: String, exporter: String?, encapsulation: String, id: UInt32?, packets: Int, bytes: Int, lost: Int64,
        outOfOrder: Int64, duplicates: Int64, restarts: Int64, truncated: Int64, files: Int, droppedQueue: Int,
        droppedWrite: Int
    ) {
        self.name = name
        self.exporter = exporter
        self.encapsulation = encapsulation
        self.id = id
        self.packets = Int64(packets)
        self.bytes = Int64(bytes)
        self.lost = lost
        self.outOfOrder = outOfOrder
        self.duplicates = duplicates
        self.restarts = restarts
        self.truncated = truncated
        self.files = Int64(files)
        self.droppedQueue = Int64(droppedQueue)
        self.droppedWrite = Int64(droppedWrite)
    }

    enum CodingKeys: String, CodingKey {
        case name, exporter, encapsulation, id, packets, bytes, lost
        case outOfOrder = "out_of_order"
        case duplicates, restarts, truncated, files
        case droppedQueue = "dropped_queue"
        case droppedWrite = "dropped_write"
    }

    // `exporter` and `id` are written as null rather than left out.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(exporter, forKey: .exporter)
        try container.encode(encapsulation, forKey: .encapsulation)
        try container.encode(id, forKey: .id)
        try container.encode(packets, forKey: .packets)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(lost, forKey: .lost)
        try container.encode(outOfOrder, forKey: .outOfOrder)
        try container.encode(duplicates, forKey: .duplicates)
        try container.encode(restarts, forKey: .restarts)
        try container.encode(truncated, forKey: .truncated)
        try container.encode(files, forKey: .files)
        try container.encode(droppedQueue, forKey: .droppedQueue)
        try container.encode(droppedWrite, forKey: .droppedWrite)
    }
}

/// The session table (docs/COUNTERS.md, "Session table"): sessions evicted to make room, and
/// where the frames refused for the session cap came from.
public struct SessionTableSummary: Codable, Sendable, Equatable {
    /// Unknown sessions whose files were finished to make room for new sessions.
    public var evicted: Int64 = 0
    /// `unknown_session.session_limit` frames by exporter prefix (/24, /64; at most 32
    /// prefixes per capture thread, the rest under `other`).
    public var sessionLimitByPrefix: [String: Int64] = [:]

    public init(evicted: Int64 = 0, sessionLimitByPrefix: [String: Int64] = [:]) {
        self.evicted = evicted
        self.sessionLimitByPrefix = sessionLimitByPrefix
    }

    enum CodingKeys: String, CodingKey {
        case evicted
        case sessionLimitByPrefix = "session_limit_by_prefix"
    }
}

/// The run's accounting: what `replay --json`, `run --json` and `stats --json` print.
/// `packets_received == packets_written + sum(dropped) + sum(discarded)` always holds once the
/// files are closed.
public struct Summary: Codable, Sendable, Equatable {
    public struct Dropped: Codable, Sendable, Equatable {
        public var kernel: Int64 = 0
        public var queue: Int64 = 0
        public var write: Int64 = 0
        public var total: Int64 { kernel + queue + write }
    }

    public struct Discarded: Codable, Sendable, Equatable {
        public var malformed: Int64 = 0
        public var notMirror: Int64 = 0
        public var unknownSession: Int64 = 0
        public var unauthorizedExporter: Int64 = 0
        /// Transport duplicates dropped (only with --drop-duplicates).
        public var duplicate: Int64 = 0
        public var total: Int64 { malformed + notMirror + unknownSession + unauthorizedExporter + duplicate }

        enum CodingKeys: String, CodingKey {
            case malformed
            case notMirror = "not_mirror"
            case unknownSession = "unknown_session"
            case unauthorizedExporter = "unauthorized_exporter"
            case duplicate
        }
    }

    /// Outer IP fragment reassembly (docs/COUNTERS.md: how fragments enter the law).
    public struct Reassembly: Codable, Sendable, Equatable {
        public var fragments: Int64 = 0
        public var datagrams: Int64 = 0
        public var mergedFragments: Int64 = 0
        public var incompleteDatagrams: Int64 = 0
        public var overlappingDatagrams: Int64 = 0
        public var limitedFragments: Int64 = 0
        /// Held right now: received but neither written nor discarded yet (0 at the end).
        public var pendingFragments: Int64 = 0

        enum CodingKeys: String, CodingKey {
            case fragments, datagrams
            case mergedFragments = "merged_fragments"
            case incompleteDatagrams = "incomplete_datagrams"
            case overlappingDatagrams = "overlapping_datagrams"
            case limitedFragments = "limited_fragments"
            case pendingFragments = "pending_fragments"
        }
    }

    /// The post-rotate hook's files that outlived the run.
    public struct Hook: Codable, Sendable, Equatable {
        /// Files still queued, or whose command was still running (and was killed), when the
        /// shutdown wait ended. Listed in the log and run at the next start.
        public var abandoned: Int64 = 0
    }

    /// What replay could read of its inputs (docs/COUNTERS.md, "input"); absent for live capture.
    public struct Input: Codable, Sendable, Equatable {
        /// Inputs given.
        public var files: Int64 = 0
        /// Inputs with an error: unreadable, not a capture file, a read or decompression error,
        /// shrunk while read, or corrupt bytes skipped (each makes the exit status non-zero).
        public var failed: Int64 = 0
        /// Bytes skipped as corrupt: broken record/block framing (up to the next plausible
        /// record or block) and pcapng blocks that cannot be used.
        public var corruptBytes: Int64 = 0
        /// Bytes at the end of an input that do not make a whole record (a cut file), and the
        /// unread rest of an input that shrank or whose compressed stream broke.
        public var truncatedBytes: Int64 = 0

        public init() {}

        enum CodingKeys: String, CodingKey {
            case files, failed
            case corruptBytes = "corrupt_bytes"
            case truncatedBytes = "truncated_bytes"
        }
    }

    public var sessions: [SessionSummary] = []
    public var packetsReceived: Int64 = 0
    public var packetsWritten: Int64 = 0
    public var dropped = Dropped()
    public var discarded = Discarded()
    /// Every discard reason by its dotted name, e.g. `malformed.gre_truncated`.
    public var discardReasons: [String: Int64] = [:]
    /// Frames written despite something unusual, e.g. `gre_checksum_bad`.
    public var anomalies: [String: Int64] = [:]
    public var reassembly = Reassembly()
    public var hook = Hook()
    /// Evictions and session-cap refusals (nil only in a summary from an older collector).
    public var sessionTable: SessionTableSummary?
    public var input: Input?

    enum CodingKeys: String, CodingKey {
        case sessions
        case packetsReceived = "packets_received"
        case packetsWritten = "packets_written"
        case dropped, discarded
        case discardReasons = "discard_reasons"
        case anomalies
        case reassembly
        case hook
        case sessionTable = "session_table"
        case input
    }

    public init() {}

    /// The sum of several capture threads' summaries (their sessions are disjoint).
    public static func merged(_ parts: [Summary]) -> Summary {
        var total = Summary()
        for part in parts {
            total.sessions += part.sessions
            total.packetsReceived += part.packetsReceived
            total.packetsWritten += part.packetsWritten
            total.dropped.kernel += part.dropped.kernel
            total.dropped.queue += part.dropped.queue
            total.dropped.write += part.dropped.write
            total.discarded.malformed += part.discarded.malformed
            total.discarded.notMirror += part.discarded.notMirror
            total.discarded.unknownSession += part.discarded.unknownSession
            total.discarded.unauthorizedExporter += part.discarded.unauthorizedExporter
            total.discarded.duplicate += part.discarded.duplicate
            total.discardReasons.merge(part.discardReasons, uniquingKeysWith: +)
            total.anomalies.merge(part.anomalies, uniquingKeysWith: +)
            total.reassembly.fragments += part.reassembly.fragments
            total.reassembly.datagrams += part.reassembly.datagrams
            total.reassembly.mergedFragments += part.reassembly.mergedFragments
            total.reassembly.incompleteDatagrams += part.reassembly.incompleteDatagrams
            total.reassembly.overlappingDatagrams += part.reassembly.overlappingDatagrams
            total.reassembly.limitedFragments += part.reassembly.limitedFragments
            total.reassembly.pendingFragments += part.reassembly.pendingFragments
            total.hook.abandoned += part.hook.abandoned
            if let table = part.sessionTable {
                var sum = total.sessionTable ?? SessionTableSummary()
                sum.evicted += table.evicted
                sum.sessionLimitByPrefix.merge(table.sessionLimitByPrefix, uniquingKeysWith: +)
                total.sessionTable = sum
            }
        }
        total.sessions.sort { $0.name < $1.name }
        return total
    }

    /// Whether the accounting law holds (fragments held for reassembly are on their way: 0 at the end).
    public var isConserved: Bool {
        packetsReceived == packetsWritten + dropped.total + discarded.total + reassembly.pendingFragments
    }

    /// Exactly one JSON document.
    public func jsonText() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data = (try? encoder.encode(self)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// A table for people: one line per session, then the totals and non-zero reasons.
    public func table() -> String {
        let headers = ["SESSION", "ENCAP", "ID", "PACKETS", "BYTES", "LOST", "OOO", "DUP", "TRUNC", "FILES"]
        var rows: [[String]] = sessions.map { s in
            [
                s.name, s.encapsulation, s.id.map(String.init) ?? "-", "\(s.packets)", "\(s.bytes)", "\(s.lost)",
                "\(s.outOfOrder)", "\(s.duplicates)", "\(s.truncated)", "\(s.files)",
            ]
        }
        rows.insert(headers, at: 0)
        var widths = Array(repeating: 0, count: headers.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        var text = ""
        for row in rows {
            let cells = row.enumerated().map { index, cell in
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                return index < 2 ? cell + pad : pad + cell
            }
            text += cells.joined(separator: "  ") + "\n"
        }
        if sessions.isEmpty { text += "(no sessions)\n" }
        text += "\nreceived \(packetsReceived)  written \(packetsWritten)"
        text += "  dropped kernel \(dropped.kernel) queue \(dropped.queue) write \(dropped.write)"
        text += "  discarded malformed \(discarded.malformed) not_mirror \(discarded.notMirror)"
        text += " unknown_session \(discarded.unknownSession) unauthorized_exporter \(discarded.unauthorizedExporter)"
        text += " duplicate \(discarded.duplicate)\n"
        let reasons = discardReasons.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        if !reasons.isEmpty { text += "reasons: " + reasons.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n" }
        if reassembly.fragments > 0 {
            text += "fragments \(reassembly.fragments): rebuilt \(reassembly.datagrams) datagrams"
            text += ", incomplete \(reassembly.incompleteDatagrams), overlapping \(reassembly.overlappingDatagrams)"
            text += ", refused by caps \(reassembly.limitedFragments), pending \(reassembly.pendingFragments)\n"
        }
        if hook.abandoned > 0 {
            text += "post-rotate: \(hook.abandoned) files abandoned at shutdown (run at the next start)\n"
        }
        if let sessionTable, sessionTable.evicted > 0 || !sessionTable.sessionLimitByPrefix.isEmpty {
            let prefixes = sessionTable.sessionLimitByPrefix.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
            text += "session table: evicted \(sessionTable.evicted)"
            if !prefixes.isEmpty {
                text += "; session_limit by exporter prefix: " + prefixes.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            }
            text += "\n"
        }
        if let input, input.failed > 0 || input.corruptBytes > 0 || input.truncatedBytes > 0 {
            text += "inputs \(input.files): failed \(input.failed), corrupt bytes skipped \(input.corruptBytes)"
            text += ", truncated bytes \(input.truncatedBytes)\n"
        }
        let notable = anomalies.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        if !notable.isEmpty { text += "anomalies: " + notable.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n" }
        return text
    }
}
