import CLinuxPacket
import CPcap

#if canImport(Glibc)
import Glibc
#endif

/// A classic BPF program: compiled from a pcap filter expression by libpcap, or assembled here
/// (the fanout demultiplexer and the RSPAN prefix, which need the kernel's ancillary loads that
/// libpcap only emits for live handles).
public struct BPFProgram: Sendable, Equatable {
    public var instructions: [sock_filter]

    public init(instructions: [sock_filter]) { self.instructions = instructions }

    public struct CompileError: Error, CustomStringConvertible, Sendable {
        public var expression: String
        public var message: String
        public var description: String { "filter '\(expression)': \(message)" }
    }

    /// Compiles a tcpdump-style expression for Ethernet frames (offsets from the MAC header, as
    /// an AF_PACKET socket filter sees them). The corresponding C function is `pcap_compile`.
    public static func compile(_ expression: String) throws(CompileError) -> BPFProgram {
        guard let handle = pcap_open_dead(DLT_EN10MB, 262_144) else {
            throw CompileError(expression: expression, message: "pcap_open_dead failed")
        }
        defer { pcap_close(handle) }
        var program = bpf_program()
        guard pcap_compile(handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw CompileError(expression: expression, message: String(cString: pcap_geterr(handle)))
        }
        defer { pcap_freecode(&program) }
        var instructions: [sock_filter] = []
        for index in 0..<Int(program.bf_len) {
            let insn = program.bf_insns[index]
            instructions.append(sock_filter(code: insn.code, jt: insn.jt, jf: insn.jf, k: insn.k))
        }
        return BPFProgram(instructions: instructions)
    }

    // MARK: Assembling

    static let ancillary: Int32 = -0x1000  // SKF_AD_OFF
    static let networkOffset: Int32 = -0x100000  // SKF_NET_OFF
    static let protocolField: Int32 = 0  // SKF_AD_PROTOCOL
    static let vlanTag: Int32 = 44  // SKF_AD_VLAN_TAG
    static let vlanTagPresent: Int32 = 48  // SKF_AD_VLAN_TAG_PRESENT

    static func statement(_ code: Int32, _ k: Int32) -> sock_filter {
        sock_filter(code: UInt16(code), jt: 0, jf: 0, k: UInt32(bitPattern: k))
    }

    static func jump(_ code: Int32, _ k: Int32, _ jt: Int, _ jf: Int) -> sock_filter {
        sock_filter(code: UInt16(code), jt: UInt8(jt), jf: UInt8(jf), k: UInt32(bitPattern: k))
    }

    static let loadWord = BPF_LD | BPF_W | BPF_ABS
    static let loadHalf = BPF_LD | BPF_H | BPF_ABS
    static let jumpIfEqual = BPF_JMP | BPF_JEQ | BPF_K
    static let returnA = BPF_RET | BPF_A
    static let returnK = BPF_RET | BPF_K

    /// The fanout demultiplexer: the kernel picks `result % members`. It returns the RSPAN VLAN
    /// ID for frames whose (offloaded or software-untagged) outer tag is an RSPAN VLAN, else a
    /// fold of the outer IPv4/IPv6 source address, else 0. So every frame of a session, which is
    /// keyed by exporter (or by VLAN for RSPAN), reaches the same worker, whatever the inner
    /// flow or the VXLAN source port. Network-header-relative loads (SKF_NET_OFF) make it
    /// independent of where the kernel's data pointer stands.
    public static func sessionAffinityFanout(rspanVLANs: [UInt16]) -> BPFProgram {
        var assembler = Assembler()
        // Outer tag (kernel metadata) carrying an RSPAN VLAN: return the VID.
        assembler.emit(statement(loadWord, ancillary + vlanTagPresent))
        assembler.jumpIf(equalTo: 0, then: "ip", else: nil)
        assembler.emit(statement(loadWord, ancillary + vlanTag))
        assembler.emit(statement(BPF_ALU | BPF_AND | BPF_K, 0x0FFF))
        for vid in rspanVLANs.prefix(200) { assembler.jumpIf(equalTo: Int32(vid), then: "return", else: nil) }
        assembler.jump(to: "ip")
        assembler.label("return")
        assembler.emit(statement(returnA, 0))
        // IP: skb->protocol is the EtherType after the outer tag. Tags the kernel does not
        // take out (an inner one, or 0x9100 which it never untags) stay in the bytes, 4 each,
        // before the IP header; up to three are walked.
        assembler.label("ip")
        // An RSPAN VLAN in a tag the kernel leaves in the bytes (0x9100): the tag control word
        // is the first thing after the EtherType, i.e. at the network-header offset.
        if !rspanVLANs.isEmpty {
            assembler.emit(statement(loadWord, ancillary + protocolField))
            assembler.jumpIf(equalTo: 0x9100, then: nil, else: "not-in-band-rspan")
            assembler.emit(statement(loadHalf, networkOffset + 0))
            assembler.emit(statement(BPF_ALU | BPF_AND | BPF_K, 0x0FFF))
            for vid in rspanVLANs.prefix(200) { assembler.jumpIf(equalTo: Int32(vid), then: "in-band-return", else: nil) }
            assembler.jump(to: "not-in-band-rspan")
            assembler.label("in-band-return")
            assembler.emit(statement(returnA, 0))
            assembler.label("not-in-band-rspan")
        }
        assembler.emit(statement(loadWord, ancillary + protocolField))
        for depth: Int32 in 0...3 {
            if depth > 0 {
                assembler.label("depth\(depth)")
                assembler.emit(statement(loadHalf, networkOffset + 4 * depth - 2))
            }
            assembler.jumpIf(equalTo: 0x0800, then: "ipv4-\(depth)", else: nil)
            assembler.jumpIf(equalTo: 0x86DD, then: "ipv6-\(depth)", else: nil)
            if depth < 3 {
                for tag: Int32 in [0x8100, 0x88A8, 0x9100] { assembler.jumpIf(equalTo: tag, then: "depth\(depth + 1)", else: nil) }
            }
            assembler.emit(statement(returnK, 0))
        }
        for depth: Int32 in 0...3 {
            let base = networkOffset + 4 * depth
            assembler.label("ipv4-\(depth)")
            assembler.emit(statement(loadWord, base + 12))  // IPv4 source
            assembler.jump(to: "fold")
            assembler.label("ipv6-\(depth)")  // the four words of the IPv6 source, XORed
            assembler.emit(statement(loadWord, base + 8))
            for offset: Int32 in [12, 16, 20] {
                assembler.emit(statement(BPF_MISC | BPF_TAX, 0))
                assembler.emit(statement(loadWord, base + offset))
                assembler.emit(statement(BPF_ALU | BPF_XOR | BPF_X, 0))
            }
            assembler.jump(to: "fold")
        }
        // A ^= A >> 16, so the low bits the modulo keeps see the whole address.
        assembler.label("fold")
        assembler.emit(statement(BPF_ST, 0))
        assembler.emit(statement(BPF_ALU | BPF_RSH | BPF_K, 16))
        assembler.emit(statement(BPF_MISC | BPF_TAX, 0))
        assembler.emit(statement(BPF_LD | BPF_MEM, 0))
        assembler.emit(statement(BPF_ALU | BPF_XOR | BPF_X, 0))
        assembler.emit(statement(returnA, 0))
        return BPFProgram(instructions: assembler.assemble())
    }

