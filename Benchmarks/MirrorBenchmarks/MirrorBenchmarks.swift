// Benchmarks for the per-packet path of span-collector (see ../README.md for how to run them).
//
//   decode.<encapsulation>         MirrorDecoder.decode on one prepared frame, in a loop.
//   write.<format>.<encapsulation> Pipeline.process in its steady state: decode, session lookup,
//                                  GRE sequence accounting, copy into the batch buffer, buffer
//                                  handoff to the writer thread, write(2) into /dev/shm.
//
// Every frame is the first record of one of the scapy fixtures in Tests/Fixtures, so what is
// measured is what the end-to-end tests check. Both kinds report per frame (scaling factor
// .kilo: one sample is 1000 frames); mallocCountTotal must stay 0 for decode and ~0 for write.

import Benchmark
import CollectorCore
import Foundation
import MirrorDecoding
import PcapFormat
// PcapStorage is not a product of the root package; it is built as a dependency of
// CollectorCore and importable from here. Storage/StorageConfiguration are what the Pipeline
// needs (as in CollectorCore/Replay.swift).
import PcapStorage

// MARK: - Fixtures

/// One encapsulation to measure: the fixture whose first record is the frame, and the decoder
/// options the fixture needs.
struct Case: Sendable {
    var name: String
    var file: String
    var encapsulation: Encapsulation
    var rspanVLANs: [UInt16] = []
}

let cases: [Case] = [
    Case(name: "erspan1", file: "v01_erspan1.pcap", encapsulation: .erspan1),
    Case(name: "erspan2", file: "v02_erspan2.pcap", encapsulation: .erspan2),
    Case(name: "erspan3", file: "v04_erspan3.pcap", encapsulation: .erspan3),
    Case(name: "erspan3-platform", file: "v06_erspan3_platform.pcap", encapsulation: .erspan3),
    Case(name: "gre-teb", file: "v18_teb_key_seq.pcap", encapsulation: .gre),
    Case(name: "vxlan", file: "v20_vxlan.pcap", encapsulation: .vxlan),
    Case(name: "rspan", file: "v23_rspan.pcap", encapsulation: .rspan, rspanVLANs: [999]),
    Case(name: "erspan2-ipv6", file: "v08_ipv6_erspan2.pcap", encapsulation: .erspan2),
]

/// Tests/Fixtures, found from this file's location (Benchmarks/MirrorBenchmarks/ → ../../).
let fixturesDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("Tests/Fixtures").path
}()

/// A captured frame copied into memory of its own (never freed: it lives as long as the run).
struct PreparedFrame: @unchecked Sendable {
    let storage: UnsafeMutableRawBufferPointer
    let wireLength: Int
    let timestampNanoseconds: UInt64
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(storage) }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("MirrorBenchmarks: \(message)\n".utf8))
    exit(1)
}

/// The first record of a classic pcap fixture.
func loadFirstFrame(_ file: String) -> PreparedFrame {
    let path = fixturesDirectory + "/" + file
    guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
    return data.withUnsafeBytes { (file: UnsafeRawBufferPointer) -> PreparedFrame in
        guard ClassicPcapReader.recognizes(file), var reader = try? ClassicPcapReader(header: file) else {
            fail("\(path) is not a classic pcap file")
        }
        guard reader.linkType == LinkType.ethernet.rawValue else { fail("\(path): link type \(reader.linkType)") }
        guard let record = reader.next(in: file) else { fail("\(path) holds no record") }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: record.capturedLength, alignment: 16)
        storage.copyMemory(
            from: UnsafeRawBufferPointer(rebasing: file[record.dataOffset..<(record.dataOffset + record.capturedLength)]))
        return PreparedFrame(storage: storage, wireLength: record.wireLength, timestampNanoseconds: record.timestampNanoseconds)
    }
}

func decoderConfiguration(_ testCase: Case) -> MirrorDecoder.Configuration {
    MirrorDecoder.Configuration(rspanVLANs: VLANSet(testCase.rspanVLANs))
}

