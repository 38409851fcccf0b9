import CollectorCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Disk retention across sessions and disk faults: a full filesystem (a real, small tmpfs),
/// and a session whose directory cannot be made. The collector keeps going, counts what it
/// could not write as `dropped.write`, and every file it leaves is valid.
@Suite(.serialized) struct DiskTests {
    static var canMount: Bool { getuid() == 0 }

    static var load: String { TestSupport.load100k.path }

    private func totalSize(_ files: [String]) -> Int {
        files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
    }

    @Test func maximumDiskUsageRemovesTheOldestFilesAcrossSessions() throws {
        let output = try TestSupport.makeTemporaryDirectory("maxdisk")
        defer { TestSupport.removeDirectory(output) }
        // Foreign files are never counted or removed.
        try FileManager.default.createDirectory(atPath: output + "/notes", withIntermediateDirectories: true)
        try Data(repeating: 1, count: 4 << 20).write(to: URL(fileURLWithPath: output + "/notes/big.pcap"))
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.rotateSize = 256 << 10
        configuration.maximumDiskUsage = 4 << 20
        let summary = try Replay(inputs: [Self.load], configuration: configuration).run()
        #expect(summary.isConserved && summary.packetsWritten == 100_000)
        let ours = TestSupport.captureFiles(in: output).filter { !$0.contains("/notes/") }
        #expect(totalSize(ours) <= 4 << 20)
        #expect(totalSize(ours) > 3 << 20, "retention removed more than needed")
        #expect(FileManager.default.fileExists(atPath: output + "/notes/big.pcap"))
        // The files left are the newest: every session still has its last file.
        for session in summary.sessions {
            let names = TestSupport.captureFiles(in: output + "/" + session.name).map { ($0 as NSString).lastPathComponent }
            let last = names.compactMap { Int($0.split(separator: "-").last!.split(separator: ".").first!) }.max()
            #expect(last == Int(session.files), "\(session.name) lost its newest file")
        }
        _ = try TestSupport.capinfosPacketCounts(ours)
    }

    /// Mounts a tmpfs of `size` at a fresh directory for the test's lifetime.
    private func withTmpfs<T>(size: String, _ body: (String) throws -> T) throws -> T {
        let mountPoint = try TestSupport.makeTemporaryDirectory("tmpfs")
        let mounted = try TestSupport.run(["mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", mountPoint])
        try #require(mounted.status == 0, "mount: \(mounted.standardError)")
        defer {
            _ = try? TestSupport.run(["umount", "-l", mountPoint])
            TestSupport.removeDirectory(mountPoint)
        }
        return try body(mountPoint)
    }

    @Test(.enabled(if: DiskTests.canMount, "needs root to mount a tmpfs"))
    func fullDiskCountsDroppedWriteAndKeepsEveryFileValid() throws {
        try withTmpfs(size: "3m") { output in
            var configuration = CollectorConfiguration(outputDirectory: output)
            configuration.rotateSize = 512 << 10
            let result = try TestSupport.run([
                TestSupport.collectorBinary, "replay", Self.load, "--output", output, "--rotate-size", "512K", "--json",
            ])
            #expect(result.status == 3, "frames were dropped: \(result.standardError)")
            let summary = try JSONDecoder().decode(Summary.self, from: Data(result.standardOutput.utf8))
            #expect(summary.dropped.write > 0, "a 3 MiB disk cannot hold 40 MiB")
            #expect(summary.packetsWritten > 0)
            #expect(summary.isConserved)
            let files = TestSupport.captureFiles(in: output)
            #expect(!files.contains { $0.hasSuffix(".part") })
            let counts = try TestSupport.capinfosPacketCounts(files)
            #expect(counts.values.reduce(0, +) == Int(summary.packetsWritten), "files hold exactly what was counted as written")
            // Logged once per episode, not once per failed buffer.
            let episodes = result.standardError.split(separator: "\n").filter { $0.contains("session cannot write") }.count
            #expect(episodes >= 1 && episodes < 200)
            _ = configuration
        }
    }

    @Test(.enabled(if: DiskTests.canMount, "needs root to mount a tmpfs"))
    func minimumFreeSpaceMakesRoomOnAFullDisk() throws {
        try withTmpfs(size: "6m") { output in
            let result = try TestSupport.run([
                TestSupport.collectorBinary, "replay", Self.load, "--output", output, "--rotate-size", "256K",
                "--min-free-space", "1M", "--json",
            ])
            #expect(result.status == 0, "\(result.standardError)")
            let summary = try JSONDecoder().decode(Summary.self, from: Data(result.standardOutput.utf8))
            #expect(summary.isConserved)
            #expect(summary.dropped.write == 0, "retention should have made room before the disk filled")
            #expect(summary.packetsWritten == 100_000)
            let files = TestSupport.captureFiles(in: output)
            _ = try TestSupport.capinfosPacketCounts(files)
        }
    }

    @Test func oneUnwritableSessionDoesNotStopTheOthers() throws {
        let output = try TestSupport.makeTemporaryDirectory("unwritable")
        defer { TestSupport.removeDirectory(output) }
        // A plain file where session 198.51.100.1-erspan-2's directory would go: mkdir fails
        // for that session whatever our privileges.
        try Data("in the way".utf8).write(to: URL(fileURLWithPath: output + "/198.51.100.1-erspan-2"))
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.rotateSize = 1 << 20
        let summary = try Replay(inputs: [Self.load], configuration: configuration).run()
        #expect(summary.isConserved)
        let blocked = try #require(summary.sessions.first { $0.name == "198.51.100.1-erspan-2" })
        #expect(blocked.packets == 0 && blocked.droppedWrite > 0)
        #expect(summary.dropped.write == blocked.droppedWrite)
        for session in summary.sessions where session.name != blocked.name {
            #expect(session.droppedWrite == 0 && session.packets > 0, "\(session.name)")
        }
        #expect(summary.packetsWritten + summary.dropped.write == 100_000)
        _ = try TestSupport.capinfosPacketCounts(TestSupport.captureFiles(in: output))
    }
}
