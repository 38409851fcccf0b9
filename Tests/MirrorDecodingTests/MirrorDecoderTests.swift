import Testing

@testable import MirrorDecoding

private func decode(
    _ bytes: [UInt8], wireLength: Int? = nil, configuration: MirrorDecoder.Configuration = .init(),
    offloadedTag: VLANTag? = nil
) -> DecodeResult {
    bytes.withUnsafeBytes { raw in
        MirrorDecoder(configuration: configuration).decode(raw, wireLength: wireLength ?? bytes.count, offloadedTag: offloadedTag)
    }
}

private func frame(_ result: DecodeResult, sourceLocation: SourceLocation = #_sourceLocation) -> MirrorFrame? {
    guard case .mirror(let frame) = result else {
        Issue.record("expected a mirror frame, got \(result)", sourceLocation: sourceLocation)
        return nil
    }
    return frame
}

private func reason(_ result: DecodeResult) -> DiscardReason? {
    if case .discard(let reason) = result { return reason }
    return nil
}

@Suite struct ERSPANTypeIITests {
    // PROTOCOLS.md A.4 golden bytes: ERSPAN_II(vlan=100, cos=5, en=2, t=1, session_id=0x155,
    // index=0xabcde) after GRE 1000 88be 01020304.
    @Test func goldenHeaderDecodesEveryField() throws {
        let inner = Frames.inner()
        let packet = Frames.ipv4(protocol: 47, hex("100088be01020304 1064b555000abcde") + inner)
        let decoded = try #require(frame(decode(packet)))
        #expect(decoded.encapsulation == .erspan2)
        #expect(decoded.sessionID == 0x155)
        #expect(decoded.hasSequence && decoded.sequence == 0x0102_0304)
        #expect(decoded.erspan.vlan == 100)
        #expect(decoded.erspan.classOfService == 5)
        #expect(decoded.erspan.encapsulationOrBSO == 2)
        #expect(decoded.erspan.truncated)
        #expect(decoded.erspan.index == 0xABCDE)
        #expect(decoded.isTruncated)  // T bit
        #expect(decoded.innerOffset == 14 + 20 + 8 + 8)
        #expect(decoded.innerCapturedLength == inner.count)
        #expect(decoded.exporter.description == "198.51.100.1")
    }

    @Test func outerPaddingAndFCSAreNotPartOfTheFrame() throws {
        let inner = Frames.inner()
        let packet = Frames.ipv4(protocol: 47, hex("100088be00000001 1000000100000000") + inner, trailer: [0xDE, 0xAD, 0xBE, 0xEF])
        let decoded = try #require(frame(decode(packet)))
        #expect(decoded.innerCapturedLength == inner.count)
        #expect(decoded.innerWireLength == inner.count)
        #expect(!decoded.isTruncated)
    }

    @Test func unknownVersionsAreMalformed() {
        for version: UInt8 in [0, 3, 15] {
            let packet = Frames.ipv4(protocol: 47, hex("100088be00000001") + [version << 4, 0, 0, 1, 0, 0, 0, 0] + Frames.inner())
            #expect(reason(decode(packet)) == .erspanVersion)
        }
    }

    @Test func versionTwoUnder88BEIsTypeIIIWithAMismatch() throws {
        let packet = Frames.ipv4(protocol: 47, hex("100088be00000001 20640155 0a0b0c0d 1234 0000") + Frames.inner())
        let decoded = try #require(frame(decode(packet)))
        #expect(decoded.encapsulation == .erspan3)
        #expect(decoded.anomalies.contains(.erspanVersionMismatch))
    }

    @Test func shortInnerFrameIsMalformed() {
        let packet = Frames.ipv4(protocol: 47, hex("100088be00000001 1000000100000000") + [UInt8](repeating: 0, count: 10))
        #expect(reason(decode(packet)) == .innerTruncated)
    }
}

