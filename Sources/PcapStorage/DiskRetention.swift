import CaptureSystem
import Synchronization

/// Retention across sessions: the finished files of every session in the output directory,
/// oldest first, and the two limits on them: a total size (`--max-disk-usage`) and the free
/// space to keep on the filesystem (`--min-free-space`). Writer threads report each finished
/// file and each file per-session retention removed; the oldest finished files go until both
/// limits hold. Only names that parse as ours are ever counted or removed; `.part` files (being
/// written) never are.
final class DiskRetention: @unchecked Sendable {
    private struct Entry {
        var path: String
        var size: Int
        /// Finish order: file modification time for files found at start, then a counter.
        var order: UInt64
    }

    private let directory: String
    private var maximumUsage: Int?
    private var minimumFree: StorageConfiguration.MinimumFreeSpace?
    private let events: @Sendable (StorageEvent) -> Void
    private let lock = ConditionLock()
    private var entries: [Entry] = []
    private var head = 0
    private var totalBytes = 0
    private var nextOrder: UInt64 = 0
    /// Files removed to respect the limits.
    let removedFiles = Atomic<Int>(0)

    var isActive: Bool { lock.withLock { maximumUsage != nil || minimumFree != nil } }

    /// New limits (configuration reload); a newly enabled limit starts from a fresh scan.
    func update(maximumUsage: Int?, minimumFree: StorageConfiguration.MinimumFreeSpace?) {
        let wasActive = isActive
        lock.withLock {
            self.maximumUsage = maximumUsage
            self.minimumFree = minimumFree
        }
        if !wasActive { scanExisting() }
        enforce()
    }

    init(configuration: StorageConfiguration, events: @escaping @Sendable (StorageEvent) -> Void) {
        directory = configuration.directory
        maximumUsage = configuration.maximumDiskUsage
        minimumFree = configuration.minimumFreeSpace
        self.events = events
    }

    /// Learns the finished files earlier runs left, oldest first by modification time.
    func scanExisting() {
        guard isActive, let sessions = try? FileSystem.contents(ofDirectory: directory) else { return }
        var found: [Entry] = []
        for session in sessions {
            let sessionDirectory = directory + "/" + session
            guard FileSystem.isDirectory(sessionDirectory), let names = try? FileSystem.contents(ofDirectory: sessionDirectory) else {
                continue
            }
            for name in names {
                guard let parsed = FileNaming.sequence(ofFileNamed: name, session: session), !parsed.isPart else { continue }
                let path = sessionDirectory + "/" + name
                guard let info = FileSystem.fileInfo(path) else { continue }
                found.append(Entry(path: path, size: info.size, order: info.modifiedNanoseconds))
            }
        }
        found.sort { $0.order < $1.order }
        lock.withLock {
            entries = found
            head = 0
            totalBytes = found.reduce(0) { $0 + $1.size }
            nextOrder = (found.last?.order ?? 0) + 1
        }
    }

    /// A file was finished (renamed): count it, then enforce the limits.
    func finished(path: String, size: Int) {
        guard isActive else { return }
        lock.withLock {
            entries.append(Entry(path: path, size: size, order: nextOrder))
            nextOrder += 1
            totalBytes += size
        }
        enforce()
    }

    /// Per-session retention removed a file.
    func forget(path: String) {
        guard isActive else { return }
        lock.withLock {
            guard let index = entries[head...].firstIndex(where: { $0.path == path }) else { return }
            totalBytes -= entries[index].size
            entries.remove(at: index)
        }
    }

    /// Removes the oldest finished files until both limits hold (or none is left).
    func enforce() {
        guard isActive else { return }
        while let victim = nextVictim() {
            do throws(SystemError) {
                try FileSystem.remove(victim.path)
                removedFiles.add(1, ordering: .relaxed)
                events(.fileRemoved(path: victim.path))
            } catch where error.isNotFound {
                // Already gone (per-session retention or an operator): nothing to free.
            } catch {
                events(.maintenanceFailed(error: error))
            }
        }
    }

    private func nextVictim() -> Entry? {
        lock.withLock {
            guard head < entries.count, limitsExceeded() else { return nil }
            let victim = entries[head]
            head += 1
            totalBytes -= victim.size
            if head > 4096, head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
            return victim
        }
    }

    private func limitsExceeded() -> Bool {
        if let maximumUsage, totalBytes > maximumUsage { return true }
        guard let minimumFree, let space = try? FileSystem.space(of: directory) else { return false }
        switch minimumFree {
        case .bytes(let bytes): return space.available < bytes
        case .percent(let percent): return Double(space.available) < Double(space.total) * percent / 100
        }
    }

    /// Bytes of finished files currently counted.
    var usage: Int { lock.withLock { totalBytes } }
}
