// libFuzzer entry point over the whole per-frame path: outer layers, decapsulation, session
// keys and names, GRE sequence tracking, and (when the input asks for it) the real Pipeline
// writing through a real Storage into a temporary directory.
//
// Not part of the Swift package: scripts/fuzz.sh compiles this file *into* a CollectorCore
// module made of the pure sources (Pipeline, Session, SequenceTracker, SessionRules,
// CollectorConfiguration, Summary) so it can reach the internal session key and tracker, with
// `swiftc -O -sanitize=fuzzer,address -parse-as-library`. SwiftPM's executable link step
// cannot be used: it aliases `main`, which clashes with libFuzzer's own `main`.
//
// Input format and configurations: Tests/CollectorCoreTests/FuzzInput.swift (`FuzzInput`),
// which scripts/fuzz.sh compiles in with this file. Every frame is copied into its own
// exact-size allocation so that AddressSanitizer sees a read one byte past the captured frame.
//
// Oracles besides "no crash, no sanitizer report": the decoded frame lies inside the captured
// bytes and is at least an Ethernet header; wire length ≥ captured length; session identifiers
// are in range for their transport; default session names are valid directory names; exporter
// addresses survive text round trips; the sequence tracker agrees with a set-based model; the
// pipeline's accounting law holds exactly and the finished files hold exactly the packets it
// counted as written, with no `.part` left.

import CaptureSystem
import MirrorDecoding
import PcapFormat
import PcapStorage

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Input splitting

struct FuzzFrame {
    var bytes: UnsafeMutableRawBufferPointer
    var wireLength: Int
    var linkType: LinkType
    var offloadedTag: VLANTag?
    var interface: UInt32
    var timestampNanoseconds: UInt64
}

/// Splits an input into frames, each in its own exact-size allocation (freed by the caller).
func fuzzFrames(_ input: UnsafeRawBufferPointer) -> (selector: UInt8, frames: [FuzzFrame]) {
    let (selector, frames) = FuzzInput.split(input)
    return (
        selector,
        frames.map { frame in
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.bytes.count, alignment: 1)
            if !frame.bytes.isEmpty { copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: input[frame.bytes])) }
            return FuzzFrame(
                bytes: copy, wireLength: frame.wireLength, linkType: frame.linkType, offloadedTag: frame.offloadedTag,
                interface: frame.interface, timestampNanoseconds: frame.timestampNanoseconds)
        })
}

// MARK: - Oracles

@inline(never)
func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fputs("FUZZ ORACLE FAILED: \(message())\n", stderr)
        abort()
    }
}

/// A reference for `SequenceTracker`: the same contract with a set instead of a bitmap, so
/// a slot or window mistake in the bitmap shows up as a disagreement.
struct ReferenceSequenceTracker {
    var lost: Int64 = 0
    var outOfOrder: Int64 = 0
    var duplicates: Int64 = 0
    var restarts: Int64 = 0
    var next: UInt32 = 0
    var started = false
    var seen: Set<UInt32> = []

    mutating func observe(_ sequence: UInt32) {
        let window = Int64(SequenceTracker.window)
        defer {
            // Only the last `window` numbers below `next` are ever asked about.
            if seen.count > 4 * SequenceTracker.window {
                let next = self.next
                seen = seen.filter { Int64(next &- $0) <= window }
            }
        }
        guard started else {
            started = true
            next = sequence &+ 1
            seen.insert(sequence)
            return
        }
        let distance = Int64(Int32(bitPattern: sequence &- next))
        if distance == 0 {
            seen.insert(sequence)
            next = sequence &+ 1
        } else if distance > 0 {
            if distance >= SequenceTracker.restartForward {
                restarts += 1
                seen = [sequence]
                next = sequence &+ 1
                return
            }
            lost += distance
            // Numbers skipped over have not been seen; only the last `window` of them matter.
            if distance >= window {
                seen.removeAll()
            } else {
                var skipped = next
                while skipped != sequence {
                    seen.remove(skipped)
                    skipped &+= 1
                }
            }
            seen.insert(sequence)
            next = sequence &+ 1
        } else {
            let back = -distance
            if back >= SequenceTracker.restartBackward {
                restarts += 1
                seen = [sequence]
                next = sequence &+ 1
            } else if back <= window, seen.contains(sequence) {
                duplicates += 1
            } else {
                outOfOrder += 1
                lost -= 1
                if back <= window { seen.insert(sequence) }
            }
        }
    }
}