@Suite struct ERSPANTypeIIITests {
    // PROTOCOLS.md A.5 golden bytes with the Platf 5 sub-header.
    @Test func goldenHeaderWithPlatformSubHeader() throws {
        let inner = Frames.inner()
        let packet = Frames.ipv4(
            protocol: 47, hex("100022eb00000007 2064a1550a0b0c0d123482ad 17ff00426553f100") + inner)
        let decoded = try #require(frame(decode(packet)))
        #expect(decoded.encapsulation == .erspan3)
        #expect(decoded.sessionID == 0x155)
        #expect(decoded.erspan.vlan == 100)
        #expect(decoded.erspan.classOfService == 5)
        #expect(decoded.erspan.timestamp == 0x0A0B_0C0D)
        #expect(decoded.erspan.securityGroupTag == 0x1234)
        #expect(decoded.erspan.hardwareID == 0x2A)
        #expect(decoded.erspan.egress)
        #expect(decoded.erspan.granularity == 2)
        #expect(decoded.erspan.hasPlatform && decoded.erspan.platformID == 5)
        #expect(decoded.innerOffset == 14 + 20 + 8 + 12 + 8)
        #expect(decoded.innerCapturedLength == inner.count)
    }

    @Test func sequencelessTypeIIIStillDecodes() throws {
        let packet = Frames.ipv4(protocol: 47, hex("000022eb 200000090000000000000000") + Frames.inner())
        let decoded = try #require(frame(decode(packet)))
        #expect(decoded.encapsulation == .erspan3)
        #expect(!decoded.hasSequence)
        #expect(decoded.sessionID == 9)
    }

    @Test func everyCutOfTheHeadersHasItsOwnReason() {
        let full = Frames.ipv4(protocol: 47, hex("100022eb00000007 2064a1550a0b0c0d123482ad 17ff00426553f100") + Frames.inner())
        let ipEnd = 14 + 20
        let expected: [(Int, DiscardReason)] = [
            (3, .greTruncated), (6, .greTruncated), (13, .erspanTruncated), (24, .erspanPlatformTruncated),
            (40, .innerTruncated),
        ]
        for (cut, want) in expected {
            // Snap-truncated: the IP header still claims the full length.
            let prefix = Array(full.prefix(ipEnd + cut))
            #expect(reason(decode(prefix, wireLength: full.count)) == want, "cut after \(cut) bytes")
        }
    }

    @Test func nonEthernetFrameTypeIsRejected() {
        let packet = Frames.ipv4(protocol: 47, hex("100022eb00000001 200000090000000000001c00") + Frames.inner())
        #expect(reason(decode(packet)) == .erspanFrameType)
    }
}

@Suite struct GRETests {
    @Test func typeIIsRecognisedByTheMissingSequenceBit() throws {
        var inner = Frames.inner()
        inner[0] = 0x12  // scapy would mis-dissect this as Type II (PROTOCOLS.md D.1.3)
        let decoded = try #require(frame(decode(Frames.ipv4(protocol: 47, hex("000088be") + inner))))
        #expect(decoded.encapsulation == .erspan1)
        #expect(!decoded.hasSessionID)
        #expect(decoded.innerOffset == 38)
    }

    @Test func transparentEthernetWithAndWithoutKey() throws {
        let keyed = try #require(frame(decode(Frames.ipv4(protocol: 47, hex("20006558 00000064") + Frames.inner()))))
        #expect(keyed.encapsulation == .gre && keyed.hasSessionID && keyed.sessionID == 100)
        let bare = try #require(frame(decode(Frames.ipv4(protocol: 47, hex("00006558") + Frames.inner()))))
        #expect(bare.encapsulation == .gre && !bare.hasSessionID)
    }

