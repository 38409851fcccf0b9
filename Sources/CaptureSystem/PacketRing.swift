import CLinuxPacket

#if canImport(Glibc)
import Glibc
#endif

/// One AF_PACKET socket with a TPACKET_V3 receive ring, bound to one interface.
///
/// The kernel fills whole blocks and flips each block's status word to "user"; the worker walks
/// every frame of the block in place (no copy until the frame lands in a session buffer) and
/// then flips the word back. `poll` is called only when the next block is still the kernel's.
/// A quiet link still delivers: the kernel retires a partly filled block after
/// `retireTimeoutMilliseconds`. Block ownership is the only shared state, and it is touched
/// only through acquire/release atomics in CLinuxPacket.
public final class PacketRing: @unchecked Sendable {
    public struct Configuration: Sendable, Hashable {
        /// Bytes per block (a power of two, multiple of the page size). 256 KiB, as libpcap:
        /// the kernel allocates each block as one physically contiguous run and zeroes it, and
        /// runs of 1 MiB and more are the ones a VM host has reclaimed (measured here: 64 MiB
        /// in 4 MiB blocks took 0.2 s of system time to set up, in 256 KiB blocks 0.01 s).
        /// Wake-ups do not follow the block size: `WakePacing` batches blocks per wake-up.
        public var blockSize: Int = 256 << 10
        public var blockCount: Int = 256
        /// How long the kernel may hold a partly filled block.
        public var retireTimeoutMilliseconds: Int = 64

        public init() {}

        public var ringSize: Int { blockSize * blockCount }
    }

    /// One frame as the ring holds it. `bytes` point into the ring: valid only inside the
    /// callback that receives it.
    public struct Frame {
        public var bytes: UnsafeRawBufferPointer
        public var wireLength: Int
        public var timestampNanoseconds: UInt64
        /// The outer VLAN tag the kernel removed (hardware offload or software untagging).
        public var strippedTag: (protocolID: UInt16, controlInformation: UInt16)?

        @inlinable
        init(
            bytes: UnsafeRawBufferPointer, wireLength: Int, timestampNanoseconds: UInt64,
            strippedTag: (protocolID: UInt16, controlInformation: UInt16)?
        ) {
            self.bytes = bytes
            self.wireLength = wireLength
            self.timestampNanoseconds = timestampNanoseconds
            self.strippedTag = strippedTag
        }
    }

    public let interfaceName: String
    public let interfaceIndex: Int32
    public let configuration: Configuration
    private let socket: FileDescriptor
    @usableFromInline let ring: UnsafeMutableRawPointer
    @usableFromInline var nextBlock = 0

