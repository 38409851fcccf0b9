import CaptureSystem
import Logging
import MirrorDecoding
import PcapFormat
import PcapStorage
import Synchronization

/// Runs the pipeline over capture files, in order, as fast as the disk allows. Regular
/// uncompressed files are read through a private mapping (no per-record copy); FIFOs, standard
/// input and gzip/zstd files as streams (`CaptureInput`). Classic pcap and pcapng are parsed by
/// our own readers (PcapFormat); libpcap reads no input.
/// Writers apply back-pressure: a file never loses frames to a full queue.
public struct Replay {
    public var inputs: [String]
    public var configuration: CollectorConfiguration
    /// Print progress on stderr (only when it is a terminal).
    public var showProgress: Bool
    /// Polled between batches of records: when set, replay stops reading as if the inputs had
    /// ended, finishes every file and returns the summary of what it read.
    public var stop: StopSignal?
    /// How long the end waits for post-rotate commands before abandoning them (journaled for
    /// the next start).
    public var hookShutdownTimeoutSeconds: Double = 30

    public init(inputs: [String], configuration: CollectorConfiguration, showProgress: Bool = false) {
        self.inputs = inputs
        self.configuration = configuration
        self.showProgress = showProgress
    }

    public func run(logger: Logger = Logger(label: "span-collector.replay")) throws(CollectorError) -> Summary {
        let problems = configuration.problems()
        guard problems.isEmpty else { throw .invalidConfiguration(problems) }
        let storage: Storage
        let hook: PostRotateHook?
        do {
            hook = try PostRotateHook.make(for: configuration, logger: logger)
            // As `run` does: .part files a killed run left are recovered before any file opens.
            PartFileRecovery.recover(in: configuration.outputDirectory, logger: logger, hook: hook)
            storage = try Storage(
                configuration: configuration.storageConfiguration(handoff: .wait),
                events: StorageEventLogger(logger: logger, hook: hook).handle)
        } catch {
            throw .output(error)
        }
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["replay"])
        var failures: [CollectorError] = []
        var progress = Progress(enabled: showProgress && FileSystem.isTerminal(2), inputs: inputs)
        var inputStatistics = Summary.Input()
        for (index, input) in inputs.enumerated() {
            if stop?.isRequested == true { break }
            do throws(CollectorError) {
                try replay(input, index: index, into: pipeline, progress: &progress, statistics: &inputStatistics, logger: logger)
            } catch {
                // The other inputs still count: what they held is written and accounted.
                failures.append(error)
            }
        }
        progress.finish()
        if let signal = stop?.received {
            logger.notice("stop requested: finishing every file", metadata: ["signal": "\(signal)"])
        }
        pipeline.finishReassembly()
        storage.close()
        hook?.finish(timeoutSeconds: hookShutdownTimeoutSeconds)
        var summary = pipeline.summary()
        summary.hook.abandoned = Int64(hook?.abandoned.load(ordering: .relaxed) ?? 0)
        summary.input = inputStatistics
        if !failures.isEmpty { throw .inputsFailed(failures, summary) }
        return summary
    }

    /// Reads one input into the pipeline. Throws when the input cannot be read (to the end),
    /// or when it held corrupt bytes (skipped and counted): what could be read is processed
    /// either way.
    private func replay(
        _ path: String, index: Int, into pipeline: Pipeline, progress: inout Progress, statistics: inout Summary.Input,
        logger: Logger
    ) throws(CollectorError) {
        statistics.files += 1
        var reading = InputReading(path: path, index: index, pipeline: pipeline, stop: stop)
        do throws(CaptureInput.Failure) {
            let input = try CaptureInput(path: path)
            try reading.read(input, progress: &progress)
        } catch {
            statistics.failed += 1
            statistics.corruptBytes += Int64(reading.corruptBytes)
            statistics.truncatedBytes += Int64(reading.truncatedBytes)
            throw .input(path: path, reason: error.description)
        }
        statistics.corruptBytes += Int64(reading.corruptBytes)
        statistics.truncatedBytes += Int64(reading.truncatedBytes)
        if reading.truncatedBytes > 0 {
            logger.warning(
                "input ends inside a record; the partial record was ignored",
                metadata: ["file": "\(path)", "bytes": "\(reading.truncatedBytes)"])
        }
        if reading.corruptBytes > 0 {
            statistics.failed += 1
            throw .input(
                path: path,
                reason: "\(reading.corruptBytes) corrupt bytes skipped (input.corrupt_bytes); the records around them were read")
        }
    }
}

/// Reading one input: the capture-file reader (classic pcap or pcapng, by magic) over the
/// input's mapping or stream, each record handed to the pipeline with its own link type.
struct InputReading {
    let path: String
    let index: Int
    let pipeline: Pipeline
    /// Checked between batches of records (SIGINT/SIGTERM): reading then ends as at the end of
    /// the input.
    let stop: StopSignal?
    private(set) var corruptBytes = 0
    private(set) var truncatedBytes = 0

    init(path: String, index: Int, pipeline: Pipeline, stop: StopSignal? = nil) {
        self.path = path
        self.index = index
        self.pipeline = pipeline
        self.stop = stop
    }

