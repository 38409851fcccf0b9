import CaptureSystem
import PcapFormat
import Synchronization

/// Where a recorder reads its session's GRE sequence accounting, for the statistics block that
/// closes each pcapng file. Read only when a file starts and when it is finished.
public protocol SequenceStatisticsSource: AnyObject {
    var sequenceStatistics: SequenceStatistics { get }
}

/// The capture side of one session's files: decides rotation, frames each record into the
/// current batch buffer (the one copy of the frame) and hands full buffers to the session's
/// writer. Used by exactly one capture thread; no locks on the per-frame path.
///
/// pcapng files also get, from here: the record options of `RecordAnnotations`, a second
/// Interface Description Block (link type 101) before the first raw-IP record of a file, and
/// Interface Statistics Blocks as the last blocks of every file (docs/FORMATS.md).
public final class SessionRecorder {
    public let files: SessionFiles
    private unowned(unsafe) let storage: Storage  // Storage owns its recorders and outlives them
    private let format: CaptureFileFormat
    /// pcapng: records carry options, files end with statistics blocks.
    private let carriesMetadata: Bool
    private let header: [UInt8]
    /// pcapng: the IDB of interface 1 (LINKTYPE_RAW), written before a file's first raw-IP
    /// record. Empty for pcap (raw IP goes to a separate recorder there).
    private let rawIPInterface: [UInt8]
    /// pcapng: room kept free in the current buffer after every record for the statistics
    /// blocks of both interfaces, so finishing a file needs no fresh buffer while it has one.
    private let statisticsRoom: Int
    private let rotateSize: Int
    private let rotateInterval: UInt64
    private let writer: FileWriter

    private var buffer: BatchBuffer?
    private var target: FileTarget?
    private var fileBytes = 0
    private var fileRecords = 0
    private var intervalIndex: UInt64 = 0

    // The current file, for its statistics blocks (pcapng).
    private var fileRawIPRecords = 0
    private var fileHasRawIPInterface = false
    private var fileFirstTimestamp: UInt64 = 0
    private var fileLastTimestamp: UInt64 = 0
    /// Bytes the statistics blocks of the current file may take: kept free under --rotate-size.
    private var trailerReserve = 0
    private var sequenceAtFileStart = SequenceStatistics()
    /// Drops not yet reported in a statistics block.
    private var unreportedQueueDrops = 0
    private var reportedWriteDrops = 0

    /// The session's sequence accounting, for the statistics block comment (pcapng).
    public weak var sequenceSource: (any SequenceStatisticsSource)?
    /// Files finished without statistics blocks because no buffer was free for them (live).
    public private(set) var statisticsBlocksSkipped = 0

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

    init(
        files: SessionFiles, storage: Storage, writer: FileWriter, header: [UInt8], rawIPInterface: [UInt8] = [],
        configuration: StorageConfiguration
    ) {
        self.files = files
        self.storage = storage
        self.writer = writer
        self.header = header
        self.rawIPInterface = rawIPInterface
        format = configuration.format
        carriesMetadata = configuration.format == .pcapng
        statisticsRoom =
            carriesMetadata ? InterfaceStatisticsBlock.maximumLength + InterfaceStatisticsBlock.length(commentLength: 0) : 0
        // + pcapng padding; pcapng: the largest options, and a raw-IP interface block and the
        // statistics room that may have to go into the same buffer.
        let recordOverhead = configuration.format.recordLength(capturedLength: 0, options: configuration.format.maximumOptions) + 8
        maximumCapturedLength = min(
            Int(PcapFileHeader.snapshotLength),
            configuration.bufferSize - header.count - rawIPInterface.count - statisticsRoom - recordOverhead)
        rotateSize = configuration.rotateSize ?? .max
        rotateInterval = configuration.rotateIntervalSeconds.map { UInt64($0) * 1_000_000_000 } ?? 0
    }

