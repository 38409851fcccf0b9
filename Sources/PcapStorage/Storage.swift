import CaptureSystem
import PcapFormat
import Synchronization

/// The per-session rotating writers as a whole: the buffer pool, the writer threads, and one
/// `SessionRecorder` per session. Owned and driven by one capture thread (replay) or shared by
/// capture workers that each drive only their own sessions' recorders.
public final class Storage: @unchecked Sendable {
    public let configuration: StorageConfiguration
    let pool: BufferPool
    private let writers: [FileWriter]
    let retention: DiskRetention
    private let recordersLock = ConditionLock()
    private var recorders: [SessionRecorder] = []
    private var names: Set<String> = []
    /// Monotonic time stamped on buffers; refreshed by `tick` rather than read per frame.
    let flushClock = Atomic<UInt64>(0)
    var nowForFlush: UInt64 { flushClock.load(ordering: .relaxed) }

    public init(configuration: StorageConfiguration, events: @escaping @Sendable (StorageEvent) -> Void = { _ in }) throws(SystemError) {
        self.configuration = configuration
        // Refuse to start rather than count every frame as dropped.write later.
        try FileSystem.checkWritable(directory: configuration.directory, mode: configuration.directoryMode)
        pool = BufferPool(
            limit: configuration.bufferCount, bufferSize: configuration.bufferSize,
            preallocate: min(configuration.maximumBuffersInFlight + 2, 16))
        retention = DiskRetention(configuration: configuration, events: events)
        retention.scanExisting()
        retention.enforce()
        var writers: [FileWriter] = []
        for index in 0..<max(1, configuration.writerThreads) {
            writers.append(try FileWriter(index: index, pool: pool, configuration: configuration, retention: retention, events: events))
        }
        self.writers = writers
        flushClock.store(Clock.monotonicNanoseconds(), ordering: .relaxed)
    }

    /// A recorder for a new session. `name` must already be validated (it becomes a directory).
    /// A name already in use (two capture threads met the same session, which session-affine
    /// fanout should prevent) gets a `~2`, `~3`, ... suffix: two writers never share a directory.
    /// `linkType` is the file's (pcap) or interface 0's (pcapng) link type; pcapng recorders
    /// also get interface 1 (LINKTYPE_RAW, same name and description) for raw-IP records.
    public func makeRecorder(
        sessionName requested: String, linkType: UInt32, interfaceDescription: String,
        overrides: StorageConfiguration.SessionOverrides = .init()
    ) -> SessionRecorder {
        recordersLock.withLock {
            var name = requested
            var suffix = 2
            while names.contains(name) {
                name = "\(requested)~\(suffix)"
                suffix += 1
            }
            names.insert(name)
            let writerIndex = recorders.count % writers.count
            let sessionConfiguration = configuration.applying(overrides)
            let files = SessionFiles(
                name: name, directory: configuration.directory + "/" + name, writerIndex: writerIndex,
                keepFiles: sessionConfiguration.keepFiles)
            let header = configuration.format.fileHeader(
                linkType: linkType, interfaceName: name, interfaceDescription: interfaceDescription)
            let rawIPInterface =
                configuration.format == .pcapng
                ? InterfaceDescriptionBlock.bytes(
                    linkType: InterfaceDescriptionBlock.linkTypeRawIP, name: name, description: interfaceDescription)
                : []
            let recorder = SessionRecorder(
                files: files, storage: self, writer: writers[writerIndex], header: header, rawIPInterface: rawIPInterface,
                configuration: sessionConfiguration)
            recorders.append(recorder)
            return recorder
        }
    }

    /// A free buffer. With `.wait` it blocks on the writers; if every buffer sits half-full in
    /// some session (many sessions, few buffers), all sessions' buffers are handed over first.
    func acquireBuffer() -> BatchBuffer? {
        // The queue depth: a session hands over its full buffer just before asking.
        if pool.inFlightAtLeast(configuration.maximumBuffersInFlight) {
            guard configuration.handoff == .wait else { return nil }
            pool.waitForInFlightBelow(configuration.maximumBuffersInFlight)
        }
        while true {
            if let buffer = pool.tryAcquire() { return buffer }
            guard configuration.handoff == .wait else { return nil }
            if !pool.waitForRelease() {
                for recorder in recordersLock.withLock({ recorders }) { recorder.flushBuffer() }
                if !pool.waitForRelease() { return nil }  // cannot happen: flushing put buffers in flight
            }
        }
    }

    /// Periodic housekeeping from the capture thread: time-based rotation of quiet sessions and
    /// writing out buffers older than the flush interval. `now` is wall-clock ns.
    public func tick(wallClockNanoseconds now: UInt64, recorders subset: [SessionRecorder]? = nil) {
        let monotonic = Clock.monotonicNanoseconds()
        flushClock.store(monotonic, ordering: .relaxed)
        let flushBefore = monotonic &- configuration.flushIntervalNanoseconds
        for recorder in subset ?? recordersLock.withLock({ recorders }) {
            recorder.rotateIfIntervalEnded(now: now)
            recorder.finishIfFailed()
            if let idle = configuration.idleTimeoutNanoseconds { recorder.finishIfIdle(monotonicNow: monotonic, idleFor: idle) }
            if recorder.hasStaleBuffer(olderThan: flushBefore) { recorder.flushBuffer() }
        }
    }

    /// Finishes every session's current file (SIGHUP, shutdown). Only from the thread that owns
    /// the recorders, or with `subset` = that thread's recorders.
    public func finishAllFiles(recorders subset: [SessionRecorder]? = nil) {
        for recorder in subset ?? recordersLock.withLock({ recorders }) { recorder.finishFile() }
    }

    /// Finishes all files, waits until everything is written and renamed, stops the writers.
    public func close() {
        finishAllFiles()
        for writer in writers { writer.stopAndJoin() }
    }

    /// Stalls every writer until the returned gate is opened, as a hung disk would: for tests
    /// of the capture side's behaviour under a full queue.
    func pauseWriters() -> WriterGate {
        let gate = WriterGate()
        for writer in writers { writer.enqueue(.pause(gate)) }
        return gate
    }

    /// Hands every session's buffer to its writer and waits until the writers have done all
    /// that was queued: a deterministic point between writes, for tests.
    func drainWriters() {
        for recorder in recordersLock.withLock({ recorders }) { recorder.flushBuffer() }
        let gates = writers.map { writer in
            let gate = WriterGate()
            writer.enqueue(.signal(gate))
            return gate
        }
        for gate in gates { gate.wait() }
    }

    /// Replaces the disk retention limits (configuration reload).
    public func updateDiskLimits(maximumUsage: Int?, minimumFree: StorageConfiguration.MinimumFreeSpace?) {
        retention.update(maximumUsage: maximumUsage, minimumFree: minimumFree)
    }

    /// Files removed to respect --max-disk-usage / --min-free-space.
    public var filesRemovedForSpace: Int { retention.removedFiles.load(ordering: .relaxed) }

    /// Bytes of finished files counted by disk retention (0 when it is off).
    public var finishedFileBytes: Int { retention.usage }

    /// Bytes of batch buffers allocated so far.
    public var bufferMemory: Int { pool.allocatedBytes }
}
