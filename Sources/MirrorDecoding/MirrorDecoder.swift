/// Decodes one captured frame into a `MirrorFrame` or a `DiscardReason`.
///
/// The walk follows PROTOCOLS.md B.1: link layer (RSPAN decided on the outermost tag), IP
/// bounded by its own length, then GRE (ERSPAN I/II/III, TEB) or UDP (VXLAN, VXLAN-GPE and
/// Geneve, each on its own ports). The classifier trusts the ERSPAN Ver nibble over the GRE
/// protocol type and treats 0x88BE without S as Type I, as Wireshark, Zeek, Suricata, Arkime
/// and tcpdump do. Pure and allocation-free: the
/// result only holds offsets into the caller's bytes. A class, immutable: its configuration
/// holds kilobyte-sized inline tables, and a struct would be copied whole into every call made
/// through the pipeline that owns it (measured: 1.1 KB of memcpy per frame).
public final class MirrorDecoder: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// VLAN IDs whose outermost tag marks an RSPAN frame.
        public var rspanVLANs: VLANSet
        /// UDP destination ports that carry VXLAN.
        public var vxlanPorts: VXLANPorts
        /// UDP destination ports that carry VXLAN-GPE.
        public var vxlanGPEPorts = VXLANPorts([4790])
        /// UDP destination ports that carry Geneve.
        public var genevePorts = VXLANPorts([6081])
        /// Verify GRE checksums (C bit) on complete packets and count failures.
        public var verifyGREChecksum: Bool
        /// Exporters whose ERSPAN type is forced (devices that break the rules).
        public var classifierOverrides = ClassifierOverrides()

        public init(rspanVLANs: VLANSet = VLANSet(), vxlanPorts: VXLANPorts = VXLANPorts(), verifyGREChecksum: Bool = true) {
            self.rspanVLANs = rspanVLANs
            self.vxlanPorts = vxlanPorts
            self.verifyGREChecksum = verifyGREChecksum
        }
    }

    public let configuration: Configuration
    // The two tables that may be large (the RSPAN VLAN bitmap, 512 bytes, and the classifier
    // overrides) are consulted only behind these flags: reading them copies them (measured:
    // a kilobyte of memcpy per frame when every frame looked).
    private let checksRSPANVLANs: Bool
    private let hasClassifierOverrides: Bool
    /// Every UDP mirror port, for telling a nested mirror stream, and a one-word prefilter of
    /// them (bit `port & 63`): most inner frames are UDP to other ports, and are told apart by
    /// one test instead of three list scans.
    private let mirrorPorts: UDPMirrorPorts
    private let mirrorPortBits: UInt64

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        mirrorPorts = UDPMirrorPorts(
            vxlan: configuration.vxlanPorts, vxlanGPE: configuration.vxlanGPEPorts, geneve: configuration.genevePorts)
        mirrorPortBits = (configuration.vxlanPorts.ports + configuration.vxlanGPEPorts.ports + configuration.genevePorts.ports)
            .reduce(UInt64(0)) { $0 | 1 << UInt64($1 & 63) }
        checksRSPANVLANs = !configuration.rspanVLANs.isEmpty
        hasClassifierOverrides = !configuration.classifierOverrides.isEmpty
    }

    /// Decodes `bytes`, the captured part of a frame whose length on the wire was `wireLength`.
    /// `offloadedTag` is the outer VLAN tag a NIC stripped (AF_PACKET metadata), if any.
    @inlinable
    public func decode(
        _ bytes: UnsafeRawBufferPointer, wireLength: Int, linkType: LinkType = .ethernet, offloadedTag: VLANTag? = nil
    ) -> DecodeResult {
        var frame = MirrorFrame()
        if let reason = decode(bytes, wireLength: wireLength, linkType: linkType, offloadedTag: offloadedTag, into: &frame) {
            return .discard(reason)
        }
        return .mirror(frame)
    }

    /// The same, filling `frame` in place (the per-frame path: no copies of the result).
    /// Returns nil for a mirror frame, else why it is not one; `frame` is then unspecified.
    @inlinable
    public func decode(
        _ bytes: UnsafeRawBufferPointer, wireLength: Int, linkType: LinkType = .ethernet, offloadedTag: VLANTag? = nil,
        into frame: inout MirrorFrame
    ) -> DiscardReason? {
        do {
            try decodeFrame(bytes, wireLength: wireLength, linkType: linkType, offloadedTag: offloadedTag, into: &frame)
            return nil
        } catch {
            return error
        }
    }

    @usableFromInline
    func decodeFrame(
        _ bytes: UnsafeRawBufferPointer, wireLength: Int, linkType: LinkType, offloadedTag: VLANTag?,
        into frame: inout MirrorFrame
    ) throws(DiscardReason) {
        let etherType: UInt16
        let ipOffset: Int
        switch linkType {
        case .ethernet:
            let ethernet = try EthernetHeader(parsing: bytes, offloadedTag: offloadedTag)
            if checksRSPANVLANs, let tag = ethernet.outermostTag, isRSPAN(tag) {
                return try rspanFrame(bytes, wireLength: wireLength, tag: tag, tagInBytes: ethernet.outermostTagInBytes, into: &frame)
            }
            etherType = ethernet.etherType
            ipOffset = ethernet.payloadOffset
        case .linuxCooked, .linuxCookedV2, .rawIP:
            (etherType, ipOffset) = try CookedLinkHeader.networkLayer(bytes, linkType: linkType)
        }

        let exporter: IPAddress
        let protocolNumber: UInt8
        let payloadOffset: Int
        let datagramEnd: Int
        switch etherType {
        case 0x0800:
            let ip = try IPv4Header(parsing: bytes, at: ipOffset, wireLength: wireLength)
            guard ip.protocolNumber == IPv4Header.protocolGRE || ip.protocolNumber == IPv4Header.protocolUDP else {
                throw .ipProtocol
            }
            guard !ip.isFragment else { throw .ipFragment }
            (exporter, protocolNumber, payloadOffset, datagramEnd) = (ip.source, ip.protocolNumber, ip.payloadOffset, ip.datagramEnd)
        case 0x86DD:
            let ip = try IPv6Header(parsing: bytes, at: ipOffset, wireLength: wireLength)
            // A fragment's next header may be another extension header (the transport is then
            // only known after reassembly): such fragments count as fragments, not as non-mirror.
            if ip.isFragment, ip.protocolNumber != IPv4Header.protocolGRE, ip.protocolNumber != IPv4Header.protocolUDP,
                IPv6Header.isExtensionHeader(ip.protocolNumber)
            {
                throw .ipFragment
            }
            guard ip.protocolNumber == IPv4Header.protocolGRE || ip.protocolNumber == IPv4Header.protocolUDP else {
                throw .ipProtocol
            }
            guard !ip.isFragment else { throw .ipFragment }
            (exporter, protocolNumber, payloadOffset, datagramEnd) = (ip.source, ip.protocolNumber, ip.payloadOffset, ip.datagramEnd)
        default:
            throw .nonIP
        }

        // Everything below is bounded by the datagram (padding and outer FCS excluded) and by
        // what was captured (snap truncation).
        let end = min(datagramEnd, bytes.count)
        let snapTruncated = datagramEnd > bytes.count
        if protocolNumber == IPv4Header.protocolGRE {
            try greFrame(bytes, at: payloadOffset, end: end, datagramEnd: datagramEnd, exporter: exporter, into: &frame)
        } else {
            try udpFrame(bytes, at: payloadOffset, end: end, exporter: exporter, into: &frame)
        }

        frame.innerCapturedLength = end - frame.innerOffset
        frame.innerWireLength = datagramEnd - frame.innerOffset
        if frame.isRawIP {
            try rawIPFrame(bytes, snapTruncated: snapTruncated, into: &frame)
            return
        }
        guard frame.innerCapturedLength >= EthernetHeader.length else { throw .innerTruncated }
        frame.isTruncated = snapTruncated || frame.erspan.truncated
        let inner = InnerFrame.inspect(bytes, at: frame.innerOffset, count: frame.innerCapturedLength)
        if let stated = inner.statedLength, stated > frame.innerWireLength {
            frame.innerWireLength = stated
            frame.isTruncated = true
        }
        if inner.carriesGRE || (inner.udpDestinationPort >= 0 && isMirrorPort(UInt16(truncatingIfNeeded: inner.udpDestinationPort))) {
            frame.anomalies.insert(.nestedMirror)
        }
    }

    private func greFrame(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, end: Int, datagramEnd: Int, exporter: IPAddress,
        into frame: inout MirrorFrame
    ) throws(DiscardReason) {
        let gre = try GREHeader(parsing: bytes, at: offset, end: end)
        var anomalies = gre.anomalies
        if gre.hasChecksum, configuration.verifyGREChecksum, datagramEnd == end,
            !GREHeader.checksumIsValid(bytes, from: offset, to: end)
        {
            anomalies.insert(.greChecksumBad)
        }
        var forced: ClassifierOverrides.ForcedType?
        if hasClassifierOverrides, gre.protocolType != GREHeader.protocolTransparentEthernet {
            forced = forcedType(for: exporter)
        }
        switch gre.protocolType {
        case _ where forced != nil:
            try forcedERSPAN(forced!, bytes, gre: gre, end: end, exporter: exporter, into: &frame)
        case GREHeader.protocolTransparentEthernet:
            frame.reset(encapsulation: .gre, exporter: exporter, innerOffset: gre.payloadOffset)
            if let key = gre.key {
                frame.sessionID = key
                frame.hasSessionID = true
            }
        case GREHeader.protocolERSPANTypeIorII where !gre.hasSequence:
            frame.reset(encapsulation: .erspan1, exporter: exporter, innerOffset: gre.payloadOffset)
            if gre.flags & (GREHeader.checksumBit | GREHeader.keyBit) != 0 { anomalies.insert(.erspanTypeIWithOptions) }
        default:
            switch try ERSPANHeader.version(bytes, at: gre.payloadOffset, end: end) {
            case 1:
                frame.reset(encapsulation: .erspan2, exporter: exporter, innerOffset: 0)
                frame.innerOffset = try ERSPANHeader.parseTypeII(bytes, at: gre.payloadOffset, end: end, into: &frame.erspan)
                if gre.protocolType != GREHeader.protocolERSPANTypeIorII { anomalies.insert(.erspanVersionMismatch) }
            case 2:
                frame.reset(encapsulation: .erspan3, exporter: exporter, innerOffset: 0)
                frame.innerOffset = try ERSPANHeader.parseTypeIII(bytes, at: gre.payloadOffset, end: end, into: &frame.erspan)
                if gre.protocolType != GREHeader.protocolERSPANTypeIII { anomalies.insert(.erspanVersionMismatch) }
                // PROTOCOLS.md B.1 step 8: FT 0 Ethernet, FT 2 raw IP; any other FT is counted
                // (FT 7 exists in the wild, with an unexplained prefix), never guessed at.
                switch frame.erspan.frameType {
                case ERSPANHeader.frameTypeEthernet: break
                case ERSPANHeader.frameTypeIP: frame.isRawIP = true
                default: throw .erspanFrameType
                }
            default:
                throw .erspanVersion
            }
            frame.sessionID = UInt32(frame.erspan.sessionID)
            frame.hasSessionID = true
        }
        if let sequence = gre.sequence {
            frame.sequence = sequence
            frame.hasSequence = true
        }
        frame.greKey = gre.key
        frame.anomalies.formUnion(anomalies)
    }

    /// UDP to a VXLAN, Geneve or VXLAN-GPE port (a port is in one list only; VXLAN, the
    /// common case, is looked up first).
    private func udpFrame(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, end: Int, exporter: IPAddress, into frame: inout MirrorFrame
    ) throws(DiscardReason) {
        let port = try UDPHeader.destinationPort(bytes, at: offset, end: end)
        let headerOffset = offset + UDPHeader.length
        let rawIPVersion: UInt8
        if configuration.vxlanPorts.contains(port) {
            let vxlan = try VXLANHeader(parsing: bytes, at: headerOffset, end: end)
            frame.reset(encapsulation: .vxlan, exporter: exporter, innerOffset: headerOffset + VXLANHeader.length)
            frame.sessionID = vxlan.vni
            frame.anomalies = vxlan.anomalies
            rawIPVersion = 0
        } else if configuration.genevePorts.contains(port) {
            let geneve = try GeneveHeader(parsing: bytes, at: headerOffset, end: end)
            frame.reset(encapsulation: .geneve, exporter: exporter, innerOffset: geneve.payloadOffset)
            frame.sessionID = geneve.vni
            frame.anomalies = geneve.anomalies
            frame.isRawIP = geneve.isRawIP
            rawIPVersion = geneve.rawIPVersion
        } else if configuration.vxlanGPEPorts.contains(port) {
            let gpe = try VXLANGPEHeader(parsing: bytes, at: headerOffset, end: end)
            frame.reset(encapsulation: .vxlan, exporter: exporter, innerOffset: headerOffset + VXLANGPEHeader.length)
            frame.sessionID = gpe.vni
            frame.anomalies = gpe.anomalies
            frame.isRawIP = gpe.isRawIP
            rawIPVersion = gpe.rawIPVersion
        } else {
            throw .udpPort
        }
        frame.hasSessionID = true
        // Unlike ERSPAN FT = 2, these headers name the IP version: a payload that disagrees
        // is not what the sender meant (too short a payload is left to rawIPFrame to count).
        if frame.isRawIP, end - frame.innerOffset >= IPv4Header.minimumLength,
            bytes.byte(at: frame.innerOffset) >> 4 != rawIPVersion
        {
            throw .innerIPVersion
        }
    }

    @inline(__always)
    private func isMirrorPort(_ port: UInt16) -> Bool {
        mirrorPortBits & (1 << UInt64(port & 63)) != 0 && isListedMirrorPort(port)
    }

    @inline(never)
    private func isListedMirrorPort(_ port: UInt16) -> Bool { mirrorPorts.contains(port) }

    @inline(never)
    private func isRSPAN(_ tag: VLANTag) -> Bool { configuration.rspanVLANs.contains(tag.vlanID) }

    @inline(never)
    private func forcedType(for exporter: IPAddress) -> ClassifierOverrides.ForcedType? {
        configuration.classifierOverrides.forcedType(for: exporter)
    }

    /// A raw-IP inner frame (ERSPAN III FT = 2, Geneve or VXLAN-GPE carrying IP): an IPv4 or
    /// IPv6 packet without link header. It needs a whole minimal IPv4 header (20 bytes) and a
    /// version nibble of 4 or 6; its own length field reveals truncation and a nested mirror as
    /// for Ethernet inner frames.
    private func rawIPFrame(_ bytes: UnsafeRawBufferPointer, snapTruncated: Bool, into frame: inout MirrorFrame) throws(DiscardReason) {
        let offset = frame.innerOffset
        let count = frame.innerCapturedLength
        guard count >= IPv4Header.minimumLength else { throw .innerTruncated }
        let version = bytes.byte(at: offset) >> 4
        guard version == 4 || version == 6 else { throw .erspanFrameType }
        frame.isTruncated = snapTruncated || frame.erspan.truncated
        let stated = version == 4 ? Int(bytes.bigEndian16(at: offset + 2)) : 40 + Int(bytes.bigEndian16(at: offset + 4))
        if stated > frame.innerWireLength {
            frame.innerWireLength = stated
            frame.isTruncated = true
        }
        let nested: Bool
        if version == 4 {
            let protocolNumber = bytes.byte(at: offset + 9)
            let headerLength = Int(bytes.byte(at: offset) & 0x0F) * 4
            nested =
                protocolNumber == IPv4Header.protocolGRE
                || (protocolNumber == IPv4Header.protocolUDP && count >= headerLength + 4
                    && isMirrorPort(bytes.bigEndian16(at: offset + headerLength + 2)))
        } else {
            let next = bytes.byte(at: offset + 6)
            nested =
                next == IPv4Header.protocolGRE
                || (next == IPv4Header.protocolUDP && count >= 44 && isMirrorPort(bytes.bigEndian16(at: offset + 42)))
        }
        if nested { frame.anomalies.insert(.nestedMirror) }
    }

    /// ERSPAN decoded as an override says, whatever the S flag and the Ver nibble claim.
    private func forcedERSPAN(
        _ type: ClassifierOverrides.ForcedType, _ bytes: UnsafeRawBufferPointer, gre: GREHeader, end: Int, exporter: IPAddress,
        into frame: inout MirrorFrame
    ) throws(DiscardReason) {
        switch type {
        case .typeI:
            frame.reset(encapsulation: .erspan1, exporter: exporter, innerOffset: gre.payloadOffset)
            return
        case .typeII:
            frame.reset(encapsulation: .erspan2, exporter: exporter, innerOffset: 0)
            frame.innerOffset = try ERSPANHeader.parseTypeII(bytes, at: gre.payloadOffset, end: end, into: &frame.erspan)
        case .typeIII:
            frame.reset(encapsulation: .erspan3, exporter: exporter, innerOffset: 0)
            frame.innerOffset = try ERSPANHeader.parseTypeIII(bytes, at: gre.payloadOffset, end: end, into: &frame.erspan)
            switch frame.erspan.frameType {
            case ERSPANHeader.frameTypeEthernet: break
            case ERSPANHeader.frameTypeIP: frame.isRawIP = true
            default: throw .erspanFrameType
            }
        }
        frame.sessionID = UInt32(frame.erspan.sessionID)
        frame.hasSessionID = true
    }

    /// An RSPAN frame: the whole captured frame minus exactly the RSPAN tag (inner tags stay).
    private func rspanFrame(
        _ bytes: UnsafeRawBufferPointer, wireLength: Int, tag: VLANTag, tagInBytes: Bool, into frame: inout MirrorFrame
    ) throws(DiscardReason) {
        frame.reset(encapsulation: .rspan, exporter: .none, innerOffset: 0)
        frame.sessionID = UInt32(tag.vlanID)
        frame.hasSessionID = true
        if tagInBytes {
            frame.removedOffset = 12
            frame.removedLength = VLANTag.length
        }
        frame.innerCapturedLength = bytes.count - frame.removedLength
        frame.innerWireLength = max(wireLength, bytes.count) - frame.removedLength
        guard frame.innerCapturedLength >= EthernetHeader.length else { throw .innerTruncated }
        frame.isTruncated = frame.innerCapturedLength < frame.innerWireLength
    }
}