    /// Classic BPF with named forward jumps, so offsets are computed, not counted by hand.
    struct Assembler {
        private var instructions: [sock_filter] = []
        private var labels: [String: Int] = [:]
        /// Instruction index → (true target, false target) to patch; nil = next instruction.
        private var fixups: [(index: Int, then: String?, otherwise: String?)] = []

        mutating func emit(_ instruction: sock_filter) { instructions.append(instruction) }

        mutating func label(_ name: String) { labels[name] = instructions.count }

        mutating func jumpIf(equalTo value: Int32, then: String?, else otherwise: String?) {
            fixups.append((instructions.count, then, otherwise))
            instructions.append(BPFProgram.jump(jumpIfEqual, value, 0, 0))
        }

        mutating func jump(to target: String) {
            fixups.append((instructions.count, target, nil))
            instructions.append(BPFProgram.jump(BPF_JMP | BPF_JA, 0, 0, 0))
        }

        func assemble() -> [sock_filter] {
            var result = instructions
            for fixup in fixups {
                func offset(_ name: String?) -> Int {
                    guard let name else { return 0 }
                    let distance = labels[name]! - fixup.index - 1
                    precondition(distance >= 0, "BPF jumps only go forward")
                    return distance
                }
                if result[fixup.index].code == UInt16(BPF_JMP | BPF_JA) {
                    result[fixup.index].k = UInt32(offset(fixup.then))
                } else {
                    result[fixup.index].jt = UInt8(offset(fixup.then))
                    result[fixup.index].jf = UInt8(offset(fixup.otherwise))
                }
            }
            return result
        }
    }

    /// `body` preceded by an accept for frames whose outer tag (kernel metadata) carries one of
    /// `rspanVLANs`. libpcap's `vlan N` would look for the tag in the bytes, where the kernel
    /// has already removed it.
    public static func acceptingRSPAN(_ rspanVLANs: [UInt16], before body: BPFProgram) -> BPFProgram {
        let vids = Array(rspanVLANs.prefix(200))
        guard !vids.isEmpty else { return body }
        var assembler = Assembler()
        assembler.emit(statement(loadWord, ancillary + vlanTagPresent))
        assembler.jumpIf(equalTo: 0, then: "body", else: nil)
        assembler.emit(statement(loadWord, ancillary + vlanTag))
        assembler.emit(statement(BPF_ALU | BPF_AND | BPF_K, 0x0FFF))
        for vid in vids { assembler.jumpIf(equalTo: Int32(vid), then: "accept", else: nil) }
        assembler.jump(to: "body")
        assembler.label("accept")
        assembler.emit(statement(returnK, 262_144))
        assembler.label("body")
        return BPFProgram(instructions: assembler.assemble() + body.instructions)
    }

    /// This program, but where it would reject a frame, `next` decides instead (a logical
    /// "or" of two compiled programs; libpcap's `vlan` offset rules make some alternatives
    /// impossible to write as one expression). Rejects are `ret #0`, which libpcap emits.
    public func orElse(_ next: BPFProgram) -> BPFProgram {
        var combined = instructions
        let end = combined.count
        for index in combined.indices where combined[index].code == UInt16(Self.returnK) && combined[index].k == 0 {
            combined[index] = Self.jump(BPF_JMP | BPF_JA, Int32(end - index - 1), 0, 0)
        }
        return BPFProgram(instructions: combined + next.instructions)
    }

    /// A filter that accepts nothing (for sockets held only so the kernel sees a listener).
    public static let dropAll = BPFProgram(instructions: [statement(returnK, 0)])
}

extension sock_filter: @retroactive Equatable {
    public static func == (a: sock_filter, b: sock_filter) -> Bool {
        a.code == b.code && a.jt == b.jt && a.jf == b.jf && a.k == b.k
    }
}

extension sock_filter: @retroactive @unchecked Sendable {}