    mutating func read(_ input: CaptureInput, progress: inout Progress) throws(CaptureInput.Failure) {
        // The first bytes tell the format: a mapping has them all, a stream may need reads.
        var head = input.mapped?.bytes ?? input.window
        var ended = false
        if input.mapped == nil {
            while head.count < PcapFileHeader.length, !ended {
                ended = try !input.refill(dropping: 0)
                head = input.window
            }
        }
        let compressed = input.compression == .none ? "" : " (after \(input.compression.rawValue) decompression)"
        guard head.count >= 4, let kind = CaptureFileKind(magic: head) else {
            throw CaptureInput.Failure("not a pcap or pcapng capture file\(compressed)")
        }
        switch kind {
        case .classicPcap:
            var reader: ClassicPcapReader
            do {
                reader = try ClassicPcapReader(header: head)
            } catch {
                throw CaptureInput.Failure("unsupported classic pcap header\(compressed) (\(error))")
            }
            try read(input, with: &reader, progress: &progress)
        case .pcapng:
            var reader = PcapNGReader()
            try read(input, with: &reader, progress: &progress)
        }
    }

    /// Every record of `input`, in order. Generic, so the reader is specialized (no existential
    /// on the per-record path).
    private mutating func read<Reader: CaptureRecordReader>(
        _ input: CaptureInput, with reader: inout Reader, progress: inout Progress
    ) throws(CaptureInput.Failure) {
        defer {
            corruptBytes += reader.corruptBytes
            truncatedBytes += reader.truncatedBytes
        }
        guard let mapped = input.mapped else {
            try readStream(input, with: &reader, progress: &progress)
            return
        }
        let bytes = mapped.bytes
        var sinceRelease = 0
        var prefaultedTo = 0
        mapped.prefault(from: 0)
        prefaultedTo = 64 << 20
        var recordStart = reader.offset
        // The file may shrink under the mapping. The file shrinks from its end, so one byte
        // read at `verifiedThrough` vouches for every byte before it: it is read once per 64 KiB,
        // ahead of the records, and each record checks only the fault flag. (A read of every
        // record's last byte cost 7% of replay time with IMIX frames: a cache miss per record
        // that the copy used to absorb.) A cut found ahead ends the input at the current record,
        // at most 64 KiB early; the bytes not read are counted as truncated.
        var verifiedThrough = 0
        while let record = reader.next(in: bytes, final: true) {
            let intact: Bool
            if record.dataEnd > verifiedThrough {
                let probe = min(bytes.count, record.dataEnd + (64 << 10))
                intact = mapped.isIntact(through: probe)
                verifiedThrough = probe
            } else {
                intact = mapped.isIntact(through: 0)
            }
            guard intact else {
                truncatedBytes += bytes.count - recordStart
                throw CaptureInput.Failure(
                    "the file shrank while it was read: it ends before byte \(verifiedThrough) of the \(bytes.count) mapped")
            }
            deliver(record, in: bytes)
            recordStart = reader.offset
            sinceRelease += 1
            if record.dataOffset + (16 << 20) > prefaultedTo {
                mapped.prefault(from: prefaultedTo)
                prefaultedTo += 64 << 20
            }
            if sinceRelease == 65_536 {
                if stop?.isRequested == true { return }  // SIGINT/SIGTERM: as if the input ended
                sinceRelease = 0
                mapped.release(before: record.dataOffset)
                progress.update(file: index, fraction: Double(record.dataOffset) / Double(bytes.count), packets: pipeline.received)
            }
        }
    }

    private mutating func readStream<Reader: CaptureRecordReader>(
        _ input: CaptureInput, with reader: inout Reader, progress: inout Progress
    ) throws(CaptureInput.Failure) {
        var final = false
        while true {
            let window = input.window
            while let record = reader.next(in: window, final: final) {
                deliver(record, in: window)
            }
            if final || stop?.isRequested == true { return }
            let consumed = reader.offset
            reader.discard(consumed)
            do {
                final = try !input.refill(dropping: consumed)
            } catch {
                // What the window still holds is a partial record: it is lost with the rest.
                truncatedBytes += input.window.count
                throw error
            }
            if input.fileSize > 0 {
                progress.update(file: index, fraction: Double(input.bytesRead) / Double(input.fileSize), packets: pipeline.received)
            }
        }
    }

    /// The link type of the last record, mapped once (records of one file mostly share one).
    private var lastLinkType: (number: UInt32, decoded: LinkType?) = (1, .ethernet)

    @inline(__always)
    private mutating func deliver(_ record: CaptureRecord, in bytes: UnsafeRawBufferPointer) {
        let frame = UnsafeRawBufferPointer(rebasing: bytes[record.dataOffset..<record.dataEnd])
        if record.linkType != lastLinkType.number { lastLinkType = (record.linkType, LinkType(pcapLinkType: record.linkType)) }
        guard let linkType = lastLinkType.decoded else {
            pipeline.discard(.linkType)
            return
        }
        pipeline.process(frame, wireLength: record.wireLength, timestampNanoseconds: record.timestampNanoseconds, linkType: linkType)
    }
}

/// Replay progress on a terminal: one line rewritten at most twice a second.
struct Progress {
    let enabled: Bool
    let inputs: [String]
    var lastPrint: UInt64 = 0

    mutating func update(file: Int, fraction: Double, packets: Int64) {
        guard enabled else { return }
        let now = Clock.monotonicNanoseconds()
        guard now - lastPrint > 500_000_000 else { return }
        lastPrint = now
        let percent = Int(fraction * 100)
        let line = "\rreplay: file \(file + 1)/\(inputs.count) \(percent)%  \(packets) packets"
        StandardError.write(line)
    }

    func finish() {
        if enabled && lastPrint != 0 { StandardError.write("\n") }
    }
}
