import CaptureSystem
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs the post-rotate command for every finished file (`sh -c 'COMMAND "$1"' sh PATH`), at
/// most `concurrency` at a time, on a thread of its own: writers only enqueue a path, capture
/// never waits. Paths wait in a bounded queue; when it is full a path is dropped and counted
/// (the file itself stays on disk). Failures (spawn errors, non-zero exits, signals) are logged
/// and counted.
///
/// At shutdown `finish` waits a bounded time. What is then still queued or running is
/// abandoned: the running commands' process groups are killed, the paths are counted
/// (`abandoned`), logged, and written to a journal in the output directory, from which the
/// next start queues again those that still exist.
public final class PostRotateHook: @unchecked Sendable {
    public let command: String
    public let concurrency: Int
    private let logger: Logger
    private let lock = ConditionLock()
    private var pending: [String] = []
    private var stopping = false
    private var thread: OSThread?
    static let queueLimit = 10_000

    public let succeeded = Atomic<Int>(0)
    public let failed = Atomic<Int>(0)
    public let dropped = Atomic<Int>(0)
    /// Files abandoned at shutdown (`hook.abandoned`).
    public let abandoned = Atomic<Int>(0)
    /// The journal of abandoned files, one path per line, in the output directory.
    public static let journalName = ".span-collector-hook-queue"
    private let journalPath: String?

    /// `journalDirectory`: where abandoned paths are kept for the next start (the output
    /// directory); the paths a previous run left there are queued first.
    public init(
        command: String, concurrency: Int, logger: Logger = Logger(label: "span-collector.hook"), journalDirectory: String? = nil
    ) throws(SystemError) {
        self.command = command
        self.concurrency = max(1, concurrency)
        self.logger = logger
        journalPath = journalDirectory.map { $0 + "/" + Self.journalName }
        pending = takeJournal()
        thread = try OSThread(name: "span-hook") { [unowned self] in run() }
    }

    /// The hook the configuration asks for, if any.
    static func make(for configuration: CollectorConfiguration, logger: Logger) throws(SystemError) -> PostRotateHook? {
        guard let command = configuration.postRotateCommand, !command.isEmpty else { return nil }
        return try PostRotateHook(
            command: command, concurrency: configuration.postRotateConcurrency, logger: logger,
            journalDirectory: configuration.outputDirectory)
    }

    /// Queues a finished file.
    public func enqueue(path: String) {
        let accepted = lock.withLock {
            guard pending.count < Self.queueLimit else { return false }
            pending.append(path)
            lock.broadcast()
            return true
        }
        if !accepted {
            dropped.add(1, ordering: .relaxed)
            logger.warning("post-rotate queue full; command not run for this file", metadata: ["path": "\(path)"])
        }
    }

    /// Waits for the queued and running commands (bounded by `timeoutSeconds`), then abandons
    /// what is left (see the type's comment) and stops.
    public func finish(timeoutSeconds: Double = 30) {
        lock.withLock {
            stopping = true
            lock.broadcast()
        }
        let deadline = Clock.monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while lock.withLock({ !finished }), Clock.monotonicNanoseconds() < deadline { usleep(10_000) }
        lock.withLock {
            abandoning = true
            lock.broadcast()
        }
        thread?.join()  // bounded: the thread kills and reaps what runs, then returns
        thread = nil
    }

    private var finished = false
    /// Set when the shutdown wait is over: the thread abandons what is left and returns.
    private var abandoning = false

    private func run() {
        var running: [(pid: pid_t, path: String)] = []
        while true {
            // Reap what has ended.
            running.removeAll { child in
                guard let outcome = ChildProcess.reapFinished(child.pid) else { return false }
                if outcome.succeeded {
                    succeeded.add(1, ordering: .relaxed)
                } else {
                    failed.add(1, ordering: .relaxed)
                    logger.error("post-rotate command failed", metadata: ["path": "\(child.path)", "outcome": "\(outcome)"])
                }
                return true
            }
            if lock.withLock({ abandoning }) {
                abandon(running)
                return
            }
            let next: String? = lock.withLock {
                if abandoning { return nil }
                if running.count < concurrency, !pending.isEmpty { return pending.removeFirst() }
                if stopping && pending.isEmpty && running.isEmpty { finished = true }
                // Sleep until work arrives, or poll children every 50 ms.
                if !finished && !abandoning { lock.wait(nanoseconds: running.isEmpty ? 1_000_000_000 : 50_000_000) }
                return nil
            }
            if lock.withLock({ finished }) { return }
            guard let path = next else { continue }
            do throws(SystemError) {
                running.append((try ChildProcess.spawnShell(command: command, argument: path), path))
            } catch {
                failed.add(1, ordering: .relaxed)
                logger.error("post-rotate command could not start", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
    }

    /// The end of the shutdown wait: kills the running commands' process groups, and counts,
    /// logs and journals their paths and the queued ones.
    private func abandon(_ running: [(pid: pid_t, path: String)]) {
        for child in running { ChildProcess.killGroup(of: child.pid) }
        let left = running.map(\.path) + lock.withLock {
            let queued = pending
            pending.removeAll()
            finished = true
            return queued
        }
        guard !left.isEmpty else { return }
        abandoned.add(left.count, ordering: .relaxed)
        logger.warning(
            "post-rotate commands not run or not finished at shutdown; running ones were killed, all run again at the next start",
            metadata: ["count": "\(left.count)", "files": "\(left.joined(separator: " "))"])
        writeJournal(left)
    }

    /// Writes the journal atomically (a temporary file renamed over it).
    private func writeJournal(_ paths: [String]) {
        guard let journalPath else { return }
        let temporary = journalPath + ".tmp"
        let bytes = Array((paths.joined(separator: "\n") + "\n").utf8)
        do throws(SystemError) {
            let descriptor = try FileSystem.createForWriting(temporary, mode: 0o600)
            var failure: SystemError?
            bytes.withUnsafeBytes { raw in
                do throws(SystemError) { try FileSystem.writeAll(descriptor, raw, path: temporary) } catch { failure = error }
            }
            if let failure { throw failure }
            try descriptor.close()
            try FileSystem.rename(temporary, to: journalPath)
        } catch {
            logger.error("post-rotate journal not written; those files will not be run again", metadata: ["error": "\(error)"])
        }
    }

    /// The paths a previous run journaled that still exist as regular files; the journal is
    /// removed once read (what is abandoned again is journaled again at shutdown).
    private func takeJournal() -> [String] {
        guard let journalPath, FileSystem.linkStatus(journalPath) != nil else { return [] }
        let lines: [String]
        do throws(SystemError) {
            let mapped = try MappedFile(path: journalPath)
            lines = String(decoding: mapped.bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            try FileSystem.remove(journalPath)
        } catch {
            logger.error("post-rotate journal not read", metadata: ["path": "\(journalPath)", "error": "\(error)"])
            return []
        }
        let paths = lines.filter { FileSystem.linkStatus($0)?.isRegularFile == true }
        if !paths.isEmpty {
            logger.notice("post-rotate commands queued again from the last shutdown", metadata: ["count": "\(paths.count)"])
        }
        return paths
    }
}
