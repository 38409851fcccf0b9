import CaptureSystem
import PcapFormat
import Synchronization

/// The capture side of one session's files: decides rotation, frames each record into the
/// current batch buffer (the one copy of the frame) and hands full buffers to the session's
/// writer. Used by exactly one capture thread; no locks on the per-frame path.
public final class SessionRecorder {
    public let files: SessionFiles
    private unowned(unsafe) let storage: Storage  // Storage owns its recorders and outlives them
    private let format: CaptureFileFormat
    private let header: [UInt8]
    private let rotateSize: Int
    private let rotateInterval: UInt64
    private let writer: FileWriter

    private var buffer: BatchBuffer?
    private var target: FileTarget?
    private var fileBytes = 0
    private var fileRecords = 0
    private var intervalIndex: UInt64 = 0

    // The current buffer's fill state, kept here so the per-frame path touches no object
    // (each touch through an optional class reference costs a retain/release pair, which
    // measured as 11% of replay time); written back to the buffer when it is handed over.
    private var bufferBase: UnsafeMutableRawPointer?
    private var bufferUsed = 0
    private var bufferCapacity = 0
    private var bufferRecords = 0
    private var bufferDataBytes = 0
    private var hasTarget = false

    /// The most data bytes one record may carry: an empty buffer must hold the file header and
    /// the record, and no record exceeds the snapshot length the file header announces. Longer
    /// frames are cut to this (and counted as truncated by the caller).
    public let maximumCapturedLength: Int

    /// Frames accepted into a buffer (written unless a write error drops them later).
    public private(set) var appendedPackets = 0
    public private(set) var appendedBytes = 0
    /// Frames dropped because no buffer was free (`dropped.queue`, live only).
    public private(set) var queueDroppedPackets = 0

    init(files: SessionFiles, storage: Storage, writer: FileWriter, header: [UInt8], configuration: StorageConfiguration) {
        self.files = files
        self.storage = storage
        self.writer = writer
        self.header = header
        format = configuration.format
        let recordOverhead = configuration.format.recordLength(capturedLength: 0) + 8  // + pcapng padding
        maximumCapturedLength = min(Int(PcapFileHeader.snapshotLength), configuration.bufferSize - header.count - recordOverhead)
        rotateSize = configuration.rotateSize ?? .max
        rotateInterval = configuration.rotateIntervalSeconds.map { UInt64($0) * 1_000_000_000 } ?? 0
    }

    /// Appends one frame. Its bytes are `source[offset ..< offset + capturedLength]` with the
    /// `removedLength` bytes at `offset + removedOffset` left out. Returns false when the frame
    /// was dropped for want of a buffer (counted in `queueDroppedPackets`).
    @inline(__always)
    @discardableResult
    public func append(
        timestampNanoseconds: UInt64, source: UnsafeRawBufferPointer, offset: Int, capturedLength: Int,
        removedOffset: Int = 0, removedLength: Int = 0, wireLength: Int
    ) -> Bool {
        let capturedLength = min(capturedLength, maximumCapturedLength)
        let recordLength = format.recordLength(capturedLength: capturedLength)
        if fileRecords > 0,
            fileBytes + recordLength > rotateSize || (rotateInterval != 0 && timestampNanoseconds / rotateInterval != intervalIndex)
        {
            finishFile()
        }
        let needed = recordLength + (hasTarget ? 0 : header.count)
        if bufferCapacity - bufferUsed < needed {
            guard replaceBuffer() else {
                queueDroppedPackets += 1
                return false
            }
        }
        if !hasTarget { startFile(timestamp: timestampNanoseconds) }
        if bufferRecords == 0 { buffer?.firstAppendTime = storage.nowForFlush }

        let destination = bufferBase! + bufferUsed
        let dataOffset = format.writeRecordPrefix(
            to: destination, timestampNanoseconds: timestampNanoseconds, capturedLength: capturedLength,
            wireLength: wireLength)
        let data = destination + dataOffset
        let start = source.baseAddress! + offset
        if removedLength == 0 {
            data.copyMemory(from: start, byteCount: capturedLength)
        } else {
            let head = min(removedOffset, capturedLength)
            data.copyMemory(from: start, byteCount: head)
            data.advanced(by: head).copyMemory(from: start + head + removedLength, byteCount: capturedLength - head)
        }
        format.writeRecordSuffix(to: destination, capturedLength: capturedLength)

        bufferUsed += recordLength
        bufferRecords += 1
        bufferDataBytes += capturedLength
        fileBytes += recordLength
        fileRecords += 1
        appendedPackets += 1
        appendedBytes += capturedLength
        return true
    }

    private func startFile(timestamp: UInt64) {
        let target = FileTarget(session: files, firstTimestampNanoseconds: timestamp, fileExtension: format.fileExtension)
        self.target = target
        hasTarget = true
        buffer!.target = target
        header.withUnsafeBytes { bytes in
            (bufferBase! + bufferUsed).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        bufferUsed += header.count
        fileBytes = header.count
        fileRecords = 0
        if rotateInterval != 0 { intervalIndex = timestamp / rotateInterval }
    }

    /// Hands the current buffer (if it holds anything) to the writer and takes a fresh one.
    /// Also where a write failure reported by the writer is noticed: the file is finished and
    /// the next frame starts a new one, which is how a session retries after ENOSPC or EACCES.
    private func replaceBuffer() -> Bool {
        if let target, target.failed.load(ordering: .relaxed) { finishFile() }
        flushBuffer()
        guard let fresh = storage.acquireBuffer() else { return false }
        fresh.target = target
        buffer = fresh
        bufferBase = fresh.base
        bufferCapacity = fresh.capacity
        bufferUsed = 0
        bufferRecords = 0
        bufferDataBytes = 0
        return true
    }

    /// Hands the partly filled buffer to the writer now (the file stays open).
    func flushBuffer() {
        guard let current = buffer else { return }
        current.used = bufferUsed
        current.records = bufferRecords
        current.dataBytes = bufferDataBytes
        buffer = nil
        bufferBase = nil
        bufferCapacity = 0
        bufferUsed = 0
        bufferRecords = 0
        bufferDataBytes = 0
        if current.isEmpty {
            storage.pool.giveBack(current)
        } else {
            storage.pool.markInFlight()
            writer.enqueue(.data(current))
        }
    }

    /// Whether the buffer holds records older than `flushBefore` (monotonic ns).
    func hasStaleBuffer(olderThan flushBefore: UInt64) -> Bool {
        guard let buffer, bufferRecords > 0 else { return false }
        return buffer.firstAppendTime < flushBefore
    }

    /// Finishes the current file: everything buffered is written, then it is renamed.
    public func finishFile() {
        guard let current = target else { return }
        flushBuffer()
        writer.enqueue(.finish(current))
        target = nil
        hasTarget = false
        fileBytes = 0
        fileRecords = 0
    }

    /// Finishes the file when its wall-clock interval is over (live capture on a quiet session).
    func rotateIfIntervalEnded(now: UInt64) {
        guard rotateInterval != 0, target != nil, fileRecords > 0, now / rotateInterval != intervalIndex else { return }
        finishFile()
    }

    /// Whether a file is open (has records not yet finished).
    public var hasOpenFile: Bool { target != nil }
}
