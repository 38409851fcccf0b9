import CaptureSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What happened on the disk side that an operator should hear about. Storage takes no logger;
/// CollectorCore logs these.
public enum StorageEvent: Sendable {
    /// A session could not write: its frames count as `dropped.write` until a new file works.
    /// Reported once per episode.
    case writeFailed(session: String, error: SystemError)
    /// The session writes again after a failure episode.
    case writeRecovered(session: String)
    /// A file was finished and renamed to `path`.
    case fileFinished(session: String, path: String, records: Int, bytes: Int)
    /// Retention removed an old file.
    case fileRemoved(path: String)
    /// A finish, rename or retention step failed.
    case maintenanceFailed(error: SystemError)
    /// A file will never be published: it was removed while open (its directory deleted, say:
    /// `error` is ENOENT from `fstat`) or its rename failed. Its `records` moved from written
    /// to `dropped.write`; the session's next file recreates the directory. Reported once per
    /// episode, like `writeFailed`.
    case fileLost(session: String, path: String, records: Int, error: SystemError)
}

/// Commands from the capture side to a writer thread, executed in order.
enum WriterCommand {
    case data(BatchBuffer)
    case finish(FileTarget)
    /// Holds the writer until the gate opens (fault injection for tests: a stalled disk).
    case pause(WriterGate)
    /// Opens the gate once everything queued before it is done (a barrier for tests).
    case signal(WriterGate)
    case stop
}

/// A closed gate a paused writer waits at; `open()` lets it go on.
final class WriterGate: @unchecked Sendable {
    private let lock = ConditionLock()
    private var isOpen = false

    func wait() { lock.withLock { while !isOpen { lock.wait() } } }

    func open() {
        lock.withLock {
            isOpen = true
            lock.broadcast()
        }
    }
}

/// A writer thread with its FIFO of commands. The FIFO itself is unbounded; what bounds memory
/// is the buffer pool, since every data command carries one pool buffer.
final class FileWriter: @unchecked Sendable {
    private let lock = ConditionLock()
    private var commands: [WriterCommand] = []
    private var head = 0
    private let pool: BufferPool
    private let configuration: StorageConfiguration
    private let events: @Sendable (StorageEvent) -> Void
    private let retention: DiskRetention
    private var thread: OSThread?

    init(
        index: Int, pool: BufferPool, configuration: StorageConfiguration, retention: DiskRetention,
        events: @escaping @Sendable (StorageEvent) -> Void
    ) throws(SystemError) {
        self.pool = pool
        self.configuration = configuration
        self.retention = retention
        self.events = events
        commands.reserveCapacity(2048)
        thread = try OSThread(name: "span-writer-\(index)", background: true) { [unowned self] in self.run() }
    }

    func enqueue(_ command: WriterCommand) {
        lock.withLock {
            commands.append(command)
            lock.broadcast()
        }
    }

    /// Stops after everything queued so far is done and waits for the thread.
    func stopAndJoin() {
        enqueue(.stop)
        thread?.join()
        thread = nil
    }

    private func next() -> WriterCommand {
        lock.withLock {
            while head == commands.count { lock.wait() }
            let command = commands[head]
            head += 1
            if head > 1024, head * 2 > commands.count {
                commands.removeFirst(head)
                head = 0
            }
            return command
        }
    }

    private func run() {
        while true {
            switch next() {
            case .data(let buffer):
                write(buffer)
                pool.release(buffer)
            case .finish(let target):
                finish(target)
            case .pause(let gate):
                gate.wait()
            case .signal(let gate):
                gate.open()
            case .stop:
                return
            }
        }
    }

    // MARK: Writing

    private func write(_ buffer: BatchBuffer) {
        guard let target = buffer.target else { return }
        let session = target.session
        if target.failed.load(ordering: .relaxed) {
            drop(buffer, session: session)
            return
        }
        do throws(SystemError) {
            if target.descriptor == nil { try open(target) }
            try FileSystem.writeAll(target.descriptor!, buffer.contents, path: target.partPath)
            target.bytesWritten += buffer.used
            target.recordsWritten += buffer.records
            target.dataBytesWritten += buffer.dataBytes
            // Written into a file nobody will ever see (its directory was deleted): not written.
            if isRemoved(target) {
                lose(target, error: SystemError(call: "fstat", subject: target.partPath, errno: ENOENT))
                return
            }
            if session.inErrorEpisode {
                session.inErrorEpisode = false
                events(.writeRecovered(session: session.name))
            }
        } catch {
            // Keep the file valid: cut it back to the last whole buffer.
            if let descriptor = target.descriptor {
                do throws(SystemError) {
                    try FileSystem.truncate(descriptor, to: target.bytesWritten, path: target.partPath)
                } catch {
                    events(.maintenanceFailed(error: error))
                }
            }
            target.failed.store(true, ordering: .relaxed)
            drop(buffer, session: session)
            // A full disk: make room now so the next file (the retry) can work.
            if error.isNoSpace { retention.enforce() }
            if !session.inErrorEpisode {
                session.inErrorEpisode = true
                events(.writeFailed(session: session.name, error: error))
            }
        }
    }