/// Decodes the frame once and stops the run if it is not the mirror frame the case expects, so
/// that no benchmark silently measures the discard path.
func checkedFrame(_ frame: PreparedFrame, _ testCase: Case, decoder: MirrorDecoder) -> MirrorFrame {
    switch decoder.decode(frame.bytes, wireLength: frame.wireLength) {
    case .discard(let reason):
        fail("\(testCase.file): discarded (\(reason))")
    case .mirror(let decoded):
        guard decoded.encapsulation == testCase.encapsulation else {
            fail("\(testCase.file): decoded as \(decoded.encapsulation.name), expected \(testCase.encapsulation.name)")
        }
        return decoded
    }
}

/// Where the GRE sequence number sits in the frame, found by writing a marker into each
/// candidate position and decoding: the write benchmarks advance it per packet, as a real
/// exporter does, so the sequence tracker takes its in-order path (not the duplicate path).
func findSequenceOffset(_ frame: PreparedFrame, decoder: MirrorDecoder, innerOffset: Int) -> Int? {
    let marker: UInt32 = 0x5EC0_0A11
    for offset in 0...(innerOffset - 4) {
        let saved = frame.storage.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        frame.storage.storeBytes(of: marker.bigEndian, toByteOffset: offset, as: UInt32.self)
        let result = decoder.decode(frame.bytes, wireLength: frame.wireLength)
        frame.storage.storeBytes(of: saved, toByteOffset: offset, as: UInt32.self)
        if case .mirror(let decoded) = result, decoded.hasSequence, decoded.sequence == marker { return offset }
    }
    return nil
}

// MARK: - Write benchmark state

/// One Pipeline with its Storage writing into a fresh directory under /dev/shm, warmed up so
/// that the session exists and the buffer pool has grown to its steady size before measuring.
final class WriteState: @unchecked Sendable {
    let directory: String
    let storage: Storage
    let pipeline: Pipeline
    let frame: PreparedFrame
    let sequenceOffset: Int?
    var sequence: UInt32
    var timestamp: UInt64
    var processed = 0
    var warmUpFrames = 0
    var warmUpBufferMemory = 0

    /// Rotation keeps /dev/shm bounded over a multi-GB run: a new file every 256 MiB, the newest
    /// two kept. Each rotation allocates ~28 times (FileTarget, paths, file name), see README.md.
    static let rotateSize = 256 << 20
    static let keepFiles = 2

    init(format: CaptureFileFormat, testCase: Case) {
        directory = "/dev/shm/span-collector-bench-\(getpid())-\(format.rawValue)-\(testCase.name)"
        var configuration = CollectorConfiguration(outputDirectory: directory)
        configuration.format = format
        configuration.rspanVLANs = testCase.rspanVLANs
        configuration.rotateSize = WriteState.rotateSize
        configuration.keepFiles = WriteState.keepFiles
        let problems = configuration.problems()
        guard problems.isEmpty else { fail("invalid configuration: \(problems)") }

        let storageConfiguration = configuration.storageConfiguration(handoff: .wait)
        do {
            storage = try Storage(configuration: storageConfiguration)
        } catch {
            fail("cannot create storage in \(directory): \(error)")
        }
        pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["bench"])

        // A private copy of the frame: its sequence number is rewritten per packet.
        frame = loadFirstFrame(testCase.file)
        let decoder = MirrorDecoder(configuration: decoderConfiguration(testCase))
        let decoded = checkedFrame(frame, testCase, decoder: decoder)
        sequenceOffset = decoded.hasSequence ? findSequenceOffset(frame, decoder: decoder, innerOffset: decoded.innerOffset) : nil
        if decoded.hasSequence, sequenceOffset == nil { fail("\(testCase.file): GRE sequence number not found") }
        sequence = decoded.sequence
        timestamp = frame.timestampNanoseconds