/// The link layer of the captured frames (pcap LINKTYPE_* values).
public enum LinkType: UInt32, Sendable {
    case ethernet = 1
    case rawIP = 101
    case linuxCooked = 113
    case linuxCookedV2 = 276

    /// Maps a pcap link-type number, including the aliases for raw IP.
    public init?(pcapLinkType: UInt32) {
        switch pcapLinkType {
        case 1: self = .ethernet
        case 101, 12, 14, 228, 229: self = .rawIP
        case 113: self = .linuxCooked
        case 276: self = .linuxCookedV2
        default: return nil
        }
    }
}

/// The UDP destination ports of one UDP transport (VXLAN, default 4789; also used for the
/// VXLAN-GPE and Geneve lists): at most `capacity`, kept inline (no heap storage, no reference
/// counting on the frame path) and scanned linearly.
public struct VXLANPorts: Sendable, Hashable {
    public static let capacity = 16
    private var storage = InlineArray<16, UInt16>(repeating: 0)
    private var count = 0

    /// The first `capacity` of `ports`.
    public init(_ ports: [UInt16] = [4789]) {
        for port in ports.prefix(Self.capacity) {
            storage[count] = port
            count += 1
        }
    }

    public var ports: [UInt16] { (0..<count).map { storage[$0] } }

    @inline(__always)
    public func contains(_ port: UInt16) -> Bool {
        for index in 0..<count where storage[index] == port { return true }
        return false
    }

    public static func == (a: VXLANPorts, b: VXLANPorts) -> Bool { a.ports == b.ports }
    public func hash(into hasher: inout Hasher) { hasher.combine(ports) }
}

/// The UDP destination ports of every UDP mirror transport: an inner frame sent to one of
/// them is a mirror stream itself (a loop upstream).
struct UDPMirrorPorts: Sendable {
    var vxlan: VXLANPorts
    var vxlanGPE: VXLANPorts
    var geneve: VXLANPorts

    @inline(__always)
    func contains(_ port: UInt16) -> Bool { vxlan.contains(port) || geneve.contains(port) || vxlanGPE.contains(port) }
}
