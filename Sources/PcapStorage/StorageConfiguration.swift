public import PcapFormat

/// How and where the per-session files are written.
public struct StorageConfiguration: Sendable {
    /// What happens when a session's buffer is full and no free buffer is left.
    public enum Handoff: Sendable {
        /// Wait for the writer (replay: a file cannot lose packets to back-pressure).
        case wait
        /// Drop the frame and count it as `dropped.queue` (live: capture never waits on disk).
        case drop
    }

    /// The output directory; one sub-directory per session.
    public var directory: String
    public var format: CaptureFileFormat = .pcap
    /// Rotate before a record would take a file past this many bytes.
    public var rotateSize: Int?
    /// Rotate when a record falls into a new wall-clock interval of this many seconds.
    public var rotateIntervalSeconds: Int?
    /// Keep only the newest N finished files per session.
    public var keepFiles: Int?
    /// A session whose file got no frame for this long finishes it (live capture housekeeping).
    public var idleTimeoutNanoseconds: UInt64?
    /// Finished files of all sessions together may take at most this many bytes.
    public var maximumDiskUsage: Int?
    /// Free space to keep on the output filesystem.
    public var minimumFreeSpace: MinimumFreeSpace?

    public enum MinimumFreeSpace: Sendable, Equatable {
        case bytes(Int)
        case percent(Double)
    }

    /// Size of one batch buffer; every session fills one at a time.
    public var bufferSize: Int = 1 << 20
    /// Upper bound of all batch buffers together.
    public var maximumBufferMemory: Int = 256 << 20
    /// Buffers handed to writers and not yet written: the depth of the writer queue. Beyond it
    /// the capture side waits (replay) or drops (live). Small enough that buffers are reused
    /// while still warm in the cache; deep enough to ride out a slow disk for a moment.
    public var maximumBuffersInFlight: Int = 16
    /// Writer threads; sessions are spread over them and stay on one.
    public var writerThreads: Int = 1
    public var handoff: Handoff = .wait
    /// A partly filled buffer older than this is written anyway (live capture on quiet links).
    public var flushIntervalNanoseconds: UInt64 = 1_000_000_000
    public var fileMode: UInt32 = 0o640
    public var directoryMode: UInt32 = 0o750

    public init(directory: String) {
        self.directory = directory
    }

    /// Per-session rotation and retention that replace the defaults above (named sessions).
    public struct SessionOverrides: Sendable, Equatable {
        public var rotateSize: Int?
        public var rotateIntervalSeconds: Int?
        public var keepFiles: Int?

        public init(rotateSize: Int? = nil, rotateIntervalSeconds: Int? = nil, keepFiles: Int? = nil) {
            self.rotateSize = rotateSize
            self.rotateIntervalSeconds = rotateIntervalSeconds
            self.keepFiles = keepFiles
        }
    }

    /// The configuration one session uses.
    func applying(_ overrides: SessionOverrides) -> StorageConfiguration {
        var configuration = self
        if let rotateSize = overrides.rotateSize { configuration.rotateSize = rotateSize }
        if let interval = overrides.rotateIntervalSeconds { configuration.rotateIntervalSeconds = interval }
        if let keepFiles = overrides.keepFiles { configuration.keepFiles = keepFiles }
        return configuration
    }

    /// The smallest buffer accepted: any frame (≤ 64 KiB after decapsulation) plus a file
    /// header must fit into an empty buffer.
    public static let minimumBufferSize = 128 << 10

    var bufferCount: Int { max(4, maximumBufferMemory / bufferSize) }
}