struct ModelSession {
    var tracker = SequenceTracker()
    var reference = ReferenceSequenceTracker()
}

/// The session table without files: the real `SessionKey`, default names and trackers.
struct SessionModel {
    var sessions: [SessionKey: ModelSession] = [:]

    mutating func observe(_ frame: MirrorFrame, interface: UInt32, configurationIndex: Int) {
        var key = SessionKey(frame, interface: interface)
        let interfaceName =
            Int(key.interface) < FuzzInput.interfaceNames.count
            ? FuzzInput.interfaceNames[Int(key.interface)] : "if\(key.interface)"
        key.interface |= UInt32(configurationIndex) << 8  // one table for all configurations
        if sessions[key] == nil {
            var nameKey = key
            nameKey.interface &= 0xFF
            let name = Session.defaultName(for: nameKey, interfaceName: interfaceName)
            fuzzCheck(SessionRule.nameProblem(name) == nil, "default session name \(name) is invalid")
            if frame.encapsulation != .rspan {
                let text = frame.exporter.description
                fuzzCheck(IPAddress(text) == frame.exporter, "exporter \(text) does not parse back")
            }
            sessions[key] = ModelSession()
        }
        guard frame.hasSequence else { return }
        sessions[key]!.tracker.observe(frame.sequence)
        sessions[key]!.reference.observe(frame.sequence)
        let (tracker, reference) = (sessions[key]!.tracker, sessions[key]!.reference)
        fuzzCheck(
            tracker.lost == reference.lost && tracker.outOfOrder == reference.outOfOrder
                && tracker.duplicates == reference.duplicates && tracker.restarts == reference.restarts,
            "sequence tracker (\(tracker.lost), \(tracker.outOfOrder), \(tracker.duplicates), \(tracker.restarts)) "
                + "!= model (\(reference.lost), \(reference.outOfOrder), \(reference.duplicates), \(reference.restarts))")
    }
}

/// Checks one decoded frame against the decoder's contract and touches every byte the
/// recorder would copy.
@inline(never)
func checkDecoded(_ frame: MirrorFrame, bytes: UnsafeRawBufferPointer, wireLength: Int, decoder: MirrorDecoder) -> UInt8 {
    let span = frame.innerCapturedLength + frame.removedLength
    fuzzCheck(frame.innerOffset >= 0, "inner offset \(frame.innerOffset) < 0")
    fuzzCheck(frame.innerCapturedLength >= 14, "inner frame of \(frame.innerCapturedLength) bytes accepted")
    fuzzCheck(frame.innerOffset + span <= bytes.count, "inner frame [\(frame.innerOffset), +\(span)) past \(bytes.count) captured bytes")
    fuzzCheck(frame.removedOffset >= 0 && frame.removedLength >= 0, "negative removed range")
    fuzzCheck(frame.removedOffset + frame.removedLength <= span, "removed range outside the frame")
    fuzzCheck(frame.innerWireLength >= frame.innerCapturedLength, "wire \(frame.innerWireLength) < captured \(frame.innerCapturedLength)")
    fuzzCheck(frame.innerWireLength <= max(wireLength, bytes.count) + 0x1_0000, "inner wire length \(frame.innerWireLength) out of all proportion")
    switch frame.encapsulation {
    case .erspan1:
        fuzzCheck(!frame.hasSessionID, "ERSPAN I with a session ID")
    case .erspan2, .erspan3:
        fuzzCheck(frame.hasSessionID && frame.sessionID <= 1023, "ERSPAN session ID \(frame.sessionID)")
        // The Ver nibble as sent; a classifier override decodes whatever it says.
        fuzzCheck(
            frame.erspan.version == (frame.encapsulation == .erspan2 ? 1 : 2) || !decoder.configuration.classifierOverrides.isEmpty,
            "ERSPAN version \(frame.erspan.version) decoded as \(frame.encapsulation.name)")
    case .vxlan, .geneve:
        fuzzCheck(frame.hasSessionID && frame.sessionID <= 0xFF_FFFF, "VNI \(frame.sessionID)")
    case .rspan:
        fuzzCheck(frame.hasSessionID && frame.sessionID <= 4095, "RSPAN VLAN \(frame.sessionID)")
        fuzzCheck(decoder.configuration.rspanVLANs.contains(UInt16(frame.sessionID)), "RSPAN VLAN not configured")
        fuzzCheck(frame.exporter == .none, "RSPAN with an exporter")
    case .gre:
        break
    }
    // Touch what the recorder copies: [innerOffset, innerOffset + span) minus the removed part.
    var sum: UInt8 = 0
    let start = frame.innerOffset
    for index in start..<(start + frame.removedOffset) { sum &+= bytes[index] }
    for index in (start + frame.removedOffset + frame.removedLength)..<(start + span) { sum &+= bytes[index] }
    return sum
}

