import CaptureSystem
import Foundation
import PcapFormat
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Paths, temporary directories, child processes and pcap reading for the tests.
enum TestSupport {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures")

    /// A fresh directory under /tmp, removed by `removeDirectory`.
    static func makeTemporaryDirectory(_ label: String = "test") throws -> String {
        let path = NSTemporaryDirectory() + "span-collector-\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func removeDirectory(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    struct ProcessResult {
        var status: Int32
        var standardOutput: String
        var standardError: String
    }

    /// Runs a program to completion (bounded by `timeout` seconds, then killed). `whileRunning`
    /// gets its process id once it has started (to signal it, say) while its output is read.
    @discardableResult
    static func run(_ arguments: [String], timeout: Double = 300, whileRunning: ((Int32) -> Void)? = nil) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        nonisolated(unsafe) var outData = Data()
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { outData = readToEnd(out.fileHandleForReading.fileDescriptor) }
        DispatchQueue.global().async(group: group) { errData = readToEnd(err.fileHandleForReading.fileDescriptor) }
        whileRunning?(process.processIdentifier)
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            Issue.record("\(arguments) did not finish in \(timeout) s")
        }
        process.waitUntilExit()
        return ProcessResult(
            status: process.terminationStatus, standardOutput: String(decoding: outData, as: UTF8.self),
            standardError: String(decoding: errData, as: UTF8.self))
    }

    /// A 100,000-packet, 8-session mixed ERSPAN II/III/VXLAN load from make_load.py at 20,000
    /// packets per second of packet time (5 s), written once per test process.
    static let load100k: (path: String, manifest: String) = {
        let directory = try! makeTemporaryDirectory("load")
        let path = directory + "/load.pcap"
        let result = try! run([
            "python3", fixtures.appendingPathComponent("make_load.py").path, path, "--packets", "100000",
            "--sessions", "8", "--type", "mixed", "--rate", "20000", "--manifest", directory + "/load.json",
        ])
        precondition(result.status == 0, result.standardError)
        return (path, directory + "/load.json")
    }()

    /// User + system CPU of a process so far, in clock ticks (/proc/PID/stat fields 14 and 15;
    /// the command name in parentheses may contain spaces, so fields count from its end).
    static func processCPUTicks(_ pid: Int32) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3): utime is field 14, stime field 15.
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
        return user + system
    }

    /// Everything a pipe delivers until it closes. A plain read(2) loop that retries EINTR:
    /// Foundation's readDataToEndOfFile traps when a signal (SIGCHLD from another child)
    /// interrupts it.
    static func readToEnd(_ fd: Int32) -> Data {
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                data.append(contentsOf: chunk[0..<count])
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return data
            }
        }
    }

    /// The collector binary `swift build` made next to the test bundle (whatever the scratch
    /// path, e.g. `--scratch-path .build-config`), else the one in .build.
    static var collectorBinary: String {
        var directories: [URL] = []
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            directories.append(URL(fileURLWithPath: executable).deletingLastPathComponent())
        }
        if let first = CommandLine.arguments.first {
            directories.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        let candidates = directories.map { $0.appendingPathComponent("span-collector").path }
            + [".build/debug/span-collector", ".build/release/span-collector"].map { packageRoot.appendingPathComponent($0).path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[candidates.count - 2]
    }

    struct Record: Equatable {
        var timestampNanoseconds: UInt64
        var wireLength: Int
        var data: [UInt8]
    }

    /// Every record of a classic pcap file, read with our reader (the writer under test
    /// is ours too, so tests also check files with capinfos/tshark, written by others).
    static func readPcap(_ path: String) throws -> (linkType: UInt32, records: [Record]) {
        let mapped = try MappedFile(path: path)
        var reader = try ClassicPcapReader(header: mapped.bytes)
        var records: [Record] = []
        while let record = reader.next(in: mapped.bytes) {
            records.append(
                Record(
                    timestampNanoseconds: record.timestampNanoseconds, wireLength: record.wireLength,
                    data: Array(mapped.bytes[record.dataOffset..<(record.dataOffset + record.capturedLength)])))
        }
        #expect(!reader.endedInsideRecord, "\(path) ends inside a record")
        return (reader.linkType, records)
    }

    /// The link type of a fixture input that is classic pcap, nil for any other format
    /// (pcapng, compressed).
    static func classicPcapLinkType(_ name: String) -> UInt32? {
        guard let handle = FileHandle(forReadingAtPath: fixtures.appendingPathComponent(name).path) else { return nil }
        defer { try? handle.close() }
        let header = [UInt8](handle.readData(ofLength: PcapFileHeader.length))
        return header.withUnsafeBytes { bytes in
            guard ClassicPcapReader.recognizes(bytes) else { return nil }
            return try? ClassicPcapReader(header: bytes).linkType
        }
    }

    /// Every fixture input (not the expected outputs).
    static func fixtureInputs() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: fixtures.path)
            .filter { ($0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng")) && !$0.contains(".expected.") }
            .sorted()
    }

    /// The fixture inputs that are classic pcap of Ethernet frames (what a live interface
    /// delivers): the input-format fixtures (pcapng, cooked captures, raw IP, compressed) are
    /// left out.
    static func ethernetFixtureInputs() throws -> [String] {
        try fixtureInputs().filter { classicPcapLinkType($0) == 1 }
    }

    /// Finished capture files below `directory`, sorted by name (write order per session).
    static func captureFiles(in directory: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return [] }
        return enumerator.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") || $0.hasSuffix(".part") }
            .sorted().map { directory + "/" + $0 }
    }

    /// Packet counts per file according to Wireshark's capinfos; fails the test when capinfos
    /// rejects a file.
    static func capinfosPacketCounts(_ files: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Int] {
        guard !files.isEmpty else { return [:] }
        var counts: [String: Int] = [:]
        // capinfos takes many files per call; keep the argument list reasonable.
        for chunk in stride(from: 0, to: files.count, by: 200).map({ Array(files[$0..<min($0 + 200, files.count)]) }) {
            let result = try run(["capinfos", "-T", "-r", "-c"] + chunk)
            #expect(result.status == 0, "capinfos rejected a file: \(result.standardError)", sourceLocation: sourceLocation)
            for line in result.standardOutput.split(separator: "\n") {
                let fields = line.split(separator: "\t")
                guard fields.count >= 2, let count = Int(fields[fields.count - 1].trimmingCharacters(in: .whitespaces)) else { continue }
                counts[String(fields[0])] = count
            }
        }
        return counts
    }
}