    @Test func versionRoutingKeepaliveAndOtherProtocols() {
        #expect(reason(decode(Frames.ipv4(protocol: 47, hex("000188be") + Frames.inner()))) == .greVersion)
        #expect(reason(decode(Frames.ipv4(protocol: 47, hex("500088be 00000000 00000001") + Frames.inner()))) == .greRouting)
        #expect(reason(decode(Frames.ipv4(protocol: 47, hex("00000000")))) == .greKeepalive)
        #expect(reason(decode(Frames.ipv4(protocol: 47, hex("0000883e") + Frames.inner()))) == .greProtocol)
        #expect(reason(decode(Frames.ipv4(protocol: 47, hex("2001880b 00000000") + Frames.inner()))) == .greProtocol)
    }

    @Test func checksumIsVerified() throws {
        var gre = hex("900088be 00000000 00000001 1000000100000000") + Frames.inner()
        // Compute the RFC 1071 checksum into bytes 4-5.
        var sum: UInt32 = 0
        for index in stride(from: 0, to: gre.count, by: 2) {
            sum += UInt32(gre[index]) << 8 | UInt32(index + 1 < gre.count ? gre[index + 1] : 0)
        }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        gre[4] = UInt8(checksum >> 8)
        gre[5] = UInt8(checksum & 0xFF)
        let good = try #require(frame(decode(Frames.ipv4(protocol: 47, gre))))
        #expect(!good.anomalies.contains(.greChecksumBad))
        gre[5] ^= 0xFF
        let bad = try #require(frame(decode(Frames.ipv4(protocol: 47, gre))))
        #expect(bad.anomalies.contains(.greChecksumBad))
        #expect(bad.encapsulation == .erspan2)
    }

    @Test func reservedBitsAreCountedNotDropped() throws {
        let decoded = try #require(frame(decode(Frames.ipv4(protocol: 47, hex("190888be 00000005 1000000100000000") + Frames.inner()))))
        #expect(decoded.anomalies.contains(.greReservedBits))
        #expect(decoded.sequence == 5)
    }
}

@Suite struct OuterLayerTests {
    @Test func ipv6DestinationOptionsBeforeGRE() throws {
        // Linux ip6erspan: Destination Options with a Tunnel Encapsulation Limit option.
        let options: [UInt8] = [47, 0, 4, 1, 4, 1, 1, 0]
        let packet = Frames.ipv6(next: 60, extensions: options, hex("100088be00000001 1000000300000000") + Frames.inner())
        let decoded = try #require(frame(decode(packet)))
        #expect(decoded.encapsulation == .erspan2 && decoded.sessionID == 3)
        #expect(decoded.exporter.description == "2001:db8::1")
    }

    @Test func fragmentsAreNotDecodedYet() {
        var packet = Frames.ipv4(protocol: 47, hex("100088be00000001 1000000300000000") + Frames.inner())
        packet[14 + 6] = 0x20  // MF
        #expect(reason(decode(packet)) == .ipFragment)
    }

    @Test func outerVLANTagsArePeeled() throws {
        let packet = Frames.ipv4(protocol: 47, hex("100088be00000001 1000000300000000") + Frames.inner(), tags: [hex("81000014")])
        #expect(try #require(frame(decode(packet))).sessionID == 3)
    }