// MARK: - The entry point

/// Keeps the touched bytes alive so the optimizer cannot drop the reads.
nonisolated(unsafe) var fuzzSink: UInt8 = 0
nonisolated(unsafe) var fuzzRunCount = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecodePath(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    let (selector, frames) = fuzzFrames(input)
    defer { for frame in frames { frame.bytes.deallocate() } }
    if selector & FuzzInput.captureFileBit != 0 {
        fuzzSink &+= UInt8(truncatingIfNeeded: checkCaptureFile(UnsafeRawBufferPointer(rebasing: input[1...])))
    }

    // 1. Every frame through every decoder configuration (fragments through a reassembler, as
    //    the pipeline does); decoded frames through the session key, the default name and the
    //    sequence tracker (against its model).
    var model = SessionModel()
    for (configurationIndex, decoder) in FuzzInput.decoders.enumerated() {
        let reassembler = FragmentReassembler(limits: FuzzInput.reassemblyLimits(configurationIndex))
        var fragmentsAdded = 0
        var fragmentsDiscarded = 0
        for fuzzFrame in frames {
            let bytes = UnsafeRawBufferPointer(fuzzFrame.bytes)
            var frame = MirrorFrame()
            let reason = decoder.decode(
                bytes, wireLength: fuzzFrame.wireLength, linkType: fuzzFrame.linkType, offloadedTag: fuzzFrame.offloadedTag,
                into: &frame)
            if let reason {
                fuzzCheck(reason.bucket == .malformed || reason.bucket == .notMirror, "decoder returned \(reason)")
                guard reason == .ipFragment else { continue }
                fragmentsAdded += 1
                let outcome = reassembler.add(
                    bytes, wireLength: fuzzFrame.wireLength, timestampNanoseconds: fuzzFrame.timestampNanoseconds,
                    offloadedTag: fuzzFrame.offloadedTag, linkType: fuzzFrame.linkType)
                switch outcome {
                case .pending:
                    break
                case .discarded:
                    fragmentsDiscarded += 1
                case .completed(let datagram, let fragments):
                    fuzzCheck(fragments >= 1, "datagram of \(fragments) fragments")
                    var whole = MirrorFrame()
                    if decoder.decode(
                        datagram, wireLength: datagram.count, linkType: fuzzFrame.linkType, offloadedTag: fuzzFrame.offloadedTag,
                        into: &whole) == nil
                    {
                        fuzzSink &+= checkDecoded(whole, bytes: datagram, wireLength: datagram.count, decoder: decoder)
                        model.observe(whole, interface: fuzzFrame.interface, configurationIndex: configurationIndex)
                    }
                }
                for (_, count) in reassembler.takeDiscards() { fragmentsDiscarded += count }
                continue
            }
            fuzzSink &+= checkDecoded(frame, bytes: bytes, wireLength: fuzzFrame.wireLength, decoder: decoder)
            model.observe(frame, interface: fuzzFrame.interface, configurationIndex: configurationIndex)
        }
        // Every fragment ends up merged or discarded once the reassembler gives up the rest.
        reassembler.flush()
        for (_, count) in reassembler.takeDiscards() { fragmentsDiscarded += count }
        let statistics = reassembler.statistics
        fuzzCheck(
            statistics.fragments == fragmentsAdded && statistics.pendingFragments == 0 && statistics.pendingBytes == 0
                && statistics.mergedFragments + fragmentsDiscarded == fragmentsAdded,
            "reassembly accounting: \(fragmentsAdded) fragments in, \(statistics.mergedFragments) merged, "
                + "\(fragmentsDiscarded) discarded, \(statistics.pendingFragments) pending (\(statistics.pendingBytes) bytes)")
    }

    // 2. The real pipeline, when the input asks for it.
    if selector & 0x80 != 0, fuzzPipelineEnabled {
        runPipeline(frames, configurationIndex: Int(selector & 3))
    }
    return 0
}

// MARK: - Capture files (selector bit 6)