        // Warm-up: create the session (the only per-session allocations) and push 48 MiB through
        // the writer so the buffer pool has grown to its usual size (buffers are allocated on first
        // use, 1 MiB each). It can still grow later, when the writer falls behind for a moment.
        let recordBytes = format.recordLength(capturedLength: decoded.innerCapturedLength)
        warmUpFrames = max(200_000, (48 << 20) / recordBytes)
        run(count: warmUpFrames)
        warmUpBufferMemory = storage.bufferMemory
    }

    /// The measured loop: one `Pipeline.process` per frame, sequence and timestamp advancing.
    @inline(__always)
    func run(count: Int) {
        let pipeline = pipeline
        let bytes = frame.bytes
        let wireLength = frame.wireLength
        var sequence = sequence
        var timestamp = timestamp
        if let offset = sequenceOffset {
            for _ in 0..<count {
                sequence &+= 1
                frame.storage.storeBytes(of: sequence.bigEndian, toByteOffset: offset, as: UInt32.self)
                timestamp &+= 1_000
                pipeline.process(bytes, wireLength: wireLength, timestampNanoseconds: timestamp)
            }
        } else {
            for _ in 0..<count {
                timestamp &+= 1_000
                pipeline.process(bytes, wireLength: wireLength, timestampNanoseconds: timestamp)
            }
        }
        self.sequence = sequence
        self.timestamp = timestamp
        processed += count
    }

    /// Closes the storage, checks that every frame went into one session in order, removes the
    /// directory.
    func finish(name: String) {
        storage.close()
        let summary = pipeline.summary()
        try? FileManager.default.removeItem(atPath: directory)
        guard summary.sessions.count == 1, let session = summary.sessions.first else {
            fail("\(name): expected one session, got \(summary.sessions.map(\.name))")
        }
        guard session.packets == Int64(processed), summary.packetsWritten == Int64(processed) else {
            fail("\(name): \(processed) frames processed, \(session.packets) written")
        }
        guard session.lost == 0, session.outOfOrder == 0, session.duplicates == 0, session.droppedQueue == 0,
            session.droppedWrite == 0
        else {
            fail("\(name): unexpected counters \(session)")
        }
        guard summary.anomalies.values.allSatisfy({ $0 == 0 }) else {
            fail("\(name): anomalies \(summary.anomalies.filter { $0.value != 0 })")
        }
        if ProcessInfo.processInfo.environment["MIRROR_BENCHMARKS_VERBOSE"] != nil {
            let line = "\(name): \(processed) frames (\(warmUpFrames) of them warm-up), \(session.files) files finished, "
                + "buffer pool \(warmUpBufferMemory >> 20) MiB after warm-up, \(storage.bufferMemory >> 20) MiB at the end\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}

/// Holds the write state between the setup hook, the measured closure and the teardown hook.
final class WriteSlot: @unchecked Sendable {
    var state: WriteState?
}

// MARK: - Suite

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: 20_000
    )

    // What the framework and the loop cost by themselves: blackHole of a ready DecodeResult.
    // The framework's own bookkeeping shows here as a constant 16 mallocs per sample (per 1000
    // iterations, see README.md); the decode and write figures carry the same constant.
    let readyFrame = loadFirstFrame("v02_erspan2.pcap")
    let ready = MirrorDecoder().decode(readyFrame.bytes, wireLength: readyFrame.wireLength)
    Benchmark("baseline.blackHole") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(ready)
        }
    }

    for testCase in cases {
        let decoder = MirrorDecoder(configuration: decoderConfiguration(testCase))
        let frame = loadFirstFrame(testCase.file)
        _ = checkedFrame(frame, testCase, decoder: decoder)
        let bytes = frame.bytes
        let wireLength = frame.wireLength
        Benchmark("decode.\(testCase.name)") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(decoder.decode(bytes, wireLength: wireLength))
            }
        }
    }

    for format in CaptureFileFormat.allCases {
        for testCase in cases {
            let name = "write.\(format.rawValue).\(testCase.name)"
            let slot = WriteSlot()
            Benchmark(
                name,
                configuration: .init(
                    maxDuration: .seconds(2),
                    setup: { slot.state = WriteState(format: format, testCase: testCase) },
                    teardown: {
                        slot.state?.finish(name: name)
                        slot.state = nil
                    })
            ) { benchmark in
                guard let state = slot.state else { fail("\(name): no state") }
                state.run(count: benchmark.scaledIterations.count)
            }
        }
    }
}