    /// Appends one frame. Its bytes are `source[offset ..< offset + capturedLength]` with the
    /// `removedLength` bytes at `offset + removedOffset` left out. `annotations` become the
    /// record's options in pcapng (ignored in pcap; nil there, so the caller does not build a
    /// zeroed one per frame). Returns false when the frame was dropped for want of a buffer
    /// (counted in `queueDroppedPackets`).
    @inline(__always)
    @discardableResult
    public func append(
        timestampNanoseconds: UInt64, source: UnsafeRawBufferPointer, offset: Int, capturedLength: Int,
        removedOffset: Int = 0, removedLength: Int = 0, wireLength: Int, annotations: RecordAnnotations? = nil
    ) -> Bool {
        let capturedLength = min(capturedLength, maximumCapturedLength)
        let options = carriesMetadata ? RecordOptions(annotations ?? .none) : .none
        let recordLength = format.recordLength(capturedLength: capturedLength, options: options)
        let rawIP = carriesMetadata && annotations?.isRawIP == true
        if fileRecords > 0 {
            // The interface block and its statistics block come with the first raw-IP record.
            let growth = recordLength + (rawIP && !fileHasRawIPInterface ? rawIPInterfaceGrowth : 0)
            // Time rotation only moves forward: a frame of an earlier interval than the file's
            // (timestamps jittering across a boundary) goes into the current file.
            if fileBytes + growth + trailerReserve > rotateSize
                || (rotateInterval != 0 && timestampNanoseconds / rotateInterval > intervalIndex)
            {
                finishFile()
            }
        }
        let needed =
            recordLength + (rawIP && !fileHasRawIPInterface ? rawIPInterface.count : 0) + (hasTarget ? 0 : header.count)
            + statisticsRoom
        if bufferCapacity - bufferUsed < needed {
            // An empty buffer holds a file header, the interface block, any record and the
            // statistics room.
            guard replaceBuffer() else {
                queueDroppedPackets += 1
                unreportedQueueDrops += 1
                return false
            }
        }
        if !hasTarget { startFile(timestamp: timestampNanoseconds) }
        if bufferRecords == 0 { buffer?.firstAppendTime = storage.nowForFlush }
        if rawIP && !fileHasRawIPInterface { addRawIPInterface() }

        let destination = bufferBase! + bufferUsed
        let dataOffset = format.writeRecordPrefix(
            to: destination, interfaceID: rawIP ? 1 : 0, timestampNanoseconds: timestampNanoseconds,
            capturedLength: capturedLength, wireLength: wireLength, options: options)
        let data = destination + dataOffset
        let start = source.baseAddress! + offset
        if removedLength == 0 {
            data.copyMemory(from: start, byteCount: capturedLength)
        } else {
            let head = min(removedOffset, capturedLength)
            data.copyMemory(from: start, byteCount: head)
            data.advanced(by: head).copyMemory(from: start + head + removedLength, byteCount: capturedLength - head)
        }
        if carriesMetadata {
            format.writeRecordSuffix(to: destination, capturedLength: capturedLength, options: options, annotations: annotations ?? .none)
        }

        bufferUsed += recordLength
        bufferRecords += 1
        bufferDataBytes += capturedLength
        fileBytes += recordLength
        fileRecords += 1
        if rawIP { fileRawIPRecords += 1 }
        fileLastTimestamp = timestampNanoseconds
        appendedPackets += 1
        appendedBytes += capturedLength
        return true
    }

    /// What interface 1 adds to a pcapng file: its description block and its statistics block.
    private var rawIPInterfaceGrowth: Int { rawIPInterface.count + InterfaceStatisticsBlock.length(commentLength: 0) }