/// The capture-file readers over `file` as replay runs them: a gzip/zstd file through
/// CaptureInput (the decompressor and the stream buffer, from a real file), then the reader
/// over the whole bytes (a mapping) and over windows of several sizes (a stream), which must
/// agree record for record; every record inside the bytes, captured ≤ wire; the bytes counted
/// corrupt or truncated never more than the file.
@inline(never)
func checkCaptureFile(_ file: UnsafeRawBufferPointer) -> Int {
    var decompressed: [UInt8] = []
    var bytes = file
    if file.count >= 4, CaptureInput.compression(magic: file.loadUnaligned(as: UInt32.self)) != .none {
        fuzzRunCount += 1
        let path = fuzzOutputRoot + "/compressed-\(fuzzRunCount)"
        guard let fd = try? FileSystem.createForWriting(path) else { return 0 }
        try? FileSystem.writeAll(fd, file, path: path)
        try? fd.close()
        defer { try? FileSystem.remove(path) }
        guard let input = try? CaptureInput(path: path) else { return 0 }
        fuzzCheck(input.mapped == nil, "a compressed file was mapped")
        // At most 1 MiB of output: a small input may claim gigabytes.
        while input.window.count < 1 << 20, (try? input.refill(dropping: 0)) == true {}
        decompressed = Array(input.window)
        bytes = UnsafeRawBufferPointer(start: nil, count: 0)
    }
    return decompressed.withUnsafeBytes { plain in
        let data = decompressed.isEmpty ? bytes : plain
        guard let whole = FuzzInput.readCaptureFile(data) else { return 0 }
        fuzzCheck(whole.corruptBytes + whole.truncatedBytes <= data.count, "counted \(whole.corruptBytes) + \(whole.truncatedBytes) of \(data.count) bytes")
        for record in whole.records {
            fuzzCheck(record.dataOffset >= 0 && record.dataEnd <= data.count, "record \(record.dataOffset)..<\(record.dataEnd) outside \(data.count)")
            fuzzCheck(record.capturedLength <= record.wireLength, "record captured \(record.capturedLength) > wire \(record.wireLength)")
        }
        for chunk in [1, 13, 512] {
            guard let streamed = FuzzInput.readCaptureFile(data, chunk: chunk) else { continue }
            let same =
                streamed.records.count == whole.records.count && streamed.corruptBytes == whole.corruptBytes
                && streamed.truncatedBytes == whole.truncatedBytes
                && zip(streamed.records, whole.records).allSatisfy {
                    $0.dataOffset == $1.dataOffset && $0.capturedLength == $1.capturedLength && $0.wireLength == $1.wireLength
                        && $0.timestampNanoseconds == $1.timestampNanoseconds && $0.linkType == $1.linkType
                }
            fuzzCheck(
                same,
                "streamed in \(chunk)-byte steps: \(streamed.records.count) records, corrupt \(streamed.corruptBytes), truncated "
                    + "\(streamed.truncatedBytes); whole: \(whole.records.count), \(whole.corruptBytes), \(whole.truncatedBytes)")
        }
        return whole.records.count
    }
}

/// FUZZ_PIPELINE=0 skips the pipeline runs (decoders only, several times faster).
let fuzzPipelineEnabled: Bool = getenv("FUZZ_PIPELINE").map { String(cString: $0) != "0" } ?? true

/// Where pipeline runs write: a directory per process below $FUZZ_OUTPUT (default /dev/shm).
let fuzzOutputRoot: String = {
    let base = getenv("FUZZ_OUTPUT").map { String(cString: $0) } ?? "/dev/shm"
    let root = base + "/span-fuzz-\(getpid())"
    try? FileSystem.createDirectory(root, mode: 0o700)
    return root
}()

