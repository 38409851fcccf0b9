public import CaptureSystem
public import Logging
import MirrorDecoding
import PcapFormat
import PcapStorage
import Synchronization

/// Live capture: AF_PACKET TPACKET_V3 rings on one or more interfaces, `workers` capture
/// threads in one fanout group per interface (session-affine: see
/// `BPFProgram.sessionAffinityFanout`), writer threads behind a bounded queue. Capture never
/// waits on the disk: a frame that finds the queue full is dropped and counted as
/// `dropped.queue`; ring overflow is `dropped.kernel`.
public final class LiveCapture: @unchecked Sendable {
    public struct Options: Sendable {
        /// Interfaces to capture on; empty means the interface of the default route.
        public var interfaces: [String] = []
        public var workers: Int = LiveCapture.defaultWorkerCount
        public var ring = PacketRing.Configuration()
        /// A tcpdump-style expression that further restricts what the kernel hands over.
        public var filter: String?
        public var writerThreads: Int = 1
        /// Batch buffers queued for the writers before frames are dropped.
        /// 256 buffers of the default 256K: 64 MiB of disk stall ridden out.
        public var queueDepth: Int = 256
        /// Seconds between status lines on standard error (0: none).
        public var statusIntervalSeconds: Int = 10

        public init() {}
    }

    /// Half the cores, at least one, at most eight: the other half writes and serves the kernel.
    public static var defaultWorkerCount: Int {
        max(1, min(8, HostSystem.processorCount / 2))
    }

    public let configuration: CollectorConfiguration
    public let options: Options
    public let interfaces: [String]
    private let logger: Logger
    private let storage: Storage
    private let workers: [CaptureWorker]
    private let hygiene: HostHygiene
    private let hook: PostRotateHook?
    private var statusServer: StatusServer?
    /// sd_notify(3): READY, STATUS, WATCHDOG, RELOADING, STOPPING (a no-op outside systemd).
    private let notifier = SystemdNotifier()

