import CaptureSystem
import CLinuxPacket
import Foundation
import MirrorDecoding
import Testing

@testable import CollectorCore

/// A classic BPF interpreter with the Linux extensions our programs use (SKF_AD_PROTOCOL,
/// SKF_AD_VLAN_TAG(_PRESENT), SKF_NET_OFF), so the kernel filter and the fanout program are
/// executed on real frames here instead of trusted.
struct BPFMachine {
    /// A frame as an AF_PACKET socket sees it on receive: the kernel has moved the outermost
    /// 802.1Q/802.1ad tag into metadata and `protocol` is the EtherType after it.
    struct Packet {
        var data: [UInt8]
        var vlanTag: UInt16?
        var protocolType: UInt16
        var networkOffset: Int

        /// What the kernel makes of a frame captured with its tags in the bytes.
        init(wire: [UInt8]) {
            var data = wire
            let type = UInt16(wire[12]) << 8 | UInt16(wire[13])
            if type == 0x8100 || type == 0x88A8, wire.count >= 18 {
                vlanTag = UInt16(wire[14]) << 8 | UInt16(wire[15])
                data.removeSubrange(12..<16)
            }
            self.data = data
            protocolType = UInt16(data[12]) << 8 | UInt16(data[13])
            networkOffset = 14
        }
    }

