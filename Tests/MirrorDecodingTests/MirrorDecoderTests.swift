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
        let gpe = hex("d43112b5 0000 0000 0c000003 00000100") + Frames.inner()
        #expect(try #require(frame(decode(Frames.ipv4(protocol: 17, gpe)))).sessionID == 1)
        let gpeIP = hex("d43112b5 0000 0000 0c000001 00000100") + Frames.inner()
        #expect(reason(decode(Frames.ipv4(protocol: 17, gpeIP))) == .vxlanGPEProtocol)
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
        let vxlanPorts = VXLANPorts([4789, 8472])
        var frames: [[UInt8]] = [Frames.inner(), Frames.inner(payload: 300)]
        frames.append(Frames.ipv4(protocol: 47, hex("000088be") + Frames.inner()))
        frames.append(Frames.ipv4(protocol: 17, hex("d43112b5 0000 0000 08000000 00007b00") + Frames.inner()))
        frames.append(Frames.ipv6(next: 47, hex("000088be") + Frames.inner()))
        frames.append(Frames.ipv4(protocol: 47, hex("000088be") + Frames.inner(), tags: [hex("81000014")]))
        frames.append(Frames.ipv4(protocol: 6, [UInt8](repeating: 0, count: 20), tags: [hex("88a80064"), hex("81000014")]))
        frames.append(hex("ffffffffffff 020000000001 0806") + [UInt8](repeating: 0, count: 28))
        var random = SplitMix64(state: 42)
        for _ in 0..<200 { frames.append((0..<Int.random(in: 14..<120, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }) }
        for frame in frames {
            for length in 14...frame.count {
                frame.withUnsafeBytes { bytes in
                    let both = InnerFrame.inspect(bytes, at: 0, count: length, vxlanPorts: vxlanPorts)
                    #expect(both.statedLength == InnerFrame.statedLength(bytes, at: 0, count: length))
                    #expect(both.isNestedMirror == InnerFrame.isNestedMirror(bytes, at: 0, count: length, vxlanPorts: vxlanPorts))
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
