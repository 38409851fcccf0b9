import CaptureSystem
import MirrorDecoding
import PcapStorage
import Synchronization

/// One capture thread: it owns its rings (one per interface, each a member of that interface's
/// fanout group), its pipeline and its sessions' recorders. Nothing per frame is shared with
/// other threads; requests arrive as atomic flags, counters leave as a published snapshot.
final class CaptureWorker: @unchecked Sendable {
    let index: Int
    private let rings: [PacketRing]
    private let interfaceIndexes: [UInt32]
    let pipeline: Pipeline
    private let storage: Storage
    /// Called on this worker's thread when a ring's socket reports an error (ENETDOWN: the
    /// interface went down or away).
    private let onSocketError: (String, SystemError) -> Void
    /// How long the kernel may hold a partly filled block: after a stop request the worker keeps
    /// draining this long (plus a margin) so frames already received are not left behind.
    private let retireTimeoutNanoseconds: UInt64
    private var pacing: WakePacing

    let stopRequested = Atomic<Bool>(false)
    let rotateRequested = Atomic<Bool>(false)
    /// Session rules from a reloaded configuration, picked up at the next housekeeping pass.
    let pendingRules = Mutex<(rules: [SessionRule], acceptUnknown: Bool)?>(nil)
    /// Counters as of the last housekeeping pass (about every 100 ms).
    let published = Mutex<Summary>(Summary())
    /// Monotonic time of the last pass through the capture loop (watchdog for the service).
    let heartbeat = Atomic<UInt64>(0)
    private var thread: OSThread?

    /// `rings[i]` captures on the interface whose name is `pipeline.interfaceNames[interfaceIndexes[i]]`.
    init(
        index: Int, rings: [PacketRing], interfaceIndexes: [UInt32], pipeline: Pipeline, storage: Storage,
        onSocketError: @escaping (String, SystemError) -> Void = { _, _ in }
    ) {
        self.onSocketError = onSocketError
        self.index = index
        retireTimeoutNanoseconds = UInt64(rings.map(\.configuration.retireTimeoutMilliseconds).max() ?? 0) * 1_000_000
        let smallestRing = rings.map(\.configuration).min { $0.ringSize < $1.ringSize } ?? PacketRing.Configuration()
        pacing = WakePacing(blockSize: smallestRing.blockSize, blockCount: smallestRing.blockCount)
        self.rings = rings
        self.interfaceIndexes = interfaceIndexes
        self.pipeline = pipeline
        self.storage = storage
    }

    /// Installs the socket filter on every ring of this worker.
    func attachToRings(filter: BPFProgram) throws(SystemError) {
        for ring in rings { try ring.attach(filter: filter) }
    }

    func start() throws(SystemError) {
        thread = try OSThread(name: "span-capture-\(index)") { [self] in run() }
    }

    func join() {
        thread?.join()
        thread = nil
    }

    private func run() {
        var lastHousekeeping: UInt64 = 0
        var stopDeadline: UInt64?
        var blocksSinceWake = 0
        while true {
            if stopDeadline == nil, stopRequested.load(ordering: .relaxed) {
                // Nothing new enters the rings from here on, so draining ends even when traffic
                // does not; what is already in them is kept, including blocks the kernel
                // retires within its timeout.
                for ring in rings { try? ring.attach(filter: .dropAll) }
                stopDeadline = Clock.monotonicNanoseconds() + retireTimeoutNanoseconds + 50_000_000
            }
            var drained = false
            for (position, ring) in rings.enumerated() {
                let interface = interfaceIndexes[position]
                let pipeline = self.pipeline
                let frames = ring.drainNextBlock { frame in
                    let tag = frame.strippedTag.map { VLANTag(protocolID: $0.protocolID, controlInformation: $0.controlInformation) }
                    pipeline.process(
                        frame.bytes, wireLength: frame.wireLength, timestampNanoseconds: frame.timestampNanoseconds,
                        offloadedTag: tag, interface: interface)
                }
                if frames != nil {
                    drained = true
                    blocksSinceWake += 1
                }
            }
            let now = Clock.monotonicNanoseconds()
            if now &- lastHousekeeping >= 100_000_000 {
                housekeeping(monotonicNow: now)
                lastHousekeeping = now
            }
            if let stopDeadline {
                // Rings empty after the retire timeout: done. Still refilling long after the
                // drop-all filter (cannot happen; frames in flight at most): stop anyway.
                if !drained && now >= stopDeadline { break }
                if now >= stopDeadline + 2_000_000_000 { break }
            }
            if !drained {
                let nap = pacing.caughtUp(afterBlocks: blocksSinceWake)
                if nap > 0, stopDeadline == nil { Clock.sleep(nanoseconds: nap) }
                for (position, error) in PacketRing.waitForAny(rings, milliseconds: 20) {
                    onSocketError(rings[position].interfaceName, SystemError(call: "poll", subject: rings[position].interfaceName, errno: error))
                }
                blocksSinceWake = 0
            }
        }
        pipeline.finishReassembly()
        housekeeping(monotonicNow: Clock.monotonicNanoseconds())
        storage.finishAllFiles(recorders: pipeline.recorders)
    }

    private func housekeeping(monotonicNow: UInt64) {
        heartbeat.store(monotonicNow, ordering: .relaxed)
        for ring in rings {
            // PACKET_STATISTICS resets on read: accumulate.
            pipeline.kernelDropped += Int64(ring.takeDrops().dropped)
        }
        let recorders = pipeline.recorders
        if rotateRequested.exchange(false, ordering: .relaxed) {
            storage.finishAllFiles(recorders: recorders)
        }
        if let update = pendingRules.withLock({ pending in defer { pending = nil }; return pending }) {
            pipeline.update(sessionRules: update.rules, acceptUnknownSessions: update.acceptUnknown)
        }
        let wallClock = Clock.realtimeNanoseconds()
        pipeline.expireFragments(asOf: wallClock)
        storage.tick(wallClockNanoseconds: wallClock, recorders: recorders)
        let snapshot = pipeline.summary()
        published.withLock { $0 = snapshot }
    }
}
