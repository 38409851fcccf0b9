import CollectorCore
import Foundation
import PcapFormat
import Testing

/// Rotation, retention and the accounting law on a 100,000-packet ERSPAN file made by
/// Tests/Fixtures/make_load.py (scapy templates, replicated).
@Suite(.serialized) struct RotationTests {
    struct LoadManifest: Decodable {
        struct Session: Decodable {
            var packets: Int64
            var bytes: Int64
        }
        var packets: Int64
        var sessions: [String: Session]
    }

    static let load: (path: String, manifest: LoadManifest) = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: TestSupport.load100k.manifest))
        return (TestSupport.load100k.path, try! JSONDecoder().decode(LoadManifest.self, from: data))
    }()

    private func replay(_ configure: (inout CollectorConfiguration) -> Void) throws -> (Summary, String) {
        let output = try TestSupport.makeTemporaryDirectory("rotation")
        var configuration = CollectorConfiguration(outputDirectory: output)
        configure(&configuration)
        return (try Replay(inputs: [Self.load.path], configuration: configuration).run(), output)
    }

    @Test func sizeRotationKeepsEveryPacketAndEveryFileUnderTheLimit() throws {
        let limit = 1 << 20
        let (summary, output) = try replay { $0.rotateSize = limit }
        defer { TestSupport.removeDirectory(output) }
        #expect(summary.packetsReceived == 100_000)
        #expect(summary.packetsWritten == 100_000)
        #expect(summary.isConserved)
        #expect(summary.sessions.count == Self.load.manifest.sessions.count)
        for (name, expected) in Self.load.manifest.sessions {
            let session = try #require(summary.sessions.first { $0.name == name })
            #expect(session.packets == expected.packets && session.bytes == expected.bytes && session.lost == 0)
        }
        let files = TestSupport.captureFiles(in: output)
        #expect(files.count == Int(summary.sessions.reduce(0) { $0 + $1.files }))
        #expect(files.count > 8 * 3)
        for file in files {
            let size = try #require(FileManager.default.attributesOfItem(atPath: file)[.size] as? Int)
            #expect(size <= limit, "\(file) is \(size) bytes")
            #expect(!file.hasSuffix(".part"))
        }
        // Names sort in write order: the per-session counter increases with each file.
        for session in summary.sessions {
            let names = TestSupport.captureFiles(in: output + "/" + session.name).map { ($0 as NSString).lastPathComponent }
            let counters = names.map { Int($0.split(separator: "-").last!.split(separator: ".").first!)! }
            #expect(counters == Array(1...names.count))
        }
        let counts = try TestSupport.capinfosPacketCounts(files)
        #expect(counts.values.reduce(0, +) == 100_000)
    }

    @Test func retentionKeepsTheNewestFiles() throws {
        let (summary, output) = try replay {
            $0.rotateSize = 256 << 10
            $0.keepFiles = 3
        }
        defer { TestSupport.removeDirectory(output) }
        #expect(summary.isConserved && summary.packetsWritten == 100_000)
        for session in summary.sessions {
            let names = TestSupport.captureFiles(in: output + "/" + session.name).map { ($0 as NSString).lastPathComponent }
            #expect(names.count == 3)
            let counters = names.map { Int($0.split(separator: "-").last!.split(separator: ".").first!)! }
            #expect(counters == Array((Int(session.files) - 2)...Int(session.files)), "newest three kept")
        }
        // A second run into the same directory continues the numbering and keeps counting old files.
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.rotateSize = 256 << 10
        configuration.keepFiles = 3
        let again = try Replay(inputs: [Self.load.path], configuration: configuration).run()
        for session in again.sessions {
            let names = TestSupport.captureFiles(in: output + "/" + session.name).map { ($0 as NSString).lastPathComponent }
            let counters = names.map { Int($0.split(separator: "-").last!.split(separator: ".").first!)! }
            #expect(counters.first! > Int(session.files), "numbering continued across runs")
            #expect(names.count == 3)
        }
        _ = try TestSupport.capinfosPacketCounts(TestSupport.captureFiles(in: output))
    }

    @Test func timeRotationFollowsPacketTime() throws {
        // At 20,000 packets per second of packet time, 100k packets span 5 seconds.
        let (summary, output) = try replay { $0.rotateIntervalSeconds = 1 }
        defer { TestSupport.removeDirectory(output) }
        #expect(summary.isConserved)
        #expect(TestSupport.captureFiles(in: output).count == 8 * 5)
        for file in TestSupport.captureFiles(in: output) {
            let records = try TestSupport.readPcap(file).records
            let seconds = Set(records.map { $0.timestampNanoseconds / 1_000_000_000 })
            #expect(seconds.count == 1, "\(file) spans \(seconds.count) intervals")
        }
    }

    @Test func pcapngOutputIsReadByTshark() throws {
        let (summary, output) = try replay {
            $0.format = .pcapng
            $0.rotateSize = 4 << 20
        }
        defer { TestSupport.removeDirectory(output) }
        #expect(summary.isConserved && summary.packetsWritten == 100_000)
        let files = TestSupport.captureFiles(in: output)
        #expect(files.allSatisfy { $0.hasSuffix(".pcapng") })
        let counts = try TestSupport.capinfosPacketCounts(files)
        #expect(counts.values.reduce(0, +) == 100_000)
        // The interface block names the session.
        let first = try #require(files.first)
        let result = try TestSupport.run(["tshark", "-r", first, "-c", "1", "-T", "fields", "-e", "frame.interface_name"])
        #expect(result.status == 0)
        let session = (first as NSString).deletingLastPathComponent.split(separator: "/").last.map(String.init) ?? ""
        #expect(result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == session)
    }
}