    /// Sets everything up (sockets, rings, filters, fanout, writers); frames flow from here on.
    public init(configuration: CollectorConfiguration, options: Options, logger: Logger) throws(CollectorError) {
        // Before any thread exists: no writer, hook or capture thread may take these signals.
        ProcessSignals.block()
        let problems = configuration.problems() + Self.problems(options)
        guard problems.isEmpty else { throw .invalidConfiguration(problems) }
        self.configuration = configuration
        self.options = options
        self.logger = logger
        var interfaces = options.interfaces
        if interfaces.isEmpty {
            guard let name = NetworkInterface.defaultRouteInterface() else {
                throw .invalidConfiguration([.init(key: "interface", message: "no default route; name an interface with --interface")])
            }
            interfaces = [name]
        }
        self.interfaces = interfaces
        for name in interfaces {
            switch NetworkInterface.hardwareType(of: name) {
            case 1, 772: continue  // Ethernet, loopback (Ethernet framing)
            case nil: throw .invalidConfiguration([.init(key: "interface", message: "\(name): no such interface")])
            case let type?:
                throw .invalidConfiguration([.init(key: "interface", message: "\(name) is not Ethernet (ARPHRD \(type))")])
            }
        }

        // The kernel filter: mirror transports only, plus the RSPAN VLANs (by tag metadata).
        let filter: BPFProgram
        do {
            filter = try Self.kernelFilter(configuration, user: options.filter)
        } catch {
            throw .invalidConfiguration([.init(key: "filter", message: error.message)])
        }
        let fanout = BPFProgram.sessionAffinityFanout(rspanVLANs: configuration.rspanVLANs)

        // Descriptors: every open session file takes one. The soft limit goes up to the hard
        // one; sessions are capped to what is left after everything else.
        let descriptors = DescriptorLimit.raise()
        var pipelineConfiguration = configuration
        let capacity = Self.sessionCapacity(descriptors: descriptors, configuration: configuration, options: options, interfaces: interfaces.count)
        if capacity.perWorker < configuration.maximumSessions {
            pipelineConfiguration.maximumSessions = capacity.perWorker
            logger.warning(
                "too few file descriptors for max_sessions: sessions capped (raise LimitNOFILE or ulimit -n)",
                metadata: [
                    "descriptor_limit": "\(descriptors.soft)", "hard_limit": "\(descriptors.hard)", "open": "\(descriptors.open)",
                    "reserved": "\(capacity.reserved)", "descriptors_per_session": "\(capacity.perSession)",
                    "max_sessions": "\(configuration.maximumSessions)", "max_sessions_effective": "\(capacity.perWorker)",
                    "workers": "\(options.workers)",
                ])
        }

        var storageConfiguration = configuration.storageConfiguration(handoff: .drop)
        storageConfiguration.writerThreads = options.writerThreads
        storageConfiguration.maximumBuffersInFlight = options.queueDepth
        do {
            hook = try PostRotateHook.make(for: configuration, logger: logger)
        } catch {
            throw .output(error)
        }
        // Files a crash (or SIGKILL) left as .part: cut to their last whole record, renamed.
        PartFileRecovery.recover(in: configuration.outputDirectory, logger: logger, hook: hook)
        do {
            storage = try Storage(configuration: storageConfiguration, events: StorageEventLogger(logger: logger, hook: hook).handle)
        } catch {
            hook?.finish()
            throw .output(error)
        }

        hygiene = HostHygiene(udpPorts: configuration.vxlanPorts + configuration.vxlanGPEPorts + configuration.genevePorts)
        for problem in hygiene.problems {
            logger.warning("host hygiene socket not opened; the kernel may answer mirror traffic with ICMP", metadata: ["error": "\(problem)"])
        }

        // Every socket first joins its fanout group behind a drop-all filter; the real filter
        // goes in only when all have joined. Otherwise frames arriving while sockets join would
        // reach a socket outside the group, or a worker the session does not map to.
        var workers: [CaptureWorker] = []
        var groups: [UInt16?] = Array(repeating: nil, count: interfaces.count)
        do throws(SystemError) {
            for index in 0..<options.workers {
                var rings: [PacketRing] = []
                for (position, name) in interfaces.enumerated() {
                    let ring = try PacketRing(interfaceName: name, configuration: options.ring)
                    try ring.attach(filter: .dropAll)
                    _ = ring.ignoreOutgoing()
                    try ring.start()
                    groups[position] = try ring.joinFanout(group: groups[position], program: fanout)
                    if !configuration.rspanVLANs.isEmpty { try ring.enablePromiscuousMode() }
                    rings.append(ring)
                }
                let pipeline = Pipeline(configuration: pipelineConfiguration, storage: storage, interfaceNames: interfaces)
                workers.append(
                    CaptureWorker(
                        index: index, rings: rings, interfaceIndexes: rings.indices.map { UInt32($0) }, pipeline: pipeline,
                        storage: storage,
                        onSocketError: { [logger] interface, error in
                            logger.error(
                                "capture socket error: the interface went down or away; capture on it resumes if it comes back up with the same index",
                                metadata: ["interface": "\(interface)", "error": "\(error)"])
                        }))
            }
            for worker in workers { try worker.attachToRings(filter: filter) }
        } catch {
            storage.close()
            hook?.finish()
            throw .capture(error)
        }
        self.workers = workers
        if let address = configuration.metricsListen {
            do {
                statusServer = try StatusServer(
                    listenOn: address, summary: { [unowned self] in currentSummary() }, service: { [unowned self] in serviceCounters() },
                    onDescriptorShortage: { [logger] in
                        logger.error("metrics endpoint: out of file descriptors; connections wait (retried every 100 ms)")
                    })
            } catch {
                for worker in workers { worker.join() }
                storage.close()
                hook?.finish()
                throw .invalidConfiguration([.init(key: "metrics-listen", message: "cannot listen on \(address): \(error)")])
            }
        }
    }

    /// Figures for /metrics beyond the packet summary.
    public func serviceCounters() -> ServiceCounters {
        var counters = ServiceCounters()
        counters.bufferMemoryBytes = storage.bufferMemory
        counters.finishedFileBytes = storage.finishedFileBytes
        counters.filesRemovedForSpace = storage.filesRemovedForSpace
        if let hook {
            counters.postRotateSucceeded = hook.succeeded.load(ordering: .relaxed)
            counters.postRotateFailed = hook.failed.load(ordering: .relaxed)
            counters.postRotateDropped = hook.dropped.load(ordering: .relaxed)
            counters.postRotateAbandoned = hook.abandoned.load(ordering: .relaxed)
        }
        return counters
    }