    @Test func rspanRemovesExactlyTheOuterTag() throws {
        let inner = Frames.inner()
        let packet = Array(inner.prefix(12)) + hex("810003e7 8100000a") + Array(inner.dropFirst(12))
        var configuration = MirrorDecoder.Configuration()
        configuration.rspanVLANs = VLANSet([999])
        let decoded = try #require(frame(decode(packet, configuration: configuration)))
        #expect(decoded.encapsulation == .rspan && decoded.sessionID == 999)
        #expect(decoded.removedOffset == 12 && decoded.removedLength == 4)
        #expect(decoded.innerCapturedLength == inner.count + 4)  // the inner 802.1Q tag stays
        // The same frame with the RSPAN tag offloaded by the NIC decodes to the same session.
        let offloaded = Array(inner.prefix(12)) + hex("8100000a") + Array(inner.dropFirst(12))
        let viaOffload = try #require(
            frame(decode(offloaded, configuration: configuration, offloadedTag: VLANTag(controlInformation: 999))))
        #expect(viaOffload.sessionID == 999 && viaOffload.removedLength == 0)
        #expect(viaOffload.innerCapturedLength == offloaded.count)
    }

    @Test func notMirrorTraffic() {
        #expect(reason(decode(hex("ffffffffffff 020000000001 0806") + [UInt8](repeating: 0, count: 28))) == .nonIP)
        #expect(reason(decode(Frames.ipv4(protocol: 6, [UInt8](repeating: 0, count: 20)))) == .ipProtocol)
        #expect(reason(decode(Frames.ipv4(protocol: 17, hex("d43100350008 0000")))) == .udpPort)
    }

    @Test func vxlanFlagsAndPorts() throws {
        let vxlan = hex("d43112b5 0000 0000 08000000 00007b00") + Frames.inner()
        let decoded = try #require(frame(decode(Frames.ipv4(protocol: 17, vxlan))))
        #expect(decoded.encapsulation == .vxlan && decoded.sessionID == 123)
        let noI = hex("d43112b5 0000 0000 00000000 00007b00") + Frames.inner()
        #expect(reason(decode(Frames.ipv4(protocol: 17, noI))) == .vxlanFlags)
        let reserved = hex("d43112b5 0000 0000 88000000 00007bff") + Frames.inner()
        #expect(try #require(frame(decode(Frames.ipv4(protocol: 17, reserved)))).anomalies.contains(.vxlanReservedBits))
        // On a VXLAN port GPE's P flag and next protocol are reserved bits: ignored, counted.
        for gpeLooking in ["0c000003", "0c000001", "0c000004", "04000000"] {
            let packet = hex("d43112b5 0000 0000 \(gpeLooking) 00000100") + Frames.inner()
            let result = decode(Frames.ipv4(protocol: 17, packet))
            if gpeLooking.hasPrefix("04") {
                #expect(reason(result) == .vxlanFlags, "only the I flag is checked, and it is clear")
                continue
            }
            let decoded = try #require(frame(result), "\(gpeLooking)")
            #expect(decoded.encapsulation == .vxlan && decoded.sessionID == 1 && !decoded.isRawIP)
            #expect(decoded.anomalies == .vxlanReservedBits)
            #expect(decoded.innerOffset == 14 + 20 + 8 + 8 && decoded.innerCapturedLength == Frames.inner().count)
        }
        let port8472 = hex("d4312118 0000 0000 08000000 00007b00") + Frames.inner()
        #expect(reason(decode(Frames.ipv4(protocol: 17, port8472))) == .udpPort)
        let configured = MirrorDecoder.Configuration(vxlanPorts: VXLANPorts([4789, 8472]))
        #expect(try #require(frame(decode(Frames.ipv4(protocol: 17, port8472), configuration: configured))).sessionID == 123)
    }

    @Test func snapTruncationKeepsTheWireLength() throws {
        let inner = Frames.inner(payload: 1000)
        let full = Frames.ipv4(protocol: 47, hex("100088be00000001 1000000300000000") + inner)
        let cut = Array(full.prefix(200))
        let decoded = try #require(frame(decode(cut, wireLength: full.count)))
        #expect(decoded.isTruncated)
        #expect(decoded.innerCapturedLength == 200 - 50)
        #expect(decoded.innerWireLength == inner.count)
    }

    @Test func innerIPLengthRevealsSilentTruncation() throws {
        // AWS PacketLength truncation: no flag, but the inner IP header states 1036 bytes.
        let inner = Array(Frames.inner(payload: 1000).prefix(100))
        let decoded = try #require(frame(decode(Frames.ipv4(protocol: 17, hex("d43112b5 0000 0000 08000000 00007b00") + inner))))
        #expect(decoded.isTruncated)
        #expect(decoded.innerCapturedLength == 100)
        #expect(decoded.innerWireLength == 14 + 20 + 8 + 1000)
    }

    @Test func nestedMirrorIsFlagged() throws {
        let nested = Frames.ipv4(protocol: 47, hex("000088be") + Frames.inner())
        let decoded = try #require(frame(decode(Frames.ipv4(protocol: 47, hex("100088be00000001 1000000300000000") + nested))))
        #expect(decoded.anomalies.contains(.nestedMirror))
    }
}

