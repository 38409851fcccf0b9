/// IPv4 and IPv6 fragment reassembly of the outer datagrams, before GRE/UDP decoding.
///
/// Mirror traffic gets fragmented on paths with a smaller MTU (ERSPAN adds 50+ bytes to
/// full-size frames), and Cisco, Gigamon and most tools do not reassemble it. Here each
/// datagram is keyed by (source, destination, protocol, identification); fragments may come
/// in any order; any overlap discards the whole datagram, later fragments included (RFC 5722,
/// applied to IPv4 as well: a mirror stream has no business overlapping); a datagram not
/// complete within the timeout is discarded; a global, a per-exporter and a datagram-count cap
/// bound the memory hostile input can take. Only fragments allocate (their bytes are kept);
/// the frame path of unfragmented traffic never comes here.
///
/// The completed datagram is handed back as a whole frame (the first fragment's link header,
/// the IP header rewritten as unfragmented, the payload), so the decoder reads it like any
/// other frame.
public final class FragmentReassembler {
    public struct Limits: Sendable, Hashable {
        public var timeoutNanoseconds: UInt64 = 5_000_000_000
        public var maximumBytes: Int = 64 << 20
        public var maximumBytesPerExporter: Int = 16 << 20
        public var maximumDatagrams: Int = 16_384

        public init() {}
    }

    /// Counters since the start (the pipeline reports them under `reassembly`).
    public struct Statistics: Sendable, Equatable {
        /// Fragments received.
        public var fragments = 0
        /// Datagrams rebuilt, and the fragments that went into them.
        public var datagrams = 0
        public var mergedFragments = 0
        /// Datagrams given up: overlapping, incomplete at timeout or at the end.
        public var overlappingDatagrams = 0
        public var incompleteDatagrams = 0
        /// Fragments refused by the memory caps.
        public var limitedFragments = 0
        /// Fragments and bytes held right now.
        public var pendingFragments = 0
        public var pendingBytes = 0

        public init() {}
    }

    /// What became of one fragment.
    public enum Outcome {
        /// Kept until its datagram is complete.
        case pending
        /// This fragment completed a datagram of `fragments` fragments: `frame` (valid until the
        /// next call) is the reassembled frame.
        case completed(frame: UnsafeRawBufferPointer, fragments: Int)
        /// Discarded (this fragment alone).
        case discarded(DiscardReason)
    }

    private struct Key: Hashable {
        var source: IPAddress
        var destination: IPAddress
        var identification: UInt32
        var protocolOrZero: UInt8
    }

    private struct Piece {
        var start: Int
        var bytes: [UInt8]
        var end: Int { start + bytes.count }
    }

    private final class Datagram {
        let key: Key
        let firstSeen: UInt64
        var pieces: [Piece] = []
        /// Link + IP header bytes of the offset-0 fragment (IPv6: up to the Fragment header).
        var headers: [UInt8]?
        var isIPv6 = false
        /// IPv6: offset, inside `headers`, of the byte pointing at the Fragment header, and the
        /// next header the Fragment header names.
        var pointerOffset = 0
        var fragmentNextHeader: UInt8 = 0
        var ipOffset = 0
        /// Payload length, known once the last fragment (MF clear) arrived.
        var totalLength: Int?
        var bytes = 0
        var fragmentCount = 0
        /// Overlap seen: everything of this datagram is discarded until it times out.
        var poisoned = false

        init(key: Key, firstSeen: UInt64) {
            self.key = key
            self.firstSeen = firstSeen
        }
    }

    public let limits: Limits
    public private(set) var statistics = Statistics()
    private var datagrams: [Key: Datagram] = [:]
    private var order: [Datagram] = []
    private var orderHead = 0
    private var bytesByExporter: [IPAddress: Int] = [:]
    private var output: [UInt8] = []
    private var now: UInt64 = 0
    /// Fragments discarded as a consequence of earlier ones (overlap, timeout), per reason,
    /// waiting for the caller to count them (`takeDiscards`).
    private var pendingDiscards: [(DiscardReason, Int)] = []

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Counts of fragments discarded since the last call, by reason (timeouts, overlaps).
    public func takeDiscards() -> [(DiscardReason, Int)] {
        defer { pendingDiscards.removeAll(keepingCapacity: true) }
        return pendingDiscards
    }

