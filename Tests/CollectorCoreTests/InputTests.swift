import CaptureSystem
import CollectorCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Replay inputs (issue 10, items 3-9): what users have on disk, damaged or not, through the
/// command: corrupt framing counted with a non-zero exit and the rest replayed, compressed
/// files by magic, FIFOs and standard input as streams, directories refused, a file shrinking
/// under its mapping.
@Suite struct InputTests {
    static func fixture(_ name: String) -> String { TestSupport.fixtures.appendingPathComponent(name).path }

    static func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: fixture(name)))) }

    /// Runs `replay --json` and returns the exit status, the summary and standard error.
    static func replay(_ inputs: [String], output: String) throws -> (status: Int32, summary: [String: Any], standardError: String) {
        let result = try TestSupport.run([TestSupport.collectorBinary, "replay"] + inputs + ["--output", output, "--json"], timeout: 120)
        let summary = (try? JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8))) as? [String: Any]
        #expect(summary != nil, "no JSON summary: \(result.standardOutput) \(result.standardError)")
        return (result.status, summary ?? [:], result.standardError)
    }

    static func input(_ summary: [String: Any]) -> [String: Int] {
        (summary["input"] as? [String: Any])?.compactMapValues { $0 as? Int } ?? [:]
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Item 5: a record header claiming 2^31 bytes used to end the file with exit 0 and a
    /// wrong message; now the reader resynchronises on the next plausible record, every other
    /// record is written, the bytes skipped are in the summary and the exit status is 2.
    @Test func aCorruptRecordHeaderIsSkippedCountedAndFailsTheRun() throws {
        let directory = try TestSupport.makeTemporaryDirectory("inputs")
        defer { TestSupport.removeDirectory(directory) }
        var bytes = try Self.bytes("mixed_sessions.pcap")
        var offset = 24
        for _ in 0..<5 {
            offset += 16 + bytes.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)) }
        }
        let bogus: [UInt8] = [0x00, 0xF1, 0x53, 0x65, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0x80] + Array(repeating: 0xEE, count: 40)
        bytes.insert(contentsOf: bogus, at: offset)
        try Self.write(bytes, to: directory + "/corrupt.pcap")
        let clean = try Self.replay([Self.fixture("mixed_sessions.pcap")], output: directory + "/clean")
        let damaged = try Self.replay([directory + "/corrupt.pcap"], output: directory + "/damaged")
        #expect(clean.status == 0 && damaged.status == 2)
        #expect(damaged.summary["packets_written"] as? Int == clean.summary["packets_written"] as? Int)
        #expect(damaged.summary["packets_received"] as? Int == 18)
        #expect(Self.input(damaged.summary)["corrupt_bytes"] == bogus.count)
        #expect(Self.input(damaged.summary)["failed"] == 1)
        #expect(damaged.standardError.contains("56 corrupt bytes skipped"))
    }

    /// Items 5 and 7 in pcapng: a block with a bad length, one naming an interface that does
    /// not exist, and a timestamp of 2^64 - 1 microseconds (a SIGILL in the libpcap path:
    /// the frames before it lost, no summary): each block is counted, the rest written.
    @Test func damagedPcapngBlocksAreCountedNotFatal() throws {
        let directory = try TestSupport.makeTemporaryDirectory("inputs")
        defer { TestSupport.removeDirectory(directory) }
        let ng = try Self.bytes("mixed_sessions.pcapng")
        let epbs = Self.blocks(ng).filter { $0.type == 6 }
        var badLength = ng
        badLength.replaceSubrange((epbs[5].offset + 4)..<(epbs[5].offset + 8), with: [0xF0, 0xFF, 0xFF, 0x7F])
        var badInterface = ng
        badInterface[epbs[5].offset + 8] = 9
        try Self.write(badLength, to: directory + "/length.pcapng")
        try Self.write(badInterface, to: directory + "/interface.pcapng")
        for name in ["length", "interface"] {
            let result = try Self.replay([directory + "/\(name).pcapng"], output: directory + "/" + name)
            #expect(result.status == 2, "\(name)")
            #expect(result.summary["packets_received"] as? Int == 17, "\(name)")
            #expect(Self.input(result.summary)["corrupt_bytes"] == epbs[5].length, "\(name)")
        }

        // Item 7 as reported: the same file with if_tsresol 6 (microseconds, every timestamp
        // rewritten) and one timestamp of 2^64 - 1 units; libpcap's path died of SIGILL
        // (exit 132, no summary).
        var micro = ng
        for block in Self.blocks(micro) where block.type == 1 {
            var option = block.offset + 16
            while option + 4 <= block.offset + block.length - 4 {
                let (code, length) = micro.withUnsafeBytes {
                    ($0.loadUnaligned(fromByteOffset: option, as: UInt16.self), Int($0.loadUnaligned(fromByteOffset: option + 2, as: UInt16.self)))
                }
                if code == 9 { micro[option + 4] = 6 }
                if code == 0 { break }
                option += 4 + (length + 3) & ~3
            }
        }
        for block in Self.blocks(micro) where block.type == 6 {
            let units = micro.withUnsafeBytes {
                UInt64($0.loadUnaligned(fromByteOffset: block.offset + 12, as: UInt32.self)) << 32
                    | UInt64($0.loadUnaligned(fromByteOffset: block.offset + 16, as: UInt32.self))
            } / 1000
            micro.replaceSubrange((block.offset + 12)..<(block.offset + 20), with: withUnsafeBytes(of: UInt32(units >> 32)) { Array($0) }
                + withUnsafeBytes(of: UInt32(truncatingIfNeeded: units)) { Array($0) })
        }
        micro.replaceSubrange((epbs[5].offset + 12)..<(epbs[5].offset + 20), with: Array(repeating: 0xFF, count: 8))
        try Self.write(micro, to: directory + "/micro.pcapng")
        let microResult = try Self.replay([directory + "/micro.pcapng"], output: directory + "/micro")
        #expect(microResult.status == 2)
        #expect(microResult.summary["packets_received"] as? Int == 17)
        #expect(Self.input(microResult.summary)["corrupt_bytes"] == epbs[5].length)

        // The SLL2 record of the multi-interface fixture is on a 10^-6 interface: 2^64 - 1
        // microseconds do not fit in 64 bits of nanoseconds.
        var multi = try Self.bytes("inputs_multi_interface.pcapng")
        let sll2 = Self.blocks(multi).filter { $0.type == 6 }[1]
        multi.replaceSubrange((sll2.offset + 12)..<(sll2.offset + 20), with: Array(repeating: 0xFF, count: 8))
        try Self.write(multi, to: directory + "/time.pcapng")
        let result = try Self.replay([directory + "/time.pcapng"], output: directory + "/time")
        #expect(result.status == 2)
        #expect(result.summary["packets_received"] as? Int == 6)
        #expect(result.summary["packets_written"] as? Int == 5)
        #expect(Self.input(result.summary)["corrupt_bytes"] == sll2.length)
    }

    /// Item 3 for classic pcap: a link type the decoder does not read is counted per frame
    /// (not_mirror.link_type), not an unread file.
    @Test func framesOfAnUnknownLinkTypeAreCounted() throws {
        let directory = try TestSupport.makeTemporaryDirectory("inputs")
        defer { TestSupport.removeDirectory(directory) }
        var bytes = try Self.bytes("mixed_sessions.pcap")
        bytes.replaceSubrange(20..<24, with: [147, 0, 0, 0])  // LINKTYPE_USER0
        try Self.write(bytes, to: directory + "/user0.pcap")
        let result = try Self.replay([directory + "/user0.pcap"], output: directory + "/out")
        #expect(result.status == 0)
        #expect(result.summary["packets_received"] as? Int == 18)
        #expect((result.summary["discard_reasons"] as? [String: Int])?["not_mirror.link_type"] == 18)
    }

    /// Item 6: a directory is a clear error naming it; the other inputs are still replayed.
    @Test func aDirectoryIsAClearErrorAndTheOtherInputsStillCount() throws {
        let directory = try TestSupport.makeTemporaryDirectory("inputs")
        defer { TestSupport.removeDirectory(directory) }
        let result = try Self.replay([directory, Self.fixture("v02_erspan2.pcap")], output: directory + "/out")
        #expect(result.status == 2)
        #expect(result.standardError.contains("\(directory) is a directory"))
        #expect(result.summary["packets_written"] as? Int == 3)
        #expect(Self.input(result.summary) == ["files": 2, "failed": 1, "corrupt_bytes": 0, "truncated_bytes": 0])
    }

    /// Item 6: compressed inputs are recognised by their magic whatever their name, also when
    /// they arrive on a FIFO or standard input; a FIFO is opened once (it used to hang 3 runs in
    /// 10 when libpcap opened it a second time).
    @Test func fifosAndStandardInputAreReadAsStreams() throws {
        let directory = try TestSupport.makeTemporaryDirectory("inputs")
        defer { TestSupport.removeDirectory(directory) }
        let reference = try Self.replay([Self.fixture("mixed_sessions.pcap")], output: directory + "/reference")
        let written = reference.summary["packets_written"] as? Int
        #expect(written == 14)
        for (run, source) in ["mixed_sessions.pcap", "inputs_gzip_members.cap", "inputs_zstd_frames.pcapng",
            "mixed_sessions.pcapng", "mixed_sessions.pcap"].enumerated()
        {
            let fifo = directory + "/fifo\(run)"
            #expect(mkfifo(fifo, 0o600) == 0)
            // The writer blocks in open(2) until replay opens the FIFO for reading.
            let writer = Process()
            writer.executableURL = URL(fileURLWithPath: "/bin/sh")
            writer.arguments = ["-c", "exec cat \"$0\" > \"$1\"", Self.fixture(source), fifo]
            writer.standardOutput = FileHandle.nullDevice
            writer.standardError = FileHandle.nullDevice
            try writer.run()
            let result = try Self.replay([fifo], output: directory + "/fifo-out\(run)")
            writer.waitUntilExit()
            #expect(writer.terminationStatus == 0)
            #expect(result.status == 0, "\(source): \(result.standardError)")
            #expect(result.summary["packets_written"] as? Int == written, "\(source) through a FIFO")
        }
        let piped = try TestSupport.run([
            "sh", "-c",
            "cat '\(Self.fixture("inputs_zstd_frames.pcapng"))' | '\(TestSupport.collectorBinary)' replay - --output '\(directory)/stdin' --json",
        ])
        #expect(piped.status == 0, "\(piped.standardError)")
        let summary = try JSONSerialization.jsonObject(with: Data(piped.standardOutput.utf8)) as? [String: Any]
        #expect(summary?["packets_written"] as? Int == written)
    }

    /// Item 6: a cut or corrupt compressed stream ends that input with an error (exit 2); the
    /// records before the damage are written.
    @Test func aCutCompressedFileIsAnError() throws {
        let directory = try TestSupport.makeTemporaryDirectory("inputs")
        defer { TestSupport.removeDirectory(directory) }
        for name in ["inputs_gzip_members.cap", "inputs_zstd_frames.pcapng"] {
            let bytes = try Self.bytes(name)
            try Self.write(Array(bytes.prefix(bytes.count - 20)), to: directory + "/" + name)
            let result = try Self.replay([directory + "/" + name], output: directory + "/out-" + name)
            #expect(result.status == 2, "\(name)")
            #expect(result.standardError.contains("cut") || result.standardError.contains("corrupt"), "\(name): \(result.standardError)")
            #expect(Self.input(result.summary)["failed"] == 1)
        }
    }

    /// Item 9, at the mapping: pages past the end of a file that shrank read as a counted
    /// fault, not a SIGBUS that kills the process.
    @Test func aMappingOfAShrunkenFileReportsInsteadOfCrashing() throws {
        let directory = try TestSupport.makeTemporaryDirectory("inputs")
        defer { TestSupport.removeDirectory(directory) }
        let path = directory + "/shrinking"
        try Self.write(Array(repeating: 0x5A, count: 1 << 20), to: path)
        let mapped = try MappedFile(path: path)
        #expect(mapped.isIntact(through: 1 << 20))
        #expect(truncate(path, 4096) == 0)
        #expect(mapped.isIntact(through: 4096))
        #expect(!mapped.isIntact(through: 100_000), "a read past the new end faults, and the fault is reported")
        #expect(!mapped.isIntact(through: 10), "the fault is remembered")
    }

    /// Item 9, end to end: an input truncated while replay reads it ends with a counted error
    /// (exit 2, the summary printed, the bytes not read counted as truncated) instead of
    /// SIGBUS. The file is cut as soon as replay has mapped it, and is large enough that replay
    /// is still reading it then.
    @Test func anInputThatShrinksWhileReplayed() throws {
        let directory = try TestSupport.makeTemporaryDirectory("inputs")
        defer { TestSupport.removeDirectory(directory) }
        let scratch = FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : directory
        let path = scratch + "/span-shrink-\(getpid()).pcap"
        defer { unlink(path) }
        // 4 M records of a 60-byte non-IP frame (fast to discard): 304 MB.
        var header = Array(try Self.bytes("mixed_sessions.pcap").prefix(24))
        header.replaceSubrange(16..<20, with: [0, 0, 4, 0])
        var record = [UInt8](repeating: 0, count: 76)
        record.replaceSubrange(0..<4, with: [0x00, 0xF1, 0x53, 0x65])
        record[8] = 60
        record[12] = 60
        let chunk = Array([[UInt8]](repeating: record, count: 65_536).joined())
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        _ = header.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        for _ in 0..<64 { _ = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
        close(fd)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestSupport.collectorBinary)
        process.arguments = ["replay", path, "--output", directory + "/out", "--json"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Cut the file once replay has mapped it (bounded wait).
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, process.isRunning,
            !((try? String(contentsOfFile: "/proc/\(process.processIdentifier)/maps", encoding: .utf8)) ?? "").contains(path)
        {
            usleep(2_000)
        }
        #expect(truncate(path, 1 << 20) == 0)
        let output = TestSupport.readToEnd(out.fileHandleForReading.fileDescriptor)
        let errors = String(decoding: TestSupport.readToEnd(err.fileHandleForReading.fileDescriptor), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit, "killed by a signal: \(errors)")
        #expect(process.terminationStatus == 2, "\(errors)")
        #expect(errors.contains("shrank"))
        let summary = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
        let received = try #require(summary["packets_received"] as? Int)
        // Up to the cut, not past it; the guard reads ahead by 64 KiB, so it may stop that early.
        #expect(received >= ((1 << 20) - (64 << 10)) / 76 - 1 && received < 64 * 65_536, "read up to the cut, not past it: \(received)")
        #expect((Self.input(summary)["truncated_bytes"] ?? 0) > 0)
    }

    /// The blocks of a little-endian pcapng file.
    static func blocks(_ bytes: [UInt8]) -> [(offset: Int, type: UInt32, length: Int)] {
        var blocks: [(offset: Int, type: UInt32, length: Int)] = []
        var offset = 0
        while offset + 12 <= bytes.count {
            let (type, length) = bytes.withUnsafeBytes {
                ($0.loadUnaligned(fromByteOffset: offset, as: UInt32.self), Int($0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)))
            }
            guard length >= 12 else { break }
            blocks.append((offset, type, length))
            offset += length
        }
        return blocks
    }
}