    static func run(_ program: [sock_filter], on packet: Packet) -> UInt32 {
        var a: UInt32 = 0
        var x: UInt32 = 0
        var memory = [UInt32](repeating: 0, count: 16)
        var pc = 0
        func load(_ offset: Int64, size: Int) -> UInt32? {
            var offset = offset
            if offset >= -0x100000, offset < -0x1000 {  // SKF_NET_OFF: network-header relative
                offset = offset + 0x100000 + Int64(packet.networkOffset)
            } else if offset < 0 {  // SKF_AD_OFF: ancillary data
                switch offset - -0x1000 {
                case 0: return UInt32(packet.protocolType)
                case 44: return UInt32(packet.vlanTag ?? 0)
                case 48: return packet.vlanTag == nil ? 0 : 1
                default: return nil
                }
            }
            guard offset >= 0, Int(offset) + size <= packet.data.count else { return nil }
            return packet.data[Int(offset)..<(Int(offset) + size)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
        while pc < program.count {
            let instruction = program[pc]
            let code = Int32(instruction.code)
            let k = instruction.k
            pc += 1
            switch code & 0x07 {
            case BPF_LD, BPF_LDX:
                let size = code & 0x18 == BPF_W ? 4 : code & 0x18 == BPF_H ? 2 : 1
                var value: UInt32
                switch code & 0xE0 {
                case BPF_ABS: guard let v = load(Int64(Int32(bitPattern: k)), size: size) else { return 0 }; value = v
                case BPF_IND: guard let v = load(Int64(x) + Int64(Int32(bitPattern: k)), size: size) else { return 0 }; value = v
                case BPF_IMM: value = k
                case BPF_MEM: value = memory[Int(k)]
                case BPF_LEN: value = UInt32(packet.data.count)
                case BPF_MSH: guard let v = load(Int64(k), size: 1) else { return 0 }; value = (v & 0x0F) * 4
                default: return 0
                }
                if code & 0x07 == BPF_LD { a = value } else { x = value }
            case BPF_ST: memory[Int(k)] = a
            case BPF_STX: memory[Int(k)] = x
            case BPF_ALU:
                let operand = code & 0x08 == BPF_X ? x : k
                switch code & 0xF0 {
                case BPF_ADD: a = a &+ operand
                case BPF_SUB: a = a &- operand
                case BPF_MUL: a = a &* operand
                case BPF_DIV: if operand == 0 { return 0 }; a /= operand
                case BPF_AND: a &= operand
                case BPF_OR: a |= operand
                case BPF_XOR: a ^= operand
                case BPF_LSH: a = a << operand
                case BPF_RSH: a = a >> operand
                case BPF_NEG: a = 0 &- a
                default: return 0
                }
            case BPF_JMP:
                if code & 0xF0 == BPF_JA {
                    pc += Int(k)
                    continue
                }
                let operand = code & 0x08 == BPF_X ? x : k
                let taken: Bool
                switch code & 0xF0 {
                case BPF_JEQ: taken = a == operand
                case BPF_JGT: taken = a > operand
                case BPF_JGE: taken = a >= operand
                case BPF_JSET: taken = a & operand != 0
                default: return 0
                }
                pc += Int(taken ? instruction.jt : instruction.jf)
            case BPF_RET: return code & 0x18 == BPF_A ? a : k
            case BPF_MISC: if code & 0xF8 == BPF_TAX { x = a } else { a = x }
            default: return 0
            }
        }
        return 0
    }
}

@Suite struct BPFProgramTests {
    static func fixtureFrames(_ name: String) throws -> [[UInt8]] {
        try TestSupport.readPcap(TestSupport.fixtures.appendingPathComponent(name).path).records.map(\.data)
    }

    static func filter(rspan: [UInt16] = [], user: String? = nil) throws -> [sock_filter] {
        var configuration = CollectorConfiguration(outputDirectory: "/tmp")
        configuration.rspanVLANs = rspan
        return try LiveCapture.kernelFilter(configuration, user: user).instructions
    }

    /// Every frame the decoder takes as mirror traffic passes the kernel filter: the filter
    /// must never lose what replay would have kept.
    @Test func everyMirrorFrameOfEveryFixturePassesTheKernelFilter() throws {
        let names = try TestSupport.ethernetFixtureInputs()
        let program = try Self.filter(rspan: [999])
        var configuration = MirrorDecoder.Configuration()
        configuration.rspanVLANs = VLANSet([999])
        let decoder = MirrorDecoder(configuration: configuration)
        var checked = 0
        for name in names {
            for frame in try Self.fixtureFrames(name) where frame.count >= 18 {
                let isMirror = frame.withUnsafeBytes { bytes -> Bool in
                    if case .mirror = decoder.decode(bytes, wireLength: bytes.count) { return true }
                    return false
                }
                guard isMirror else { continue }
                checked += 1
                #expect(BPFMachine.run(program, on: .init(wire: frame)) > 0, "\(name): a mirror frame the kernel filter would drop")
            }
        }
        #expect(checked > 100)
    }

    /// Geneve and VXLAN-GPE reach user space on their configured ports, and only there.
    @Test func geneveAndGPEPortsPassTheKernelFilter() throws {
        let frames = try Self.fixtureFrames("geneve_basic.pcap") + Self.fixtureFrames("vxlan_gpe.pcap")
        let program = try Self.filter()
        #expect(frames.allSatisfy { BPFMachine.run(program, on: .init(wire: $0)) > 0 })
        var configuration = CollectorConfiguration(outputDirectory: "/tmp")
        configuration.genevePorts = [7000]
        configuration.vxlanGPEPorts = []
        let moved = try LiveCapture.kernelFilter(configuration, user: nil).instructions
        #expect(frames.allSatisfy { BPFMachine.run(moved, on: .init(wire: $0)) == 0 }, "not configured: stopped in the kernel")
    }

    @Test func nonMirrorTrafficIsStoppedInTheKernelWithAndWithoutRSPAN() throws {
        let frames = try Self.fixtureFrames("not_mirror.pcap")
        for rspan in [[], [999]] as [[UInt16]] {
            let program = try Self.filter(rspan: rspan)
            let accepted = frames.filter { BPFMachine.run(program, on: .init(wire: $0)) > 0 }
            #expect(accepted.isEmpty, "rspan \(rspan): \(accepted.count) of \(frames.count) non-mirror frames got through")
        }
        // RSPAN frames are taken whatever they carry, other VLANs only if they carry a mirror
        // transport (v23: VIDs 999 four times, then plain UDP in VLAN 998).
        let rspanProgram = try Self.filter(rspan: [999])
        let verdicts = try Self.fixtureFrames("v23_rspan.pcap").map { BPFMachine.run(rspanProgram, on: .init(wire: $0)) > 0 }
        #expect(verdicts == [true, true, true, true, false])
        // 0x9100, which the kernel leaves in the bytes, is matched in band.
        var inBand = try Self.fixtureFrames("v23_rspan.pcap")[0]
        inBand[12] = 0x91
        #expect(BPFMachine.run(rspanProgram, on: .init(wire: inBand)) > 0)
    }

    @Test func theUsersFilterSeesTheRightFields() throws {
        let program = try Self.filter(user: "src host 198.51.100.3")
        var accepted: [String: Int] = [:]
        for frame in try Self.fixtureFrames("mixed_sessions.pcap") where frame.count > 34 && frame[12] == 0x08 && frame[13] == 0 {
            let source = frame[26..<30].map(String.init).joined(separator: ".")
            if BPFMachine.run(program, on: .init(wire: frame)) > 0 { accepted[source, default: 0] += 1 }
        }
        #expect(accepted.keys.sorted() == ["198.51.100.3"])
    }

    /// The fanout program gives every frame of a session the same value, whatever the VXLAN
    /// source port, the inner flow, or how many tags the outer frame carries.
    @Test func fanoutValueIsAFunctionOfTheSession() throws {
        let program = BPFProgram.sessionAffinityFanout(rspanVLANs: [999]).instructions
        var configuration = MirrorDecoder.Configuration()
        configuration.rspanVLANs = VLANSet([999])
        let decoder = MirrorDecoder(configuration: configuration)
        let directory = try TestSupport.makeTemporaryDirectory("fanout")
        defer { TestSupport.removeDirectory(directory) }
        let generated = try TestSupport.run([
            "python3", TestSupport.fixtures.appendingPathComponent("make_affinity.py").path, directory + "/a.pcap", "--per-session", "20",
        ])
        #expect(generated.status == 0)
        var inputs = try TestSupport.readPcap(directory + "/a.pcap").records.map(\.data)
        for name in [
            "v12_outer_vlan.pcap", "v23_rspan.pcap", "mixed_sessions.pcap", "v08_ipv6_erspan2.pcap", "geneve_options.pcap",
            "geneve_ipv6.pcap", "vxlan_gpe.pcap",
        ] {
            inputs += try Self.fixtureFrames(name)
        }
        var valueBySession: [String: Set<UInt32>] = [:]
        for frame in inputs {
            let key: String? = frame.withUnsafeBytes { bytes in
                guard case .mirror(let decoded) = decoder.decode(bytes, wireLength: bytes.count) else { return nil }
                return decoded.encapsulation == .rspan ? "vlan \(decoded.sessionID)" : "\(decoded.exporter)"
            }
            guard let key else { continue }
            valueBySession[key, default: []].insert(BPFMachine.run(program, on: .init(wire: frame)))
        }
        #expect(valueBySession.count >= 10)
        for (session, values) in valueBySession {
            #expect(values.count == 1, "\(session) maps to \(values.count) fanout values")
        }
        // An RSPAN VLAN in a 0x9100 tag (left in the bytes) maps like the same VLAN untagged by
        // the kernel: to its VID.
        var inBand = try Self.fixtureFrames("v23_rspan.pcap")[0]
        inBand[12] = 0x91
        #expect(BPFMachine.run(program, on: .init(wire: inBand)) == 999)
        #expect(BPFMachine.run(program, on: .init(wire: try Self.fixtureFrames("v23_rspan.pcap")[0])) == 999)
        // And sessions spread: at least two different workers out of four.
        #expect(Set(valueBySession.values.compactMap(\.first).map { $0 % 4 }).count >= 2)
    }
}