    /// Adds a fragment (a frame the decoder classified `.ipFragment`).
    public func add(
        _ frame: UnsafeRawBufferPointer, wireLength: Int, timestampNanoseconds: UInt64, offloadedTag: VLANTag? = nil,
        linkType: LinkType = .ethernet
    ) -> Outcome {
        statistics.fragments += 1
        now = max(now, timestampNanoseconds)
        expire()
        guard let parsed = Self.parse(frame, wireLength: wireLength, offloadedTag: offloadedTag, linkType: linkType) else {
            return .discarded(.ipFragment)
        }
        var datagram = datagrams[parsed.key]
        if datagram == nil {
            guard datagrams.count < limits.maximumDatagrams else {
                statistics.limitedFragments += 1
                return .discarded(.ipFragmentLimit)
            }
            let created = Datagram(key: parsed.key, firstSeen: now)
            datagrams[parsed.key] = created
            order.append(created)
            datagram = created
        }
        let entry = datagram!
        if entry.poisoned {
            entry.fragmentCount += 1
            return .discarded(.ipFragmentOverlap)
        }
        let payload = UnsafeRawBufferPointer(rebasing: frame[parsed.payloadStart..<parsed.payloadEnd])
        let start = parsed.fragmentOffset
        let end = start + payload.count
        // Overlap with anything already held (exact repeats included): the datagram is gone.
        // A second last fragment, one past the end, or a last fragment ending before pieces
        // already held: the sizes disagree, which is as bad as an overlap.
        if entry.pieces.contains(where: { start < $0.end && $0.start < end })
            || (entry.totalLength != nil && (end > entry.totalLength! || !parsed.moreFragments))
            || (!parsed.moreFragments && entry.pieces.contains { $0.end > end })
        {
            poison(entry)
            return .discarded(.ipFragmentOverlap)
        }
        let exporterBytes = bytesByExporter[parsed.key.source, default: 0]
        guard statistics.pendingBytes + payload.count <= limits.maximumBytes,
            exporterBytes + payload.count <= limits.maximumBytesPerExporter
        else {
            statistics.limitedFragments += 1
            if entry.fragmentCount == 0 { remove(entry) }
            return .discarded(.ipFragmentLimit)
        }
        entry.pieces.append(Piece(start: start, bytes: Array(payload)))
        entry.bytes += payload.count
        entry.fragmentCount += 1
        statistics.pendingFragments += 1
        statistics.pendingBytes += payload.count
        bytesByExporter[parsed.key.source] = exporterBytes + payload.count
        if !parsed.moreFragments { entry.totalLength = end }
        if start == 0 {
            entry.headers = Array(frame[0..<parsed.headerEnd])
            entry.isIPv6 = parsed.isIPv6
            entry.ipOffset = parsed.ipOffset
            entry.pointerOffset = parsed.pointerOffset
            entry.fragmentNextHeader = parsed.fragmentNextHeader
        }
        guard let total = entry.totalLength, let headers = entry.headers, entry.bytes == total else { return .pending }
        // The rebuilt length field (IPv4 Total Length, IPv6 Payload Length without the Fragment
        // header) must fit its 16 bits; a longer datagram cannot exist: its fragments are unusable.
        let lengthField = headers.count - entry.ipOffset - (entry.isIPv6 ? 40 + 8 : 0) + total
        guard lengthField <= 65_535 else {
            pendingDiscards.append((.ipFragment, entry.fragmentCount - 1))
            remove(entry)
            return .discarded(.ipFragment)
        }
        // Complete: no overlaps and the sizes add up, so the pieces tile [0, total).
        assemble(entry, total: total)
        let count = entry.fragmentCount
        statistics.datagrams += 1
        statistics.mergedFragments += count
        remove(entry)
        return output.withUnsafeBytes { .completed(frame: UnsafeRawBufferPointer(start: $0.baseAddress, count: $0.count), fragments: count) }
    }

    /// Gives up every datagram still waiting (end of a replay, shutdown).
    public func flush() {
        for datagram in order[orderHead...] where datagrams[datagram.key] === datagram {
            giveUp(datagram)
        }
        order.removeAll()
        orderHead = 0
    }

    /// Gives up datagrams older than the timeout, as of `timestampNanoseconds` (live capture
    /// calls this periodically; `add` does it as it goes).
    public func expire(asOf timestampNanoseconds: UInt64) {
        now = max(now, timestampNanoseconds)
        expire()
    }

