import CaptureSystem
import Synchronization

/// Per-session file state shared by the capture side (counters it reads) and the one writer
/// thread the session is pinned to (everything else). Only that writer touches the directory.
public final class SessionFiles: @unchecked Sendable {
    public let name: String
    let directory: String
    let writerIndex: Int
    /// Newest finished files to keep (nil: all).
    let keepFiles: Int?

    // Writer-thread state.
    var scanned = false
    var nextSequence = 1
    /// Finished files, oldest first, as (sequence, path).
    var finished: [(sequence: Int, path: String)] = []
    var inErrorEpisode = false

    /// Frames (and their captured bytes) lost to write errors: `dropped.write`.
    public let writeDroppedPackets = Atomic<Int>(0)
    public let writeDroppedBytes = Atomic<Int>(0)
    /// Files finished (renamed) in this run.
    public let filesFinished = Atomic<Int>(0)

    init(name: String, directory: String, writerIndex: Int, keepFiles: Int?) {
        self.name = name
        self.directory = directory
        self.writerIndex = writerIndex
        self.keepFiles = keepFiles
    }
}

/// One output file. Created by the capture thread at the file's first record; opened, written,
/// finished by the session's writer thread.
final class FileTarget: @unchecked Sendable {
    let session: SessionFiles
    let firstTimestampNanoseconds: UInt64
    let fileExtension: String

    // Writer-thread state.
    var descriptor: FileDescriptor?
    var partPath = ""
    var finalPath = ""
    var sequence = 0
    var bytesWritten = 0
    var recordsWritten = 0
    /// Captured bytes of the records written (what the summary's `bytes` counts).
    var dataBytesWritten = 0
    /// The file can no longer be published (removed while open, or the rename failed): its
    /// frames were moved to `dropped.write` and there is nothing left to rename.
    var unpublishable = false

    /// Set by the writer when a write failed; the capture side then starts a new file, which
    /// is how a session retries after ENOSPC or EACCES.
    let failed = Atomic<Bool>(false)

    init(session: SessionFiles, firstTimestampNanoseconds: UInt64, fileExtension: String) {
        self.session = session
        self.firstTimestampNanoseconds = firstTimestampNanoseconds
        self.fileExtension = fileExtension
    }
}