    /// What the descriptor limit leaves for sessions. Reserved: what is open already, one ring
    /// per worker and interface, the hygiene sockets, the metrics listener and a connection,
    /// the post-rotate commands (a pipe pair and the child's descriptors each), a directory per
    /// writer, and a margin. A session holds one file at a time; in pcap, its raw-IP (`-ip`)
    /// series may hold a second. A session over the cap counts as
    /// `unknown_session.session_limit`; a file that still cannot be opened, as `dropped.write`.
    static func sessionCapacity(
        descriptors: DescriptorLimit.Figures, configuration: CollectorConfiguration, options: Options, interfaces: Int
    ) -> (perWorker: Int, reserved: Int, perSession: Int) {
        let reserved =
            descriptors.open + options.workers * interfaces + 8 + 2 + (configuration.postRotateCommand == nil ? 0 : 4 * configuration.postRotateConcurrency)
            + 2 * options.writerThreads + 32
        let perSession = configuration.format == .pcap ? 2 : 1
        let available = max(0, descriptors.soft - reserved)
        let perWorker = max(1, min(configuration.maximumSessions, available / perSession / max(1, options.workers)))
        return (perWorker, reserved, perSession)
    }

    /// Every problem of the capture settings, keyed by flag name (`workers`, `ring-size`).
    public static func problems(_ options: Options) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        NumericSettings.check(NumericSettings.workers, options.workers, into: &problems)
        let block = options.ring.blockSize
        if let message = NumericSettings.blockSize.problem(block) {
            problems.append(.init(key: "block-size", message: message))
        } else if block & (block - 1) != 0 {
            problems.append(.init(key: "block-size", message: "must be a power of two, got \(block) bytes"))
        } else if options.ring.blockCount < 2 {
            problems.append(.init(key: "ring-size", message: "must hold at least two blocks (\(2 * block) bytes)"))
        } else {
            NumericSettings.check(NumericSettings.ringSize, options.ring.ringSize, into: &problems)
        }
        NumericSettings.check(NumericSettings.blockTimeout, options.ring.retireTimeoutMilliseconds, into: &problems)
        NumericSettings.check(NumericSettings.queueDepth, options.queueDepth, into: &problems)
        NumericSettings.check(NumericSettings.writerThreads, options.writerThreads, into: &problems)
        NumericSettings.check(NumericSettings.statusInterval, options.statusIntervalSeconds, into: &problems)
        return problems
    }

    /// The socket filter: RSPAN VLANs by the kernel's tag metadata, RSPAN VLANs in the bytes
    /// (tags the kernel does not move, such as 0x9100), else the mirror transports.
    static func kernelFilter(_ configuration: CollectorConfiguration, user: String?) throws(BPFProgram.CompileError) -> BPFProgram {
        let mirror = try BPFProgram.compile(mirrorFilterExpression(configuration, user: user))
        guard !configuration.rspanVLANs.isEmpty else { return mirror }
        let inBand = try BPFProgram.compile(configuration.rspanVLANs.map { "vlan \($0)" }.joined(separator: " or "))
        return BPFProgram.acceptingRSPAN(configuration.rspanVLANs, before: inBand.orElse(mirror))
    }

    /// Mirror transports: GRE over IPv4/IPv6, UDP to the VXLAN, VXLAN-GPE and Geneve ports,
    /// IPv6 with extension headers before the transport (Linux puts a Destination Options header before GRE; BPF's
    /// `ip6 proto` does not walk the chain), and IP fragments (reassembly decides); each also
    /// behind up to three VLAN tags left in the bytes (the kernel moves only the outermost tag
    /// to metadata). libpcap's `vlan` moves the offsets of everything after it, hence the
    /// repeated `or (vlan and ...)`. Whatever this lets through is accounted in user space;
    /// what it stops is never seen, so it errs on the side of letting through.
    static func mirrorFilterExpression(_ configuration: CollectorConfiguration, user: String?) -> String {
        let ports = (configuration.vxlanPorts + configuration.vxlanGPEPorts + configuration.genevePorts).map(String.init)
            .joined(separator: " or ")
        let transports = "ip proto 47 or ip6 proto 47 or udp dst port (\(ports))"
            + " or (ip6 and (ip6[6] == 0 or ip6[6] == 43 or ip6[6] == 44 or ip6[6] == 51 or ip6[6] == 60))"
            + " or (ip and ip[6:2] & 0x3fff != 0)"
        let mirror = "(\(transports)) or (vlan and (\(transports))) or (vlan and (\(transports)))"
            + " or (vlan and (\(transports)))"
        guard let user, !user.isEmpty else { return mirror }
        // The user's expression first: after a `vlan` keyword libpcap reads every later
        // offset 4 bytes further in, which would misplace the user's fields.
        return "(\(user)) and (\(mirror))"
    }

    /// What is waited for between status lines.
    public enum Signal: Sendable { case stop, rotate }

    /// Starts the capture threads and runs until SIGINT or SIGTERM (or `stopWhen` answers true,
    /// checked every 100 ms); SIGHUP finishes every file. Then drains the rings and the writers,
    /// finishes every file and returns the exact summary. Call from the main thread.
    /// `reload`, when given, re-reads the configuration on SIGHUP: session rules and disk
    /// retention limits take effect without stopping capture; an invalid file is reported and
    /// the running configuration stays.
    public func run(
        stopWhen: @escaping () -> Bool = { false }, onReady: () -> Void = {},
        reload: (() throws -> CollectorConfiguration)? = nil
    ) throws(CollectorError) -> Summary {
        do throws(SystemError) {
            for worker in workers { try worker.start() }
        } catch {
            for worker in workers { worker.stopRequested.store(true, ordering: .relaxed) }
            for worker in workers { worker.join() }
            storage.close()
            throw .capture(error)
        }
        logger.info(
            "capturing",
            metadata: [
                "interfaces": "\(interfaces.joined(separator: ","))", "workers": "\(workers.count)",
                "output": "\(configuration.outputDirectory)",
                "ring": "\(options.ring.blockCount)x\(options.ring.blockSize)",
            ])
        onReady()
        report(notifier.ready(status: "capturing on \(interfaces.joined(separator: ",")) with \(workers.count) workers"))
        if let setupError = notifier.setupError { logger.warning("NOTIFY_SOCKET unusable", metadata: ["error": "\(setupError)"]) }
        var lastStatus = Clock.monotonicNanoseconds()
        var lastPing: UInt64 = 0
        var previous = Summary()
        while true {
            let received = ProcessSignals.wait(milliseconds: 100)
            if received == ProcessSignals.interrupt || received == ProcessSignals.terminate || stopWhen() { break }
            if received == ProcessSignals.hangUp {
                logger.notice("SIGHUP: finishing all files")
                report(notifier.reloading())
                for worker in workers { worker.rotateRequested.store(true, ordering: .relaxed) }
                if let reload { apply(reload) }
                report(notifier.ready())
            }
            let now = Clock.monotonicNanoseconds()
            // The watchdog is fed only while every capture thread went through its loop
            // recently: a stuck capture path makes systemd restart the service.
            if let ping = notifier.watchdogPingIntervalNanoseconds, now &- lastPing >= ping,
                now &- oldestHeartbeat < 10_000_000_000
            {
                report(notifier.watchdog())
                lastPing = now
            }
            if options.statusIntervalSeconds > 0, now - lastStatus >= UInt64(options.statusIntervalSeconds) * 1_000_000_000 {
                let current = currentSummary()
                let line = Self.statusLine(current, previous: previous, seconds: Double(now - lastStatus) / 1e9)
                logger.info("\(line)")
                report(notifier.status(line))
                previous = current
                lastStatus = now
            }
        }
        report(notifier.stopping())
        logger.info("stopping: draining rings and writers")
        for worker in workers { worker.stopRequested.store(true, ordering: .relaxed) }
        for worker in workers { worker.join() }
        storage.close()
        hook?.finish()
        statusServer?.stop()
        let parts = workers.map { $0.pipeline.summary() }
        for (index, part) in parts.enumerated() {
            logger.info(
                "capture thread done",
                metadata: ["worker": "\(index)", "sessions": "\(part.sessions.count)", "received": "\(part.packetsReceived)"])
        }
        var summary = Summary.merged(parts)
        summary.hook.abandoned = Int64(hook?.abandoned.load(ordering: .relaxed) ?? 0)
        return summary
    }

    /// Notification failures are worth one debug line, never more.
    private func report(_ error: SystemError?) {
        if let error { logger.debug("sd_notify failed", metadata: ["error": "\(error)"]) }
    }

    private func apply(_ reload: () throws -> CollectorConfiguration) {
        let reloaded: CollectorConfiguration
        do {
            reloaded = try reload()
        } catch {
            logger.error("configuration not reloaded; the running one stays", metadata: ["problems": "\(error)"])
            return
        }
        let ignored = Self.settingsNeedingRestart(running: configuration, reloaded: reloaded)
        if !ignored.isEmpty {
            logger.warning(
                "configuration reload: these settings changed but need a restart; the running values stay",
                metadata: ["keys": "\(ignored.joined(separator: ","))"])
        }
        for worker in workers {
            worker.pendingRules.withLock { $0 = (reloaded.sessionRules, reloaded.acceptUnknownSessions) }
        }
        let storageLimits = reloaded.storageConfiguration(handoff: .drop)
        storage.updateDiskLimits(maximumUsage: storageLimits.maximumDiskUsage, minimumFree: storageLimits.minimumFreeSpace)
        logger.notice(
            "configuration reloaded",
            metadata: ["sessions": "\(reloaded.sessionRules.count)", "accept_unknown_sessions": "\(reloaded.acceptUnknownSessions)"])
    }

    /// The keys whose reloaded value differs from the running one but that a reload does not
    /// apply (`NumericSetting.reloadable`, and the other settings SIGHUP leaves alone).
    static func settingsNeedingRestart(running: CollectorConfiguration, reloaded: CollectorConfiguration) -> [String] {
        var keys: [String] = []
        func compare<Value: Equatable>(_ key: String, _ value: (CollectorConfiguration) -> Value) {
            if value(running) != value(reloaded) { keys.append(key) }
        }
        compare("output") { $0.outputDirectory }
        compare("format") { $0.format }
        compare(NumericSettings.rotateSize.key) { $0.rotateSize }
        compare(NumericSettings.rotateInterval.key) { $0.rotateIntervalSeconds }
        compare(NumericSettings.keepFiles.key) { $0.keepFiles }
        compare("rspan_vlans") { $0.rspanVLANs }
        compare("vxlan_ports") { $0.vxlanPorts }
        compare("allow_exporters") { $0.allowedExporters }
        compare(NumericSettings.bufferSize.key) { $0.bufferSize }
        compare(NumericSettings.maximumBufferMemory.key) { $0.maximumBufferMemory }
        compare("post_rotate_command") { $0.postRotateCommand }
        compare(NumericSettings.postRotateConcurrency.key) { $0.postRotateConcurrency }
        compare(NumericSettings.maximumSessions.key) { $0.maximumSessions }
        compare(NumericSettings.idleTimeout.key) { $0.idleTimeoutSeconds }
        compare("drop_duplicates") { $0.dropDuplicates }
        compare("metrics_listen") { $0.metricsListen }
        return keys
    }

    /// The counters as the workers last published them (within about 100 ms).
    public func currentSummary() -> Summary {
        Summary.merged(workers.map { worker in worker.published.withLock { $0 } })
    }

    /// The oldest capture-loop heartbeat (monotonic ns): how the service watchdog knows every
    /// capture thread is alive.
    public var oldestHeartbeat: UInt64 {
        workers.map { $0.heartbeat.load(ordering: .relaxed) }.min() ?? 0
    }

    static func statusLine(_ current: Summary, previous: Summary, seconds: Double) -> String {
        let rate = seconds > 0 ? Double(current.packetsReceived - previous.packetsReceived) / seconds : 0
        return "status: received \(current.packetsReceived) (\(Int(rate)) pps) written \(current.packetsWritten)"
            + " dropped kernel \(current.dropped.kernel) queue \(current.dropped.queue) write \(current.dropped.write)"
            + " discarded \(current.discarded.total) sessions \(current.sessions.count)"
    }
}