    private func addRawIPInterface() {
        rawIPInterface.withUnsafeBytes { bytes in
            (bufferBase! + bufferUsed).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        bufferUsed += rawIPInterface.count
        fileBytes += rawIPInterface.count
        fileHasRawIPInterface = true
        trailerReserve += InterfaceStatisticsBlock.length(commentLength: 0)
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
        fileRawIPRecords = 0
        fileHasRawIPInterface = false
        fileFirstTimestamp = timestamp
        fileLastTimestamp = timestamp
        if carriesMetadata {
            trailerReserve = InterfaceStatisticsBlock.maximumLength
            sequenceAtFileStart = sequenceSource?.sequenceStatistics ?? SequenceStatistics()
        }
        if rotateInterval != 0 { intervalIndex = timestamp / rotateInterval }
    }

    /// Hands the current buffer (if it holds anything) to the writer and takes a fresh one.
    /// Also where a write failure reported by the writer is noticed: the file is finished and
    /// the next frame starts a new one, which is how a session retries after ENOSPC or EACCES.
    private func replaceBuffer() -> Bool {
        if let target, target.failed.load(ordering: .relaxed) { finishFile() }
        flushBuffer()
        guard let fresh = storage.acquireBuffer() else { return false }
        install(fresh)
        return true
    }

    private func install(_ fresh: BatchBuffer) {
        fresh.target = target
        buffer = fresh
        bufferBase = fresh.base
        bufferCapacity = fresh.capacity
        bufferUsed = 0
        bufferRecords = 0
        bufferDataBytes = 0
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

    /// Finishes the current file: the statistics blocks go in (pcapng), everything buffered is
    /// written, then it is renamed.
    public func finishFile() {
        guard let current = target else { return }
        if carriesMetadata, fileRecords > 0, !current.failed.load(ordering: .relaxed) { appendStatistics(for: current) }
        flushBuffer()
        writer.enqueue(.finish(current))
        target = nil
        hasTarget = false
        fileBytes = 0
        fileRecords = 0
        fileRawIPRecords = 0
        fileHasRawIPInterface = false
        trailerReserve = 0
    }

    /// The Interface Statistics Blocks that end a pcapng file: one for interface 0 with the
    /// file's drops and GRE sequence accounting, one for interface 1 when the file has it.
    /// Drops are those not reported by an earlier file: frames of this session that found no
    /// buffer (`dropped.queue`) and frames the writer reported lost to write errors
    /// (`dropped.write`, known here only once the writer has failed a buffer).
    private func appendStatistics(for current: FileTarget) {
        let writeDrops = files.writeDroppedPackets.load(ordering: .relaxed)
        let dropped = UInt64(unreportedQueueDrops + max(0, writeDrops - reportedWriteDrops))
        let ethernetRecords = UInt64(fileRecords - fileRawIPRecords)
        let ethernet = InterfaceStatisticsBlock(
            interfaceID: 0, startNanoseconds: fileFirstTimestamp, endNanoseconds: fileLastTimestamp,
            received: ethernetRecords + dropped, dropped: dropped, delivered: ethernetRecords,
            sequence: sequenceSource.map { $0.sequenceStatistics - sequenceAtFileStart })
        let rawIP = fileHasRawIPInterface
            ? InterfaceStatisticsBlock(
                interfaceID: 1, startNanoseconds: fileFirstTimestamp, endNanoseconds: fileLastTimestamp,
                received: UInt64(fileRawIPRecords), dropped: 0, delivered: UInt64(fileRawIPRecords))
            : nil
        let length = ethernet.length + (rawIP?.length ?? 0)
        // The current buffer has room (`statisticsRoom`) unless it was handed over since the
        // last record (flush interval, a full pool). A fresh one then, past the queue depth if
        // need be: these few bytes complete a file and may come at shutdown.
        if buffer == nil || bufferCapacity - bufferUsed < length {
            flushBuffer()
            guard let fresh = storage.acquireBuffer() ?? storage.pool.tryAcquire() else {
                statisticsBlocksSkipped += 1  // the drops stay unreported for the next file
                return
            }
            install(fresh)  // for `current`, still the target
        }
        bufferUsed += ethernet.write(to: bufferBase! + bufferUsed)
        if let rawIP { bufferUsed += rawIP.write(to: bufferBase! + bufferUsed) }
        unreportedQueueDrops = 0
        reportedWriteDrops = writeDrops
    }

    // Idle detection without a clock read per frame: housekeeping compares counts.
    private var countAtLastLook = 0
    private var lastActivity: UInt64 = 0

    /// Finishes the open file of a session that got no frame for `idleFor` ns, so quiet
    /// sessions do not hold descriptors and `.part` files forever.
    func finishIfIdle(monotonicNow now: UInt64, idleFor idle: UInt64) {
        if appendedPackets != countAtLastLook || lastActivity == 0 {
            countAtLastLook = appendedPackets
            lastActivity = now
            return
        }
        if hasOpenFile, now &- lastActivity >= idle { finishFile() }
    }

    /// Finishes the file the writer failed or lost (live capture on a quiet session), so the
    /// next frame starts the retry in a new file without waiting for the buffer to fill.
    func finishIfFailed() {
        if let target, target.failed.load(ordering: .relaxed) { finishFile() }
    }

    /// Finishes the file when its wall-clock interval is over (live capture on a quiet session).
    func rotateIfIntervalEnded(now: UInt64) {
        guard rotateInterval != 0, target != nil, fileRecords > 0, now / rotateInterval > intervalIndex else { return }
        finishFile()
    }

    /// Whether a file is open (has records not yet finished).
    public var hasOpenFile: Bool { target != nil }
}
