import CaptureSystem
import Foundation
import MirrorDecoding
import PcapFormat
import Synchronization
import Testing

@testable import CollectorCore
@testable import PcapStorage

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10, "never wrong, never silent", the storage side: what was counted as written is in a
/// published file, a stop finishes every file, the hook's queue survives a shutdown, recovery
/// touches nothing but our own regular files, and jittering timestamps do not multiply files.
@Suite(.serialized) struct SilentLossTests {
    static let firstTimestamp: UInt64 = 1_700_000_000_000_000_000

    /// The counter `BackPressureTests.erspanFrame` puts into the inner frame.
    static func counter(of record: TestSupport.Record) -> UInt32 {
        record.data[14..<18].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    static func process(_ pipeline: Pipeline, counters: Range<Int>, timestamp: (Int) -> UInt64) {
        for number in counters {
            let frame = BackPressureTests.erspanFrame(id: 1, sequence: UInt32(number), counter: UInt32(number))
            frame.withUnsafeBytes { bytes in
                pipeline.process(bytes, wireLength: bytes.count, timestampNanoseconds: timestamp(number))
            }
        }
    }

    // MARK: Item 10: an output directory deleted under a running session

    @Test(arguments: [StorageConfiguration.Handoff.wait, .drop])
    func deletedOutputDirectoryMovesTheLostFileToDroppedWriteAndComesBack(handoff: StorageConfiguration.Handoff) throws {
        let output = try TestSupport.makeTemporaryDirectory("deleted")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.rotateSize = 100_000
        configuration.bufferSize = StorageConfiguration.minimumBufferSize
        let storage = try Storage(configuration: configuration.storageConfiguration(handoff: handoff))
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])

        // Two files published, a third open with its first frames on disk; then the whole
        // output directory goes, and the session goes on.
        Self.process(pipeline, counters: 0..<250) { Self.firstTimestamp + UInt64($0) * 1000 }
        storage.drainWriters()
        let session = output + "/198.51.100.1-erspan-1"
        #expect(TestSupport.captureFiles(in: session).filter { $0.hasSuffix(".part") }.count == 1)
        // Published before the deletion: written, even if the operator deletes them now.
        let published = TestSupport.captureFiles(in: session).filter { !$0.hasSuffix(".part") }
        #expect(published.count == 2)
        let publishedBefore = try published.reduce(0) { $0 + (try TestSupport.readPcap($1).records.count) }
        try FileManager.default.removeItem(atPath: output)
        Self.process(pipeline, counters: 250..<600) { Self.firstTimestamp + UInt64($0) * 1000 }
        // Deleted again between two files: nothing is lost, the next file makes it again.
        storage.finishAllFiles()
        storage.drainWriters()
        let droppedBefore = pipeline.summary().dropped.write
        let secondFiles = TestSupport.captureFiles(in: output)
        #expect(!secondFiles.isEmpty && !secondFiles.contains { $0.hasSuffix(".part") }, "the directory came back")
        let secondRecords = try secondFiles.flatMap { try TestSupport.readPcap($0).records }
        #expect(secondRecords.contains { Self.counter(of: $0) == 599 }, "the session writes again after the loss")
        let publishedSecond = try TestSupport.capinfosPacketCounts(secondFiles).values.reduce(0, +)
        #expect(publishedSecond == secondRecords.count)
        try FileManager.default.removeItem(atPath: output)
        Self.process(pipeline, counters: 600..<650) { Self.firstTimestamp + UInt64($0) * 1000 }
        storage.close()
        let summary = pipeline.summary()
        #expect(summary.dropped.write == droppedBefore, "no file was open: nothing to lose")

