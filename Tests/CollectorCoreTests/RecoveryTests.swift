import CaptureSystem
import Foundation
import PcapFormat
import PcapStorage
import Testing

/// Start-up recovery of `.part` files a crashed writer left: files made with the project's own
/// encoders, cut at every possible length, recovered, then checked byte for byte and with
/// Wireshark's capinfos.
@Suite struct RecoveryTests {
    static let session = "198.51.100.1-erspan-7"
    static let firstTimestamp: UInt64 = 1_700_000_000_123_456_789

    /// A capture file as written, with where each block or record ends.
    struct Built {
        var bytes: [UInt8]
        /// Ends of the packet records (offsets just past each).
        var recordEnds: [Int]
        /// Ends of every block (pcapng) or record (pcap), in order.
        var blockEnds: [Int]

        /// What recovery must keep of the first `length` bytes: the records, and the length up
        /// to the last whole block (0 when no record is whole).
        func expected(cutAt length: Int) -> (records: Int, length: Int) {
            let records = recordEnds.filter { $0 <= length }.count
            return (records, records == 0 ? 0 : blockEnds.filter { $0 <= length }.max()!)
        }
    }

    static func payload(_ size: Int, seed: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ seed) } }

    /// Classic pcap (nanosecond, host order) with records of `sizes` data bytes.
    static func classic(sizes: [Int]) -> Built {
        var bytes = PcapFileHeader.bytes(linkType: 1)
        var ends: [Int] = []
        for (index, size) in sizes.enumerated() {
            var record = [UInt8](repeating: 0, count: PcapRecord.headerLength)
            record.withUnsafeMutableBytes {
                PcapRecord.writeHeader(
                    to: $0.baseAddress!, timestampNanoseconds: firstTimestamp + UInt64(index) * 1_000_001,
                    capturedLength: size, wireLength: size + index)
            }
            bytes += record + payload(size, seed: index)
            ends.append(bytes.count)
        }
        return Built(bytes: bytes, recordEnds: ends, blockEnds: ends)
    }

    /// The same file in the other byte order (every header field swapped).
    static func byteSwapped(_ built: Built) -> Built {
        var bytes = built.bytes
        func swap(_ offset: Int, _ width: Int) { bytes[offset..<(offset + width)].reverse() }
        swap(0, 4); swap(4, 2); swap(6, 2)
        for offset in stride(from: 8, to: 24, by: 4) { swap(offset, 4) }
        var start = PcapFileHeader.length
        for end in built.recordEnds {
            for field in 0..<4 { swap(start + 4 * field, 4) }
            start = end
        }
        return Built(bytes: bytes, recordEnds: built.recordEnds, blockEnds: built.blockEnds)
    }

    /// pcapng as the collector writes it (SHB, IDB, EPBs) plus an interface statistics block
    /// at the end, as a finished file has.
    static func pcapng(sizes: [Int], statistics: Bool = true) -> Built {
        let format = CaptureFileFormat.pcapng
        let shb = SectionHeaderBlock.bytes(application: "span-collector")
        var bytes = format.fileHeader(linkType: 1, interfaceName: session, interfaceDescription: "recovery test")
        var blockEnds = [shb.count, bytes.count]
        var recordEnds: [Int] = []
        for (index, size) in sizes.enumerated() {
            var record = [UInt8](repeating: 0xEE, count: format.recordLength(capturedLength: size))
            let data = payload(size, seed: index)
            record.withUnsafeMutableBytes { raw in
                let base = raw.baseAddress!
                let offset = format.writeRecordPrefix(
                    to: base, timestampNanoseconds: firstTimestamp + UInt64(index) * 1_000_001, capturedLength: size,
                    wireLength: size + index)
                data.withUnsafeBytes { (base + offset).copyMemory(from: $0.baseAddress!, byteCount: size) }
                format.writeRecordSuffix(to: base, capturedLength: size)
            }
            bytes += record
            recordEnds.append(bytes.count)
            blockEnds.append(bytes.count)
        }
        if statistics {
            // Interface Statistics Block: interface 0, a timestamp, isb_ifrecv, end of options.
            func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
            let body = u32(0) + u32(0) + u32(1) + [4, 0, 8, 0] + withUnsafeBytes(of: UInt64(sizes.count)) { Array($0) } + u32(0)
            bytes += u32(5) + u32(UInt32(12 + body.count)) + body + u32(UInt32(12 + body.count))
            blockEnds.append(bytes.count)
        }
        return Built(bytes: bytes, recordEnds: recordEnds, blockEnds: blockEnds)
    }

    static func partName(sequence: Int, fileExtension: String) -> String {
        FileNaming.fileName(
            session: session, firstTimestampNanoseconds: firstTimestamp, sequence: sequence, fileExtension: fileExtension)
            + FileNaming.partSuffix
    }

    static func write(_ bytes: some Collection<UInt8>, to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func contents(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { Array($0) }
    }

    /// One case: a `.part` file's bytes and what recovery must make of it.
    struct Case {
        var name: String
        var bytes: [UInt8]
        var records: Int
        var length: Int
    }

    /// Writes every case into one session directory, recovers once, and checks every result,
    /// the files on disk, and (one capinfos run per 200 files) that Wireshark reads each
    /// recovered file with exactly the records kept.
    static func recoverAndCheck(_ cases: [Case], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let output = try TestSupport.makeTemporaryDirectory("recovery")
        defer { TestSupport.removeDirectory(output) }
        let directory = output + "/" + session
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for item in cases { try write(item.bytes, to: directory + "/" + item.name) }

        let results = Recovery.recoverPartFiles(in: output)
        #expect(results.count == cases.count, sourceLocation: sourceLocation)
        let byPath = Dictionary(results.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        var recovered: [String: Case] = [:]
        for item in cases {
            let path = directory + "/" + item.name
            let finalPath = String(path.dropLast(FileNaming.partSuffix.count))
            guard let result = byPath[path] else {
                Issue.record("no result for \(item.name)", sourceLocation: sourceLocation)
                continue
            }
            #expect(!FileManager.default.fileExists(atPath: path), "\(item.name) left as .part", sourceLocation: sourceLocation)
            #expect(result.recordsKept == item.records, "\(item.name)", sourceLocation: sourceLocation)
            if item.records == 0 {
                #expect(result.action == .removed, "\(item.name)", sourceLocation: sourceLocation)
                #expect(result.bytesCut == item.bytes.count, "\(item.name)", sourceLocation: sourceLocation)
                #expect(!FileManager.default.fileExists(atPath: finalPath), "\(item.name)", sourceLocation: sourceLocation)
            } else {
                #expect(result.action == .renamed(to: finalPath), "\(item.name)", sourceLocation: sourceLocation)
                #expect(result.bytesCut == item.bytes.count - item.length, "\(item.name)", sourceLocation: sourceLocation)
                #expect(contents(finalPath) == Array(item.bytes.prefix(item.length)), "\(item.name)", sourceLocation: sourceLocation)
                recovered[finalPath] = item
            }
        }
        let remaining = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(remaining.allSatisfy { !$0.hasSuffix(".part") }, sourceLocation: sourceLocation)
        #expect(Set(remaining.map { directory + "/" + $0 }) == Set(recovered.keys), sourceLocation: sourceLocation)

        let counts = try TestSupport.capinfosPacketCounts(recovered.keys.sorted(), sourceLocation: sourceLocation)
        for (path, item) in recovered {
            #expect(counts[path] == item.records, "capinfos on \(item.name)", sourceLocation: sourceLocation)
        }
        // Recovery is done: a second pass finds nothing.
        #expect(Recovery.recoverPartFiles(in: output).isEmpty, sourceLocation: sourceLocation)
    }

    /// A case per cut length 0...whole file.
    static func everyCut(of built: Built, fileExtension: String, firstSequence: Int) -> [Case] {
        (0...built.bytes.count).map { length in
            let (records, kept) = built.expected(cutAt: length)
            return Case(
                name: partName(sequence: firstSequence + length, fileExtension: fileExtension),
                bytes: Array(built.bytes.prefix(length)), records: records, length: kept)
        }
    }

    // MARK: Every cut

    @Test func everyCutOfAClassicPcapKeepsExactlyItsWholeRecords() throws {
        let built = Self.classic(sizes: [60, 1, 131, 4, 0x5EA])
        try Self.recoverAndCheck(Self.everyCut(of: built, fileExtension: "pcap", firstSequence: 1))

        // Our reader agrees record by record with the uncut file's.
        let output = try TestSupport.makeTemporaryDirectory("recovery-read")
        defer { TestSupport.removeDirectory(output) }
        try FileManager.default.createDirectory(atPath: output + "/" + Self.session, withIntermediateDirectories: true)
        let whole = output + "/whole.pcap"
        try Self.write(built.bytes, to: whole)
        let reference = try TestSupport.readPcap(whole).records
        let cut = built.recordEnds[2] + 9  // inside the fourth record
        let part = output + "/" + Self.session + "/" + Self.partName(sequence: 1, fileExtension: "pcap")
        try Self.write(built.bytes.prefix(cut), to: part)
        let results = Recovery.recoverPartFiles(in: output)
        #expect(results.map(\.recordsKept) == [3])
        let recovered = try TestSupport.readPcap(String(part.dropLast(FileNaming.partSuffix.count)))
        #expect(recovered.linkType == 1)
        #expect(recovered.records == Array(reference.prefix(3)))
    }

    @Test func everyCutOfAByteSwappedClassicPcapKeepsExactlyItsWholeRecords() throws {
        let built = Self.byteSwapped(Self.classic(sizes: [60, 1, 131, 4]))
        try Self.recoverAndCheck(Self.everyCut(of: built, fileExtension: "pcap", firstSequence: 1))
    }

    @Test func everyCutOfAPcapNGKeepsExactlyItsWholeBlocks() throws {
        let built = Self.pcapng(sizes: [60, 1, 131, 5])
        try Self.recoverAndCheck(Self.everyCut(of: built, fileExtension: "pcapng", firstSequence: 1))
    }

    @Test func everyCutOfAPcapNGWithoutStatisticsKeepsExactlyItsWholeBlocks() throws {
        let built = Self.pcapng(sizes: [2, 64], statistics: false)
        try Self.recoverAndCheck(Self.everyCut(of: built, fileExtension: "pcapng", firstSequence: 1))
    }

    // MARK: Damage that is not a clean cut

    @Test func damagedFilesKeepWhatPrecedesTheDamage() throws {
        var cases: [Case] = []
        func add(_ bytes: [UInt8], _ ext: String, records: Int, length: Int) {
            cases.append(Case(name: Self.partName(sequence: cases.count + 1, fileExtension: ext), bytes: bytes, records: records, length: length))
        }
        let classic = Self.classic(sizes: [60, 1, 131])
        // A zero-filled tail (what a power cut can leave): two records survive.
        add(Array(classic.bytes.prefix(classic.recordEnds[1])) + [UInt8](repeating: 0, count: 4096), "pcap", records: 2, length: classic.recordEnds[1])
        // A captured length beyond 262144 in the third record header.
        var huge = classic.bytes
        withUnsafeBytes(of: UInt32(262_145)) { huge.replaceSubrange((classic.recordEnds[1] + 8)..<(classic.recordEnds[1] + 12), with: $0) }
        huge += [UInt8](repeating: 1, count: 300_000)
        add(huge, "pcap", records: 2, length: classic.recordEnds[1])
        // Not pcap at all, only a header, nothing, a header with a bad version.
        add(Array("this is not a capture file, just text that is long enough".utf8), "pcap", records: 0, length: 0)
        add(Array(classic.bytes.prefix(PcapFileHeader.length)), "pcap", records: 0, length: 0)
        add([], "pcap", records: 0, length: 0)
        var version = classic.bytes
        version[4] = 3
        add(version, "pcap", records: 0, length: 0)

        let ng = Self.pcapng(sizes: [60, 1, 131], statistics: false)
        let epb2 = ng.recordEnds[0]  // start of the second packet block
        // A trailing length that disagrees with the leading one in the second packet block.
        var trailer = ng.bytes
        trailer[ng.recordEnds[1] - 4] ^= 0xFF
        add(trailer, "pcapng", records: 1, length: ng.recordEnds[0])
        // A packet block naming an interface no IDB declared.
        var interface = ng.bytes
        interface[epb2 + 8] = 1
        add(interface, "pcapng", records: 1, length: ng.recordEnds[0])
        // A block length that is not a multiple of 4.
        var odd = ng.bytes
        odd[epb2 + 4] &+= 1
        add(odd, "pcapng", records: 1, length: ng.recordEnds[0])
        // A captured length larger than its block.
        var captured = ng.bytes
        captured[epb2 + 20] = 200
        add(captured, "pcapng", records: 1, length: ng.recordEnds[0])
        // Zeros after the first packet.
        add(Array(ng.bytes.prefix(ng.recordEnds[0])) + [UInt8](repeating: 0, count: 64), "pcapng", records: 1, length: ng.recordEnds[0])
        // No Section Header Block first; SHB and IDB only; a classic pcap under a pcapng name.
        add(Array(ng.bytes.dropFirst(ng.blockEnds[0])), "pcapng", records: 0, length: 0)
        add(Array(ng.bytes.prefix(ng.blockEnds[1])), "pcapng", records: 0, length: 0)
        add(classic.bytes, "pcapng", records: 0, length: 0)
        // A bad byte-order magic.
        var magic = ng.bytes
        magic[8] ^= 0xFF
        add(magic, "pcapng", records: 0, length: 0)
        try Self.recoverAndCheck(cases)
    }

    // MARK: Only our files

    @Test func filesThatAreNotOursAreNeverTouched() throws {
        let output = try TestSupport.makeTemporaryDirectory("recovery-foreign")
        defer { TestSupport.removeDirectory(output) }
        let directory = output + "/" + Self.session
        let otherDirectory = output + "/other-session"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: otherDirectory, withIntermediateDirectories: true)
        let cut = Array(Self.classic(sizes: [60, 1]).bytes.dropLast(3))
        let ours = Self.partName(sequence: 5, fileExtension: "pcap")
        let stamp = FileNaming.utcStamp(seconds: Int64(Self.firstTimestamp / 1_000_000_000))
        let foreign = [
            directory + "/notes.txt",
            directory + "/other.pcap.part",
            directory + "/other-session-\(stamp)-000001.pcap.part",  // another session's name
            directory + "/\(Self.session)-\(stamp)-000002.pcap",  // finished, even if damaged
            directory + "/\(Self.session)-\(stamp)-000003.txt.part",
            directory + "/\(Self.session)-\(stamp)-00004.pcap.part",  // five digits
            directory + "/\(Self.session)-2023-11-14-000004.pcap.part",
            output + "/" + ours,  // not inside a session directory
            otherDirectory + "/" + ours,  // in a directory of another name
            otherDirectory + "/empty.part",
        ]
        for path in foreign { try Self.write(cut, to: path) }
        try Self.write(cut, to: directory + "/" + ours)
        try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: true)
        try Self.write(cut, to: directory + "/sub/" + ours)  // not directly below

        let results = Recovery.recoverPartFiles(in: output)
        #expect(results == [
            RecoveryResult(
                path: directory + "/" + ours, action: .renamed(to: directory + "/" + String(ours.dropLast(5))), recordsKept: 1,
                bytesCut: 1 + 16 - 3)
        ])
        for path in foreign + [directory + "/sub/" + ours] {
            #expect(Self.contents(path) == cut, "\(path) was touched")
        }
    }

    @Test func aFinishedFileOfTheSameNameIsNeverReplaced() throws {
        let output = try TestSupport.makeTemporaryDirectory("recovery-exists")
        defer { TestSupport.removeDirectory(output) }
        let directory = output + "/" + Self.session
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let part = directory + "/" + Self.partName(sequence: 9, fileExtension: "pcap")
        let finished = String(part.dropLast(FileNaming.partSuffix.count))
        let built = Self.classic(sizes: [10, 20])
        try Self.write(built.bytes.dropLast(1), to: part)
        try Self.write(built.bytes, to: finished)
        let results = Recovery.recoverPartFiles(in: output)
        #expect(results.map(\.action) == [.keptBecauseFinalNameExists(finished)])
        #expect(Self.contents(part) == Array(built.bytes.dropLast(1)))
        #expect(Self.contents(finished) == built.bytes)
    }

    @Test func aMissingOrEmptyOutputDirectoryHasNothingToRecover() throws {
        let output = try TestSupport.makeTemporaryDirectory("recovery-empty")
        defer { TestSupport.removeDirectory(output) }
        #expect(Recovery.recoverPartFiles(in: output).isEmpty)
        #expect(Recovery.recoverPartFiles(in: output + "/does-not-exist").isEmpty)
        try Self.write([1, 2, 3], to: output + "/file-not-directory")
        #expect(Recovery.recoverPartFiles(in: output + "/file-not-directory").isEmpty)
    }
}