    /// Opens the socket and its ring on `interfaceName`. Nothing is received until `start()`.
    public init(interfaceName: String, configuration: Configuration) throws(SystemError) {
        self.interfaceName = interfaceName
        self.configuration = configuration
        interfaceIndex = try NetworkInterface.index(of: interfaceName)
        // Protocol 0: no frames until bind, so the filter is in place before the first one.
        let fd = try Syscall.retrying("socket", "AF_PACKET") { Glibc.socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        socket = FileDescriptor(adopting: fd)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard configuration.blockSize >= page, configuration.blockSize % page == 0, configuration.blockCount >= 2 else {
            throw SystemError(call: "setsockopt PACKET_RX_RING", subject: interfaceName, errno: EINVAL)
        }
        if CLinuxPacket_setupRing(
            fd, UInt32(configuration.blockSize), UInt32(configuration.blockCount), 2048,
            UInt32(configuration.retireTimeoutMilliseconds)) != 0
        {
            throw SystemError(call: "setsockopt PACKET_RX_RING", subject: interfaceName, errno: Glibc.errno)
        }
        guard
            let mapping = mmap(nil, configuration.ringSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, 0),
            mapping != MAP_FAILED
        else {
            // MAP_LOCKED can fail under RLIMIT_MEMLOCK; the ring works without it.
            guard let unlocked = mmap(nil, configuration.ringSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
                unlocked != MAP_FAILED
            else { throw SystemError(call: "mmap", subject: "packet ring on \(interfaceName)", errno: Glibc.errno) }
            ring = unlocked
            return
        }
        ring = mapping
    }

    deinit { munmap(ring, configuration.ringSize) }

    /// Installs the socket filter (SO_ATTACH_FILTER).
    public func attach(filter: BPFProgram) throws(SystemError) {
        try install(filter, option: "SO_ATTACH_FILTER", with: CLinuxPacket_attachFilter)
    }

    private func install(
        _ program: BPFProgram, option: String, with call: (Int32, UnsafePointer<sock_filter>?, UInt16) -> Int32
    ) throws(SystemError) {
        let status = program.instructions.withUnsafeBufferPointer { instructions in
            call(socket.rawValue, instructions.baseAddress, UInt16(instructions.count))
        }
        if status != 0 { throw SystemError(call: "setsockopt \(option)", subject: interfaceName, errno: Glibc.errno) }
    }

    /// Binds to the interface: frames start to arrive.
    public func start() throws(SystemError) {
        if CLinuxPacket_bind(socket.rawValue, interfaceIndex) != 0 {
            throw SystemError(call: "bind", subject: interfaceName, errno: Glibc.errno)
        }
    }

    /// Joins a fanout group with a classic BPF demultiplexer and IPv4 defragmentation
    /// (PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_DEFRAG). With `group` nil a new group is made
    /// with an id the kernel guarantees unique (PACKET_FANOUT_FLAG_UNIQUEID), so two collectors
    /// on one host never share one; the id is returned for the other members. Call after
    /// `start()`; the first member installs `program`.
    @discardableResult
    public func joinFanout(group: UInt16?, program: BPFProgram) throws(SystemError) -> UInt16 {
        var typeAndFlags = UInt16(PACKET_FANOUT_CBPF) | UInt16(PACKET_FANOUT_FLAG_DEFRAG)
        if group == nil { typeAndFlags |= UInt16(PACKET_FANOUT_FLAG_UNIQUEID) }
        if CLinuxPacket_joinFanout(socket.rawValue, group ?? 0, typeAndFlags) != 0 {
            throw SystemError(call: "setsockopt PACKET_FANOUT", subject: interfaceName, errno: Glibc.errno)
        }
        if let group { return group }
        try install(program, option: "PACKET_FANOUT_DATA", with: CLinuxPacket_setFanoutProgram)
        let id = CLinuxPacket_fanoutGroupID(socket.rawValue)
        guard id >= 0 else { throw SystemError(call: "getsockopt PACKET_FANOUT", subject: interfaceName, errno: Glibc.errno) }
        return UInt16(id)
    }

    /// Leaves out frames this host sends itself (PACKET_IGNORE_OUTGOING); older kernels lack
    /// it, which only costs a few `not_mirror` counts.
    public func ignoreOutgoing() -> Bool {
        CLinuxPacket_ignoreOutgoing(socket.rawValue) == 0
    }

    /// Receives everything the interface sees, not only frames addressed to it (RSPAN).
    public func enablePromiscuousMode() throws(SystemError) {
        if CLinuxPacket_addPromiscuousMembership(socket.rawValue, interfaceIndex) != 0 {
            throw SystemError(call: "setsockopt PACKET_ADD_MEMBERSHIP", subject: interfaceName, errno: Glibc.errno)
        }
    }

    /// Walks the next block if the kernel has handed it over: calls `body` for every frame,
    /// returns the block, and reports how many frames there were (nil: no block ready).
    /// Inlinable: the capture loop's per-frame closure is then inlined into the walk.
    @inlinable
    public func drainNextBlock(_ body: (borrowing Frame) -> Void) -> Int? {
        let block = ring + nextBlock * configuration.blockSize
        guard CLinuxPacket_blockStatus(block) & UInt32(TP_STATUS_USER) != 0 else { return nil }
        let count = Int(CLinuxPacket_blockPacketCount(block))
        var header = block + Int(CLinuxPacket_blockFirstPacketOffset(block))
        let blockEnd = block + configuration.blockSize
        for _ in 0..<count {
            let info = CLinuxPacket_frame(header)
            let start = header + Int(info.macOffset)
            // Never trust offsets blindly, even the kernel's: stay inside the block.
            guard start + Int(info.capturedLength) <= blockEnd else { break }
            var tag: (UInt16, UInt16)?
            if info.status & UInt32(TP_STATUS_VLAN_VALID) != 0 {
                let tpid = info.status & UInt32(TP_STATUS_VLAN_TPID_VALID) != 0 ? info.vlanTPID : 0x8100
                tag = (tpid, info.vlanTCI)
            }
            body(
                Frame(
                    bytes: UnsafeRawBufferPointer(start: start, count: Int(info.capturedLength)),
                    wireLength: Int(info.wireLength),
                    timestampNanoseconds: UInt64(info.seconds) * 1_000_000_000 + UInt64(info.nanoseconds),
                    strippedTag: tag))
            guard info.nextOffset != 0 else { break }
            header += Int(info.nextOffset)
        }
        CLinuxPacket_releaseBlock(block)
        nextBlock = (nextBlock + 1) % configuration.blockCount
        return count
    }

    /// Waits up to `milliseconds` for the next block. The corresponding C function is `poll(2)`.
    /// Returns the pending socket errors it took, as (position in `rings`, errno): the kernel
    /// sets ENETDOWN when the interface goes down or away, and `poll` would report it at once
    /// for as long as nobody reads it (a busy loop). Reading it (SO_ERROR) clears it; a ring
    /// whose interface comes back up receives again by itself.
    public static func waitForAny(_ rings: [PacketRing], milliseconds: Int32) -> [(ring: Int, errno: Int32)] {
        var descriptors = rings.map { pollfd(fd: $0.socket.rawValue, events: Int16(POLLIN), revents: 0) }
        guard poll(&descriptors, nfds_t(descriptors.count), milliseconds) > 0 else { return [] }
        var errors: [(ring: Int, errno: Int32)] = []
        for (position, descriptor) in descriptors.enumerated() where descriptor.revents & Int16(POLLERR) != 0 {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(descriptor.fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error != 0 {
                errors.append((position, error))
            }
        }
        return errors
    }

    /// Frames the kernel dropped because the ring was full, since the last call (the kernel
    /// resets the counter on read). The corresponding option is `PACKET_STATISTICS`.
    public func takeDrops() -> (received: UInt64, dropped: UInt64) {
        var packets: UInt32 = 0
        var drops: UInt32 = 0
        var freezes: UInt32 = 0
        guard CLinuxPacket_statistics(socket.rawValue, &packets, &drops, &freezes) == 0 else { return (0, 0) }
        return (UInt64(packets), UInt64(drops))
    }
}