/// Geneve (UDP 6081) and VXLAN-GPE (UDP 4790) at the byte level; the scapy fixtures
/// geneve_* and vxlan_* check whole files.
@Suite struct GeneveAndGPETests {
    /// UDP 54321 → 6081 and a Geneve header: `first` (Ver, Opt Len), `flags`, `protocolType`, VNI.
    static func geneve(first: UInt8 = 0, flags: UInt8 = 0, protocolType: UInt16 = 0x6558, vni: UInt32 = 0x64, options: [UInt8] = [])
        -> [UInt8]
    {
        hex("d43117c1 0000 0000") + [first, flags, UInt8(protocolType >> 8), UInt8(protocolType & 0xFF)]
            + [UInt8(vni >> 16), UInt8((vni >> 8) & 0xFF), UInt8(vni & 0xFF), 0] + options
    }

    @Test func headerFieldsAndOptionsAreSkipped() throws {
        let inner = Frames.inner()
        let options = [UInt8](repeating: 0xAB, count: 12)
        for flags: UInt8 in [0x00, 0x40, 0x3F] {  // none, C (critical options), the reserved bits
            let packet = Frames.ipv4(protocol: 17, Self.geneve(first: 3, flags: flags, vni: 0xABCDEF, options: options) + inner)
            let decoded = try #require(frame(decode(packet)))
            #expect(decoded.encapsulation == .geneve && decoded.encapsulation.sessionFamily == .geneve)
            #expect(decoded.sessionID == 0xABCDEF && decoded.hasSessionID)
            #expect(decoded.innerOffset == 14 + 20 + 8 + 8 + 12)
            #expect(decoded.innerCapturedLength == inner.count && !decoded.isRawIP && decoded.anomalies.isEmpty)
        }
        let oam = try #require(frame(decode(Frames.ipv4(protocol: 17, Self.geneve(flags: 0x80) + inner))))
        #expect(oam.anomalies == .geneveOAM)
        let v6 = try #require(frame(decode(Frames.ipv6(next: 17, Self.geneve(vni: 0) + inner))))
        #expect(v6.encapsulation == .geneve && v6.sessionID == 0 && v6.exporter.description == "2001:db8::1")
    }

    @Test func versionAndProtocolType() {
        for version: UInt8 in 1...3 {
            #expect(reason(decode(Frames.ipv4(protocol: 17, Self.geneve(first: version << 6) + Frames.inner()))) == .geneveVersion)
        }
        for protocolType: UInt16 in [0x0000, 0x0806, 0x894F, 0x8847, 0x88BE] {
            let result = decode(Frames.ipv4(protocol: 17, Self.geneve(protocolType: protocolType) + Frames.inner()))
            #expect(reason(result) == .geneveProtocol)
            #expect(DiscardReason.geneveProtocol.name == "not_mirror.geneve_protocol")
        }
    }