    /// Whether the open file has lost its last name (link count 0): checked after every
    /// write and before the rename, one `fstat` per buffer. (`fstat` on an open descriptor
    /// does not fail; if it did, the rename would still tell.)
    private func isRemoved(_ target: FileTarget) -> Bool {
        guard let descriptor = target.descriptor,
            let status = try? FileSystem.status(of: descriptor, path: target.partPath)
        else { return false }
        return status.linkCount == 0
    }

    /// The file will never be published: what it holds moves from written to `dropped.write`,
    /// later buffers of it are dropped, and the capture side starts a new file (the retry, in
    /// a recreated directory: see `open`).
    private func lose(_ target: FileTarget, error: SystemError) {
        let session = target.session
        session.writeDroppedPackets.add(target.recordsWritten, ordering: .relaxed)
        session.writeDroppedBytes.add(target.dataBytesWritten, ordering: .relaxed)
        let records = target.recordsWritten
        target.recordsWritten = 0
        target.dataBytesWritten = 0
        target.unpublishable = true
        target.failed.store(true, ordering: .relaxed)
        if !session.inErrorEpisode {
            session.inErrorEpisode = true
            events(.fileLost(session: session.name, path: target.finalPath, records: records, error: error))
        }
    }

    private func drop(_ buffer: BatchBuffer, session: SessionFiles) {
        session.writeDroppedPackets.add(buffer.records, ordering: .relaxed)
        session.writeDroppedBytes.add(buffer.dataBytes, ordering: .relaxed)
    }

    private func open(_ target: FileTarget) throws(SystemError) {
        let session = target.session
        // Once per session, and again after a failure (the directory may have gone).
        if !session.scanned || session.inErrorEpisode {
            try FileSystem.createDirectory(session.directory, mode: configuration.directoryMode)
            try scan(session)
        }
        let name = FileNaming.fileName(
            session: session.name, firstTimestampNanoseconds: target.firstTimestampNanoseconds,
            sequence: session.nextSequence, fileExtension: target.fileExtension)
        target.sequence = session.nextSequence
        session.nextSequence += 1
        target.finalPath = session.directory + "/" + name
        target.partPath = target.finalPath + FileNaming.partSuffix
        do {
            target.descriptor = try FileSystem.createForWriting(target.partPath, mode: configuration.fileMode)
        } catch where error.isNotFound {
            // The directory went away between two files (deleted by hand): make it again.
            try FileSystem.createDirectory(session.directory, mode: configuration.directoryMode)
            target.descriptor = try FileSystem.createForWriting(target.partPath, mode: configuration.fileMode)
        }
    }

    /// Learns the files a previous run left in the session directory, so numbering continues
    /// and retention counts them.
    private func scan(_ session: SessionFiles) throws(SystemError) {
        var highest = session.nextSequence - 1
        session.finished.removeAll()
        for name in try FileSystem.contents(ofDirectory: session.directory) {
            guard let parsed = FileNaming.sequence(ofFileNamed: name, session: session.name) else { continue }
            highest = max(highest, parsed.sequence)
            if !parsed.isPart { session.finished.append((parsed.sequence, session.directory + "/" + name)) }
        }
        session.finished.sort { $0.sequence < $1.sequence }
        session.nextSequence = highest + 1
        session.scanned = true
    }

    private func finish(_ target: FileTarget) {
        guard let descriptor = target.descriptor else { return }
        let session = target.session
        if !target.unpublishable, isRemoved(target) {
            lose(target, error: SystemError(call: "fstat", subject: target.partPath, errno: ENOENT))
        }
        target.descriptor = nil
        do throws(SystemError) {
            try descriptor.close()
            if target.unpublishable { return }
            guard target.recordsWritten > 0 else {
                try FileSystem.remove(target.partPath)  // no empty files
                return
            }
        } catch {
            events(.maintenanceFailed(error: error))
            return
        }
        do throws(SystemError) {
            try FileSystem.rename(target.partPath, to: target.finalPath)
        } catch {
            // Not published, so not written. The `.part` (if it is still there) is left for the
            // next start's recovery or the operator.
            lose(target, error: error)
            return
        }
        session.filesFinished.add(1, ordering: .relaxed)
        session.finished.append((target.sequence, target.finalPath))
        events(.fileFinished(session: session.name, path: target.finalPath, records: target.recordsWritten, bytes: target.bytesWritten))
        applyRetention(session)
        retention.finished(path: target.finalPath, size: target.bytesWritten)
    }

    private func applyRetention(_ session: SessionFiles) {
        guard let keep = session.keepFiles, keep >= 0 else { return }
        session.finished.sort { $0.sequence < $1.sequence }
        while session.finished.count > keep {
            let oldest = session.finished.removeFirst()
            retention.forget(path: oldest.path)
            do throws(SystemError) {
                try FileSystem.remove(oldest.path)
                events(.fileRemoved(path: oldest.path))
            } catch where error.isNotFound {
                // Disk retention (or an operator) removed it already.
            } catch {
                events(.maintenanceFailed(error: error))
            }
        }
    }
}
