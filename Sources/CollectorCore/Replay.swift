import CaptureSystem
import Logging
import MirrorDecoding
import PcapFormat
import PcapStorage
import Synchronization

/// Runs the pipeline over capture files, in order, as fast as the disk allows. Classic pcap is
/// read through a private mapping (no per-record copy); everything else through libpcap.
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
        for (index, input) in inputs.enumerated() {
            if stop?.isRequested == true { break }
            do throws(CollectorError) {
                try replay(input, index: index, into: pipeline, progress: &progress, logger: logger)
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
        if !failures.isEmpty { throw .inputsFailed(failures, summary) }
        return summary
    }

    private func replay(
        _ input: String, index: Int, into pipeline: Pipeline, progress: inout Progress, logger: Logger
    ) throws(CollectorError) {
        let mapped: MappedFile
        do {
            mapped = try MappedFile(path: input)
        } catch {
            throw .input(path: input, reason: error.description)
        }
        if ClassicPcapReader.recognizes(mapped.bytes) {
            var reader: ClassicPcapReader
            do {
                reader = try ClassicPcapReader(header: mapped.bytes)
            } catch {
                throw .input(path: input, reason: "unsupported classic pcap header (\(error))")
            }
            guard let linkType = LinkType(pcapLinkType: reader.linkType) else {
                throw .input(path: input, reason: "unsupported link type \(reader.linkType)")
            }
            let bytes = mapped.bytes
            var sinceRelease = 0
            var prefaultedTo = 0
            mapped.prefault(from: 0)
            prefaultedTo = 64 << 20
            while let record = reader.next(in: bytes) {
                let frame = UnsafeRawBufferPointer(rebasing: bytes[record.dataOffset..<(record.dataOffset + record.capturedLength)])
                pipeline.process(
                    frame, wireLength: record.wireLength, timestampNanoseconds: record.timestampNanoseconds,
                    linkType: linkType)
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
            if reader.endedInsideRecord {
                logger.warning("input ends inside a record; the partial record was ignored", metadata: ["file": "\(input)"])
            }
            return
        }
        let reader: LibpcapFileReader
        do {
            reader = try LibpcapFileReader(path: input)
        } catch {
            throw .input(path: input, reason: error.description)
        }
        guard let linkType = LinkType(pcapLinkType: reader.linkType) else {
            throw .input(path: input, reason: "unsupported link type \(reader.linkType)")
        }
        do {
            try reader.forEachRecord { frame, wireLength, timestamp in
                if stop?.isRequested == true { throw StopRequested() }
                pipeline.process(frame, wireLength: wireLength, timestampNanoseconds: timestamp, linkType: linkType)
            }
        } catch is StopRequested {
            return
        } catch {
            logger.warning("input could not be read to the end", metadata: ["file": "\(input)", "error": "\(error)"])
        }
    }
}

/// Ends libpcap's record loop when a stop was requested.
private struct StopRequested: Error {}

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