    private func expire() {
        while orderHead < order.count {
            let oldest = order[orderHead]
            if datagrams[oldest.key] !== oldest {  // already completed or removed
                orderHead += 1
                continue
            }
            guard now &- oldest.firstSeen > limits.timeoutNanoseconds, now >= oldest.firstSeen else { break }
            orderHead += 1
            giveUp(oldest)
        }
        if orderHead > 1024, orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    private func giveUp(_ datagram: Datagram) {
        if datagram.poisoned {
            // Its fragments were counted as overlapping when they came.
        } else if datagram.fragmentCount > 0 {
            statistics.incompleteDatagrams += 1
            pendingDiscards.append((.ipFragmentIncomplete, datagram.fragmentCount))
        }
        remove(datagram)
    }

    private func poison(_ datagram: Datagram) {
        statistics.overlappingDatagrams += 1
        // The fragments held so far and this one.
        pendingDiscards.append((.ipFragmentOverlap, datagram.fragmentCount))
        release(datagram)
        datagram.fragmentCount = 1
        datagram.poisoned = true
    }

    private func release(_ datagram: Datagram) {
        statistics.pendingFragments -= datagram.pieces.count
        statistics.pendingBytes -= datagram.bytes
        let left = bytesByExporter[datagram.key.source, default: 0] - datagram.bytes
        bytesByExporter[datagram.key.source] = left > 0 ? left : nil
        datagram.pieces = []
        datagram.bytes = 0
        datagram.headers = nil
    }

    private func remove(_ datagram: Datagram) {
        release(datagram)
        datagrams[datagram.key] = nil
    }

    private func assemble(_ datagram: Datagram, total: Int) {
        var headers = datagram.headers!
        if datagram.isIPv6 {
            // Drop the Fragment header: its predecessor names what it named; shorter payload.
            headers[datagram.pointerOffset] = datagram.fragmentNextHeader
            headers.removeLast(8)
            let payloadLength = headers.count - datagram.ipOffset - 40 + total
            headers[datagram.ipOffset + 4] = UInt8(truncatingIfNeeded: payloadLength >> 8)
            headers[datagram.ipOffset + 5] = UInt8(truncatingIfNeeded: payloadLength)
        } else {
            let headerLength = headers.count - datagram.ipOffset
            let totalLength = headerLength + total
            let ip = datagram.ipOffset
            headers[ip + 2] = UInt8(truncatingIfNeeded: totalLength >> 8)
            headers[ip + 3] = UInt8(truncatingIfNeeded: totalLength)
            headers[ip + 6] &= 0x40  // keep DF, clear MF and the offset
            headers[ip + 7] = 0
            headers[ip + 10] = 0
            headers[ip + 11] = 0
            var sum: UInt32 = 0
            for index in stride(from: ip, to: ip + headerLength, by: 2) {
                sum += UInt32(headers[index]) << 8 | UInt32(headers[index + 1])
            }
            while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
            headers[ip + 10] = UInt8(truncatingIfNeeded: ~sum >> 8)
            headers[ip + 11] = UInt8(truncatingIfNeeded: ~sum)
        }
        output.removeAll(keepingCapacity: true)
        output.append(contentsOf: headers)
        output.append(contentsOf: repeatElement(0, count: total))
        let base = headers.count
        for piece in datagram.pieces {
            output.replaceSubrange((base + piece.start)..<(base + piece.end), with: piece.bytes)
        }
    }

    private struct ParsedFragment {
        var key: Key
        var isIPv6: Bool
        var ipOffset: Int
        /// End of what the first fragment contributes as headers.
        var headerEnd: Int
        var payloadStart: Int
        var payloadEnd: Int
        var fragmentOffset: Int
        var moreFragments: Bool
        var pointerOffset = 0
        var fragmentNextHeader: UInt8 = 0
    }

    /// Finds the IP header and fragment fields of a frame of `linkType` (Ethernet, Linux cooked
    /// v1/v2 or raw IP); nil when the frame cannot be a usable fragment (cut by the capture,
    /// malformed, payload not a multiple of 8 where it must be, past 64 KiB).
    private static func parse(
        _ frame: UnsafeRawBufferPointer, wireLength: Int, offloadedTag: VLANTag?, linkType: LinkType
    ) -> ParsedFragment? {
        let etherType: UInt16
        let ipOffset: Int
        if linkType == .ethernet {
            guard let ethernet = try? EthernetHeader(parsing: frame, offloadedTag: offloadedTag) else { return nil }
            (etherType, ipOffset) = (ethernet.etherType, ethernet.payloadOffset)
        } else {
            guard let layer = try? CookedLinkHeader.networkLayer(frame, linkType: linkType) else { return nil }
            (etherType, ipOffset) = layer
        }
        var parsed: ParsedFragment
        switch etherType {
        case 0x0800:
            guard let ip = try? IPv4Header(parsing: frame, at: ipOffset, wireLength: wireLength), ip.isFragment,
                ip.datagramEnd <= frame.count
            else { return nil }
            parsed = ParsedFragment(
                key: Key(source: ip.source, destination: ip.destination, identification: UInt32(ip.identification), protocolOrZero: ip.protocolNumber),
                isIPv6: false, ipOffset: ipOffset, headerEnd: ip.payloadOffset, payloadStart: ip.payloadOffset,
                payloadEnd: ip.datagramEnd, fragmentOffset: ip.fragmentOffset, moreFragments: ip.moreFragments)
        case 0x86DD:
            guard let ip = try? IPv6Header(parsing: frame, at: ipOffset, wireLength: wireLength), ip.isFragment,
                let fragmentHeader = ip.fragmentHeaderOffset, ip.datagramEnd <= frame.count
            else { return nil }
            parsed = ParsedFragment(
                key: Key(source: ip.source, destination: ip.destination, identification: ip.identification, protocolOrZero: 0),
                isIPv6: true, ipOffset: ipOffset, headerEnd: fragmentHeader + 8, payloadStart: fragmentHeader + 8,
                payloadEnd: ip.datagramEnd, fragmentOffset: ip.fragmentOffset, moreFragments: ip.moreFragments,
                pointerOffset: ip.fragmentPointerOffset, fragmentNextHeader: frame.byte(at: fragmentHeader))
        default:
            return nil
        }
        let length = parsed.payloadEnd - parsed.payloadStart
        guard length > 0, parsed.fragmentOffset + length <= 65_535 else { return nil }
        if parsed.moreFragments, length % 8 != 0 { return nil }
        return parsed
    }
}