    /// Options that run past the datagram, or past what was captured, are never read.
    @Test func everyCutIsCountedNeverRead() {
        let options = [UInt8](repeating: 0x11, count: 16)
        let full = Frames.ipv4(protocol: 17, Self.geneve(first: 4, options: options) + Frames.inner())
        let geneveStart = 14 + 20 + 8
        for length in (14 + 20)..<full.count {
            let result = decode(Array(full.prefix(length)), wireLength: full.count)
            switch length {
            case ..<geneveStart: #expect(reason(result) == .udpTruncated, "\(length)")
            case ..<(geneveStart + 8 + 16): #expect(reason(result) == .geneveTruncated, "\(length)")
            case ..<(geneveStart + 8 + 16 + 14): #expect(reason(result) == .innerTruncated, "\(length)")
            default: #expect(frame(result)?.isTruncated == true, "\(length)")
            }
        }
        // Opt Len says more than the datagram holds (the IP length bounds it, not the capture).
        let lying = Frames.ipv4(protocol: 17, Self.geneve(first: 63) + Frames.inner(), trailer: [UInt8](repeating: 0, count: 300))
        #expect(reason(decode(lying)) == .geneveTruncated)
    }

    @Test func rawIPPayloadsAreLikeERSPANFrameType2() throws {
        let ipv4 = Array(Frames.inner().dropFirst(14))
        let ipv6 = Array(Frames.ipv6(next: 17, hex("03e807d0 0010 0000") + [UInt8](repeating: 7, count: 8)).dropFirst(14))
        let four = try #require(frame(decode(Frames.ipv4(protocol: 17, Self.geneve(protocolType: 0x0800) + ipv4))))
        #expect(four.isRawIP && four.innerCapturedLength == ipv4.count && four.innerWireLength == ipv4.count)
        let six = try #require(frame(decode(Frames.ipv4(protocol: 17, Self.geneve(protocolType: 0x86DD) + ipv6))))
        #expect(six.isRawIP && six.innerCapturedLength == ipv6.count)
        // The Protocol Type names the version; a payload that disagrees is malformed.
        #expect(reason(decode(Frames.ipv4(protocol: 17, Self.geneve(protocolType: 0x0800) + ipv6))) == .innerIPVersion)
        #expect(reason(decode(Frames.ipv4(protocol: 17, Self.geneve(protocolType: 0x86DD) + ipv4))) == .innerIPVersion)
        #expect(reason(decode(Frames.ipv4(protocol: 17, Self.geneve(protocolType: 0x0800) + ipv4.prefix(19)))) == .innerTruncated)
        // Cut by the sender (the inner IP length says more): truncated, as for FT = 2.
        let cut = try #require(frame(decode(Frames.ipv4(protocol: 17, Self.geneve(protocolType: 0x0800) + ipv4.prefix(30)))))
        #expect(cut.isTruncated && cut.innerWireLength == ipv4.count)
    }

    @Test func gpeOnlyOnGPEPorts() throws {
        let inner = Frames.inner()
        let ipv4 = Array(inner.dropFirst(14))
        func gpe(_ header: String, _ payload: [UInt8]) -> DecodeResult {
            decode(Frames.ipv4(protocol: 17, hex("d43112b6 0000 0000 \(header)") + payload))
        }
        let ethernet = try #require(frame(gpe("0c000003 00007800", inner)))
        #expect(ethernet.encapsulation == .vxlan && ethernet.sessionID == 120 && !ethernet.isRawIP && ethernet.anomalies.isEmpty)
        let noNextProtocol = try #require(frame(gpe("08000001 00007800", inner)))
        #expect(!noNextProtocol.isRawIP && noNextProtocol.anomalies == .vxlanReservedBits, "P clear: byte 3 is reserved")
        let bumAndOAM = try #require(frame(gpe("0f000003 00007800", inner)))
        #expect(bumAndOAM.anomalies.isEmpty, "B and O are defined GPE flags")
        #expect(try #require(frame(gpe("0c000001 00007800", ipv4))).isRawIP)
        #expect(reason(gpe("0c000002 00007800", ipv4)) == .innerIPVersion)
        #expect(reason(gpe("0c000004 00007800", inner)) == .vxlanGPEProtocol)
        #expect(reason(gpe("1c000003 00007800", inner)) == .vxlanFlags, "GPE version 1")
        #expect(reason(gpe("04000003 00007800", inner)) == .vxlanFlags, "I clear")
        // Ports are configurable; a port that is not configured is not a mirror.
        var configuration = MirrorDecoder.Configuration()
        configuration.vxlanGPEPorts = VXLANPorts([])
        configuration.genevePorts = VXLANPorts([4790])
        let packet = Frames.ipv4(protocol: 17, hex("d43112b6 0000 0000 00006558 00007800") + inner)
        #expect(try #require(frame(decode(packet, configuration: configuration))).encapsulation == .geneve)
        configuration.genevePorts = VXLANPorts([])
        #expect(reason(decode(packet, configuration: configuration)) == .udpPort)
    }

