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

    public init(command: String, concurrency: Int, logger: Logger) throws(SystemError) {
        self.command = command
        self.concurrency = max(1, concurrency)
        self.logger = logger
        thread = try OSThread(name: "span-hook") { [unowned self] in run() }
    }

    /// The hook the configuration asks for, if any.
    static func make(for configuration: CollectorConfiguration, logger: Logger) throws(SystemError) -> PostRotateHook? {
        guard let command = configuration.postRotateCommand, !command.isEmpty else { return nil }
        return try PostRotateHook(command: command, concurrency: configuration.postRotateConcurrency, logger: logger)
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

    /// Waits for the queued and running commands (bounded by `timeoutSeconds`), then stops.
    public func finish(timeoutSeconds: Double = 30) {
        lock.withLock {
            stopping = true
            lock.broadcast()
        }
        let deadline = Clock.monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while lock.withLock({ thread != nil && !finished }), Clock.monotonicNanoseconds() < deadline { usleep(10_000) }
        if lock.withLock({ !finished }) {
            logger.warning("post-rotate commands still running at shutdown; not waiting any longer")
        } else {
            thread?.join()
        }
    }

    private var finished = false

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
            let next: String? = lock.withLock {
                if running.count < concurrency, !pending.isEmpty { return pending.removeFirst() }
                if stopping && pending.isEmpty && running.isEmpty { finished = true }
                // Sleep until work arrives, or poll children every 50 ms.
                if !finished { lock.wait(nanoseconds: running.isEmpty ? 1_000_000_000 : 50_000_000) }
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
}