        #expect(summary.packetsReceived == 650)
        #expect(summary.isConserved)
        #expect(summary.dropped.write > 0, "the open file's frames were never published")
        let files = TestSupport.captureFiles(in: output)
        #expect(!files.isEmpty, "the directory is recreated for the next file")
        #expect(!files.contains { $0.hasSuffix(".part") })
        let records = try files.flatMap { try TestSupport.readPcap($0).records }
        #expect(records.count == 50 && records.map { Self.counter(of: $0) } == Array(600..<650).map(UInt32.init))
        #expect(publishedBefore + publishedSecond + records.count == Int(summary.packetsWritten), "written is exactly what was published")
        let counts = try TestSupport.capinfosPacketCounts(files)
        #expect(counts.values.reduce(0, +) == 50)
        let line = try #require(summary.sessions.first)
        #expect(line.packets == summary.packetsWritten && line.droppedWrite == summary.dropped.write)
    }

    // MARK: Item 11: exit statuses and the output directory check

    /// Mounts a tmpfs (`options`) at a fresh directory for the body's lifetime.
    private func withTmpfs<T>(options: String, _ body: (String) throws -> T) throws -> T {
        let mountPoint = try TestSupport.makeTemporaryDirectory("tmpfs")
        let mounted = try TestSupport.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", mountPoint])
        try #require(mounted.status == 0, "mount: \(mounted.standardError)")
        defer {
            _ = try? TestSupport.run(["umount", "-l", mountPoint])
            TestSupport.removeDirectory(mountPoint)
        }
        return try body(mountPoint)
    }

    @Test(.enabled(if: getuid() == 0, "needs root to mount a tmpfs"))
    func replayExitsWithStatus3WhenFramesWereDropped() throws {
        try withTmpfs(options: "size=3m") { output in
            let result = try TestSupport.run([
                TestSupport.collectorBinary, "replay", TestSupport.load100k.path, "--output", output, "--rotate-size", "512K",
                "--json",
            ])
            #expect(result.status == 3, "\(result.standardError)")
            let summary = try JSONDecoder().decode(Summary.self, from: Data(result.standardOutput.utf8))
            #expect(summary.dropped.write > 0 && summary.isConserved)
        }
    }

    @Test(.enabled(if: getuid() == 0, "needs root to mount a tmpfs"))
    func runAndCheckConfigRefuseAnUnwritableOutputDirectory() throws {
        try withTmpfs(options: "size=1m,ro") { output in
            // `timeout`: before the check, run would capture (and drop everything) for ever.
            let run = try TestSupport.run([
                "timeout", "20", TestSupport.collectorBinary, "run", "--interface", "lo", "--output", output,
                "--metrics-listen", "off", "--status-interval", "0",
            ])
            #expect(run.status == 2, "\(run.standardError)")
            #expect(run.standardError.contains(output) && run.standardError.contains("Read-only file system"), "\(run.standardError)")

            let file = try TestSupport.makeTemporaryDirectory("check") + "/collector.toml"
            defer { TestSupport.removeDirectory((file as NSString).deletingLastPathComponent) }
            try Data("output = \"\(output)/captures\"\n".utf8).write(to: URL(fileURLWithPath: file))
            let check = try TestSupport.run([TestSupport.collectorBinary, "check-config", file])
            #expect(check.status == 1, "\(check.standardOutput)")
            #expect(check.standardError.contains("output") && check.standardError.contains(output + "/captures"), "\(check.standardError)")
            #expect(check.standardError.contains("Read-only file system"), "\(check.standardError)")

            // A directory that can be made: OK, and the check leaves nothing behind.
            let scratch = (file as NSString).deletingLastPathComponent
            try Data("output = \"\(scratch)/a/b\"\n".utf8).write(to: URL(fileURLWithPath: file))
            let fine = try TestSupport.run([TestSupport.collectorBinary, "check-config", file])
            #expect(fine.status == 0, "\(fine.standardError)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch) == ["collector.toml"])
        }
    }

    // MARK: Item 12: SIGINT during replay, and replay's crash recovery

    @Test(arguments: [SIGINT, SIGTERM])
    func replayStopsOnSIGINTOrSIGTERMWithEveryFileFinishedAndTheSummary(signal: Int32) throws {
        let output = try TestSupport.makeTemporaryDirectory("sigint")
        defer { TestSupport.removeDirectory(output) }
        let inputs = Array(repeating: TestSupport.load100k.path, count: 60)  // 6M packets: far more than 2 s
        // Wait until files are being written, then interrupt.
        let result = try TestSupport.run(
            [TestSupport.collectorBinary, "replay"] + inputs + ["--output", output, "--rotate-size", "1M", "--json"], timeout: 120
        ) { pid in
            let deadline = Date().addingTimeInterval(60)
            while TestSupport.captureFiles(in: output).filter({ !$0.hasSuffix(".part") }).count < 8, Date() < deadline {
                usleep(50_000)
            }
            kill(pid, signal)
        }
        // `run` reports a child that did not stop within its bound as an issue.
        #expect(result.status == 128 + signal, "\(result.standardError)")
        let summary = try JSONDecoder().decode(Summary.self, from: Data(result.standardOutput.utf8))
        #expect(summary.isConserved)
        #expect(summary.packetsReceived > 0 && summary.packetsReceived < 6_000_000, "stopped early")
        #expect(summary.dropped.total == 0)
        let files = TestSupport.captureFiles(in: output)
        #expect(!files.contains { $0.hasSuffix(".part") }, "every file finished")
        let counts = try TestSupport.capinfosPacketCounts(files)
        #expect(counts.values.reduce(0, +) == Int(summary.packetsWritten))
    }

    @Test func replayRecoversPartFilesLeftInItsOutputDirectory() throws {
        let output = try TestSupport.makeTemporaryDirectory("replay-recovery")
        defer { TestSupport.removeDirectory(output) }
        let session = "198.51.100.9-erspan-3"
        try FileManager.default.createDirectory(atPath: output + "/" + session, withIntermediateDirectories: true)
        let name = FileNaming.fileName(session: session, firstTimestampNanoseconds: Self.firstTimestamp, sequence: 4, fileExtension: "pcap")
        let whole = RecoveryTests.classic(sizes: [60, 70]).bytes
        try RecoveryTests.write(whole.dropLast(5), to: output + "/" + session + "/" + name + ".part")
        let input = TestSupport.fixtures.appendingPathComponent("erspan1_gre_flags.pcap").path
        let summary = try Replay(inputs: [input], configuration: CollectorConfiguration(outputDirectory: output)).run()
        #expect(summary.isConserved)
        #expect(!FileManager.default.fileExists(atPath: output + "/" + session + "/" + name + ".part"))
        #expect(RecoveryTests.contents(output + "/" + session + "/" + name) == Array(whole.prefix(PcapFileHeader.length + 16 + 60)))
    }

    // MARK: Item 13: the post-rotate queue at shutdown

    @Test func hookFilesNotRunAtShutdownAreCountedJournaledAndRunAtTheNextStart() throws {
        let output = try TestSupport.makeTemporaryDirectory("hook-journal")
        defer { TestSupport.removeDirectory(output) }
        let paths = (1...3).map { output + "/file-\($0).pcap" }
        for path in paths { try Data([1]).write(to: URL(fileURLWithPath: path)) }
        let pidFile = output + "/sleeper.pid"
        // A hung hook: its grandchild must go with it when the shutdown wait ends.
        let hung = try PostRotateHook(
            command: "sleep 300 & echo $! > \(pidFile); wait; true", concurrency: 1, journalDirectory: output)
        for path in paths { hung.enqueue(path: path) }
        let started = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: pidFile), Date() < started { usleep(10_000) }
        usleep(100_000)
        hung.finish(timeoutSeconds: 0.5)
        #expect(hung.abandoned.load(ordering: .relaxed) == 3)
        let journal = output + "/" + PostRotateHook.journalName
        let listed = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(listed) == Set(paths))
        let sleeper = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let gone = Date().addingTimeInterval(5)
        func alive(_ pid: Int32) -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
            return !stat.contains(") Z")
        }
        while alive(sleeper), Date() < gone { usleep(10_000) }
        #expect(!alive(sleeper), "the hook's process group is killed")

        // The next start runs them (those still on disk) and clears the journal.
        try FileManager.default.removeItem(atPath: paths[1])
        let log = output + "/ran.log"
        let next = try PostRotateHook(command: "echo \"$1\" >> \(log)", concurrency: 1, journalDirectory: output)
        next.finish(timeoutSeconds: 10)
        #expect(next.abandoned.load(ordering: .relaxed) == 0)
        let ran = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(ran) == [paths[0], paths[2]])
        #expect(!FileManager.default.fileExists(atPath: journal))
    }

    @Test func replayCountsAbandonedHookFilesAndTheNextReplayRunsThem() throws {
        let output = try TestSupport.makeTemporaryDirectory("hook-replay")
        defer { TestSupport.removeDirectory(output) }
        let input = TestSupport.fixtures.appendingPathComponent("erspan2_3_same_session.pcap").path
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.postRotateCommand = "sleep 300; true"
        var replay = Replay(inputs: [input], configuration: configuration)
        replay.hookShutdownTimeoutSeconds = 0.2
        let first = try replay.run()
        let files = TestSupport.captureFiles(in: output)
        #expect(files.count >= 2)
        #expect(first.hook.abandoned == Int64(files.count), "every file's command was queued or killed")
        let journal = try String(contentsOfFile: output + "/" + PostRotateHook.journalName, encoding: .utf8)
        #expect(Set(journal.split(separator: "\n").map(String.init)) == Set(files))

        let log = try TestSupport.makeTemporaryDirectory("hook-log") + "/ran.log"
        defer { TestSupport.removeDirectory((log as NSString).deletingLastPathComponent) }
        configuration.postRotateCommand = "echo \"$1\" >> \(log)"
        let second = try Replay(inputs: [input], configuration: configuration).run()
        #expect(second.hook.abandoned == 0)
        let ran = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(files).isSubset(of: Set(ran)), "the journaled files ran at the next start")
        #expect(ran.count == files.count * 2)
    }

    // MARK: Item 16: recovery and symbolic links

    @Test func recoveryNeverFollowsAPartSymlink() throws {
        let output = try TestSupport.makeTemporaryDirectory("recovery-symlink")
        defer { TestSupport.removeDirectory(output) }
        let session = RecoveryTests.session
        try FileManager.default.createDirectory(atPath: output + "/" + session, withIntermediateDirectories: true)
        let outside = try TestSupport.makeTemporaryDirectory("outside") + "/precious.pcap"
        defer { TestSupport.removeDirectory((outside as NSString).deletingLastPathComponent) }
        let cut = Array(RecoveryTests.classic(sizes: [60, 1]).bytes.dropLast(3))
        try RecoveryTests.write(cut, to: outside)
        let link = output + "/" + session + "/" + RecoveryTests.partName(sequence: 1, fileExtension: "pcap")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: outside)
        let fifo = output + "/" + session + "/" + RecoveryTests.partName(sequence: 2, fileExtension: "pcap")
        #expect(mkfifo(fifo, 0o600) == 0)

        let results = Recovery.recoverPartFiles(in: output)
        #expect(RecoveryTests.contents(outside) == cut, "the file outside was changed")
        #expect(results.count == 2)
        #expect(results.allSatisfy { if case .skipped = $0.action { true } else { false } }, "\(results)")
        #expect(FileManager.default.fileExists(atPath: link) && FileManager.default.fileExists(atPath: fifo))
        #expect(!FileManager.default.fileExists(atPath: String(link.dropLast(5))))
    }

    // MARK: Item 17: timestamps jittering across a rotation boundary

    @Test func jitterAcrossARotationBoundaryMakesTwoFilesNotOnePerFrame() throws {
        let output = try TestSupport.makeTemporaryDirectory("jitter")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.rotateIntervalSeconds = 1
        let storage = try Storage(configuration: configuration.storageConfiguration(handoff: .wait))
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        // 100 frames before the boundary, then 100 where every other one is 1 ms late.
        let boundary = Self.firstTimestamp + 1_000_000_000
        Self.process(pipeline, counters: 0..<200) { number in
            if number < 100 { return boundary - 100_000_000 + UInt64(number) * 1_000_000 }
            return number % 2 == 0 ? boundary + UInt64(number) * 1000 : boundary - 1_000_000
        }
        storage.close()
        let summary = pipeline.summary()
        #expect(summary.isConserved && summary.packetsWritten == 200)
        let files = TestSupport.captureFiles(in: output)
        #expect(files.count == 2, "\(files.count) files")
        let counts = try TestSupport.capinfosPacketCounts(files)
        #expect(files.map { counts[$0] } == [100, 100])
    }
}