    @Test func nestedGeneveAndGPEAreFlagged() throws {
        for port in ["17c1", "12b6"] {
            let nested = Frames.ipv4(protocol: 17, hex("d431\(port) 0000 0000 0c000003 00000100") + Frames.inner())
            let outer = try #require(frame(decode(Frames.ipv4(protocol: 17, Self.geneve() + nested))))
            #expect(outer.anomalies.contains(.nestedMirror), "\(port)")
            let rawIP = try #require(frame(decode(Frames.ipv4(protocol: 17, Self.geneve(protocolType: 0x0800) + nested.dropFirst(14)))))
            #expect(rawIP.anomalies.contains(.nestedMirror), "raw IP \(port)")
        }
    }
}

@Suite struct AddressTests {
    @Test(arguments: [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0002:0001", "2001:db8::2:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // a single zero group is not compressed
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // the first of two equal runs
        ("::", "::"),
        ("::1", "::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("198.51.100.1", "198.51.100.1"),
        ("2001:DB8::A", "2001:db8::a"),
    ])
    func canonicalText(input: String, expected: String) throws {
        #expect(try #require(IPAddress(input)).description == expected)
    }

    @Test func invalidTextIsRejected() {
        for text in ["", "1.2.3", "1.2.3.256", "1.2.3.4.5", "2001:db8:::1", "2001::db8::1", "12345::", "1:2:3:4:5:6:7:8:9", "01.2.3.4x"] {
            #expect(IPAddress(text) == nil, "\(text)")
        }
    }

    @Test func prefixes() throws {
        let v4 = try #require(IPPrefix("198.51.100.0/24"))
        #expect(v4.contains(IPAddress("198.51.100.77")!))
        #expect(!v4.contains(IPAddress("198.51.101.1")!))
        #expect(!v4.contains(IPAddress("2001:db8::1")!))
        let v6 = try #require(IPPrefix("2001:db8::/32"))
        #expect(v6.contains(IPAddress("2001:db8:ffff::1")!))
        #expect(!v6.contains(IPAddress("2001:db9::1")!))
        let host = try #require(IPPrefix("2001:db8::1"))
        #expect(host.length == 128 && host.contains(IPAddress("2001:db8::1")!) && !host.contains(IPAddress("2001:db8::2")!))
        #expect(try #require(IPPrefix("0.0.0.0/0")).contains(IPAddress("203.0.113.9")!))
        #expect(try #require(IPPrefix("2001:db8::/70")).contains(IPAddress("2001:db8::3ff:ffff:ffff:ffff")!))
        #expect(!(try #require(IPPrefix("2001:db8::/70"))).contains(IPAddress("2001:db8::400:0:0:0")!))
        for bad in ["198.51.100.0/33", "2001:db8::/129", "x/1", "1.2.3.4/", "1.2.3.4/-1"] { #expect(IPPrefix(bad) == nil) }
    }
}

@Suite struct InnerFrameTests {
    /// The one-walk inspection agrees with the two separate checks on every prefix of many
    /// inner frames (tagged, IPv4, IPv6, GRE, VXLAN, junk).
    @Test func inspectAgreesWithTheSeparateChecks() {
        let mirrorPorts = UDPMirrorPorts(vxlan: VXLANPorts([4789, 8472]), vxlanGPE: VXLANPorts([4790]), geneve: VXLANPorts([6081]))
        var frames: [[UInt8]] = [Frames.inner(), Frames.inner(payload: 300)]
        frames.append(Frames.ipv4(protocol: 47, hex("000088be") + Frames.inner()))
        frames.append(Frames.ipv4(protocol: 17, hex("d43112b5 0000 0000 08000000 00007b00") + Frames.inner()))
        frames.append(Frames.ipv6(next: 47, hex("000088be") + Frames.inner()))
        frames.append(Frames.ipv4(protocol: 17, hex("d43117c1 0000 0000 00006558 00006400") + Frames.inner()))
        frames.append(Frames.ipv6(next: 17, hex("d43112b6 0000 0000 0c000003 00006400") + Frames.inner()))
        frames.append(Frames.ipv4(protocol: 47, hex("000088be") + Frames.inner(), tags: [hex("81000014")]))
        frames.append(Frames.ipv4(protocol: 6, [UInt8](repeating: 0, count: 20), tags: [hex("88a80064"), hex("81000014")]))
        frames.append(hex("ffffffffffff 020000000001 0806") + [UInt8](repeating: 0, count: 28))
        var random = SplitMix64(state: 42)
        for _ in 0..<200 { frames.append((0..<Int.random(in: 14..<120, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }) }
        for frame in frames {
            for length in 14...frame.count {
                frame.withUnsafeBytes { bytes in
                    let both = InnerFrame.inspect(bytes, at: 0, count: length)
                    #expect(both.statedLength == InnerFrame.statedLength(bytes, at: 0, count: length))
                    let nested = both.carriesGRE || (both.udpDestinationPort >= 0 && mirrorPorts.contains(UInt16(both.udpDestinationPort)))
                    #expect(nested == InnerFrame.isNestedMirror(bytes, at: 0, count: length, mirrorPorts: mirrorPorts))
                }
            }
        }
    }
}

@Suite struct ClassifierOverrideTests {
    @Test func forcedTypesWinOverFlagsAndVersion() throws {
        // A device that sets S on Type I frames: GRE 1000 88be + sequence, then Ethernet.
        let inner = Frames.inner()
        let packet = Frames.ipv4(protocol: 47, hex("100088be 0000002a") + inner)
        let plain = MirrorDecoder()
        packet.withUnsafeBytes { bytes in
            guard case .discard(.erspanVersion) = plain.decode(bytes, wireLength: bytes.count) else {
                Issue.record("without an override the Ver nibble of the inner MAC decides")
                return
            }
        }
        var configuration = MirrorDecoder.Configuration()
        configuration.classifierOverrides = ClassifierOverrides([
            (IPPrefix("203.0.113.0/24")!, .typeIII), (IPPrefix("198.51.100.1/32")!, .typeI),
        ])
        let forced = MirrorDecoder(configuration: configuration)
        try packet.withUnsafeBytes { bytes in
            guard case .mirror(let frame) = forced.decode(bytes, wireLength: bytes.count) else {
                Issue.record("forced Type I not decoded")
                return
            }
            #expect(frame.encapsulation == .erspan1 && frame.innerOffset == 14 + 20 + 8)
            #expect(frame.hasSequence && frame.sequence == 42)
            #expect(frame.innerCapturedLength == inner.count)
            _ = try #require(Optional(frame))
        }
        // Other exporters are not affected.
        var other = packet
        other[29] = 9  // 198.51.100.9
        other.withUnsafeBytes { bytes in
            if case .mirror = forced.decode(bytes, wireLength: bytes.count) { Issue.record("override leaked to another exporter") }
        }
        #expect(ClassifierOverrides.parseEntry("198.51.100.7/32=II")?.1 == .typeII)
        #expect(ClassifierOverrides.parseEntry("198.51.100.7/32=IV") == nil)
        #expect(ClassifierOverrides.parseEntry("nonsense=I") == nil)
    }
}