@inline(never)
func runPipeline(_ frames: [FuzzFrame], configurationIndex: Int) {
    fuzzRunCount += 1
    let directory = fuzzOutputRoot + "/run-\(fuzzRunCount)"
    let configuration = FuzzInput.configuration(configurationIndex, directory: directory)
    fuzzCheck(configuration.problems().isEmpty || configurationIndex == 2, "fuzz configuration \(configuration.problems())")
    let storage: Storage
    do {
        var storageConfiguration = configuration.storageConfiguration(handoff: .wait)
        storageConfiguration.maximumBuffersInFlight = 2  // fewer buffers to preallocate per run
        storage = try Storage(configuration: storageConfiguration)
    } catch {
        fuzzCheck(false, "storage in \(directory): \(error)")
        return
    }
    let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: FuzzInput.interfaceNames)
    for frame in frames {
        pipeline.process(
            UnsafeRawBufferPointer(frame.bytes), wireLength: frame.wireLength, timestampNanoseconds: frame.timestampNanoseconds,
            linkType: frame.linkType, offloadedTag: frame.offloadedTag, interface: frame.interface)
        if frame.timestampNanoseconds % 1_000_000_000 < 300_000_000 {
            storage.tick(wallClockNanoseconds: frame.timestampNanoseconds)
        }
    }
    pipeline.finishReassembly()
    storage.close()
    let summary = pipeline.summary()
    fuzzCheck(summary.isConserved, "accounting law broken: \(summary.jsonText())")
    fuzzCheck(summary.reassembly.pendingFragments == 0, "fragments still pending after finishReassembly")
    // The fragments of a rebuilt datagram count as one received frame.
    let merged = summary.reassembly.mergedFragments - summary.reassembly.datagrams
    fuzzCheck(
        summary.packetsReceived + merged == Int64(frames.count),
        "received \(summary.packetsReceived) + \(merged) merged away != \(frames.count) frames")

    // The finished files hold exactly what was counted as written (configuration 2 keeps one
    // file per session and deletes the rest, so its files are checked for validity only).
    var records: Int64 = 0
    let sessionDirectories = (try? FileSystem.contents(ofDirectory: directory)) ?? []
    for session in sessionDirectories where FileSystem.isDirectory(directory + "/" + session) {
        for file in (try? FileSystem.contents(ofDirectory: directory + "/" + session)) ?? [] {
            let path = directory + "/" + session + "/" + file
            fuzzCheck(!file.hasSuffix(".part"), "\(path) left unfinished")
            if file.hasSuffix(".pcap") {
                records += countRecords(path)
            } else if file.hasSuffix(".pcapng") {
                records += countPcapNGRecords(path)
            }
            try? FileSystem.remove(path)
        }
        _ = rmdir(directory + "/" + session)
    }
    for file in (try? FileSystem.contents(ofDirectory: directory)) ?? [] { try? FileSystem.remove(directory + "/" + file) }
    _ = rmdir(directory)
    if configuration.keepFiles == nil {
        fuzzCheck(records == summary.packetsWritten, "files hold \(records) records, \(summary.packetsWritten) counted as written")
    }
}

func countRecords(_ path: String) -> Int64 {
    guard let mapped = try? MappedFile(path: path) else {
        fuzzCheck(false, "cannot map \(path)")
        return 0
    }
    guard var reader = try? ClassicPcapReader(header: mapped.bytes) else {
        fuzzCheck(false, "\(path) is not a pcap file")
        return 0
    }
    var count: Int64 = 0
    while let record = reader.next(in: mapped.bytes) {
        fuzzCheck(record.capturedLength <= record.wireLength, "\(path): record captured > wire")
        count += 1
    }
    fuzzCheck(!reader.endedInsideRecord, "\(path) ends inside a record")
    return count
}

/// Walks a pcapng file block by block (SHB first, lengths consistent, multiples of 4, nothing
/// left over) and counts its Enhanced Packet Blocks.
func countPcapNGRecords(_ path: String) -> Int64 {
    guard let mapped = try? MappedFile(path: path) else {
        fuzzCheck(false, "cannot map \(path)")
        return 0
    }
    let bytes = mapped.bytes
    var offset = 0
    var count: Int64 = 0
    while offset < bytes.count {
        fuzzCheck(bytes.count - offset >= 12, "\(path): \(bytes.count - offset) bytes left at \(offset), not a block")
        let type = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        fuzzCheck(offset > 0 || type == 0x0A0D_0D0A, "\(path) does not start with a section header block")
        fuzzCheck(length >= 12 && length % 4 == 0 && length <= bytes.count - offset, "\(path): block length \(length) at \(offset)")
        let trailer = Int(bytes.loadUnaligned(fromByteOffset: offset + length - 4, as: UInt32.self))
        fuzzCheck(trailer == length, "\(path): block at \(offset) says \(length) and ends with \(trailer)")
        if type == 6 {
            fuzzCheck(length >= 32, "\(path): short enhanced packet block")
            let captured = Int(bytes.loadUnaligned(fromByteOffset: offset + 20, as: UInt32.self))
            let original = Int(bytes.loadUnaligned(fromByteOffset: offset + 24, as: UInt32.self))
            fuzzCheck(32 + captured <= length && captured <= original, "\(path): packet of \(captured)/\(original) in a \(length)-byte block")
            count += 1
        }
        offset += length
    }
    return count
}
