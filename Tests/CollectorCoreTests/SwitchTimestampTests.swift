import CollectorCore
import Foundation
import MirrorDecoding
import PcapStorage
import Testing

/// ERSPAN III switch timestamps as record times (opt-in per exporter), with the plausibility
/// gate falling back to the receive time.
@Suite struct SwitchTimestampTests {
    /// ERSPAN III from 198.51.100.1 with `timestamp`, `granularity` and an optional Platf 5
    /// sub-header carrying `seconds`.
    static func erspan3(timestamp: UInt32, granularity: UInt8, seconds: UInt32? = nil, sequence: UInt32) -> [UInt8] {
        var erspan: [UInt8] = [0x20, 0x00, 0x00, 0x09]  // Ver 2, session 9
        erspan += withUnsafeBytes(of: timestamp.bigEndian) { Array($0) }
        erspan += [0, 0]  // SGT
        erspan += [0x00, (granularity & 3) << 1 | (seconds == nil ? 0 : 1)]  // FT 0, Gra, O
        if let seconds { erspan += [0x14, 0, 0, 0] + withUnsafeBytes(of: seconds.bigEndian) { Array($0) } }  // Platf 5
        let inner: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xB5] + [UInt8](repeating: 7, count: 46)
        let gre: [UInt8] = [0x10, 0x00, 0x22, 0xEB] + withUnsafeBytes(of: sequence.bigEndian) { Array($0) }
        let total = 20 + gre.count + erspan.count + inner.count
        var frame: [UInt8] = [2, 0, 0, 0, 0, 0xBB, 2, 0, 0, 0, 0, 0xAA, 0x08, 0x00]
        frame += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 47, 0, 0, 198, 51, 100, 1, 198, 51, 100, 2]
        return frame + gre + erspan + inner
    }

    private func recordTimes(mode: String, frames: [([UInt8], UInt64)]) throws -> (times: [UInt64], summary: Summary) {
        let output = try TestSupport.makeTemporaryDirectory("switchtime")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        if mode != "default" { configuration.switchTimestamps.rules = [SwitchTimestampPolicy.parseEntry("198.51.100.0/24=\(mode)")!] }
        let storage = try Storage(configuration: StorageConfiguration(directory: output))
        let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["test"])
        for (frame, receive) in frames {
            frame.withUnsafeBytes { pipeline.process($0, wireLength: $0.count, timestampNanoseconds: receive) }
        }
        storage.close()
        let times = try TestSupport.captureFiles(in: output).flatMap { try TestSupport.readPcap($0).records.map(\.timestampNanoseconds) }
        return (times, pipeline.summary())
    }

    @Test func unix100usReconstructsTheUpperBitsFromTheReceiveTime() throws {
        let receive: UInt64 = 1_700_000_000_123_456_789
        let switchTicks = receive / 100_000 - 5  // the switch stamped it 0.5 ms earlier
        let frame = Self.erspan3(timestamp: UInt32(truncatingIfNeeded: switchTicks), granularity: 0, sequence: 1)
        let far = Self.erspan3(timestamp: UInt32(truncatingIfNeeded: switchTicks + 1_000_000), granularity: 0, sequence: 2)  // +100 s
        let (times, summary) = try recordTimes(mode: "unix100us", frames: [(frame, receive), (far, receive + 1000)])
        #expect(times == [switchTicks * 100_000, receive + 1000], "the second is implausible: receive time kept")
        #expect(summary.anomalies["erspan_ts_implausible"] == 1)
    }

    @Test func ptpUsesPlatformSecondsAndSubtractsTAI() throws {
        let receive: UInt64 = 1_700_000_001_000_000_000
        let frame = Self.erspan3(timestamp: 999_999_999, granularity: 2, seconds: 1_700_000_037, sequence: 1)
        let (times, _) = try recordTimes(mode: "ptp", frames: [(frame, receive)])
        #expect(times == [1_700_000_000_999_999_999])
    }

    @Test func receiveTimeIsTheDefault() throws {
        let receive: UInt64 = 1_700_000_000_000_000_042
        let frame = Self.erspan3(timestamp: 12345, granularity: 0, sequence: 1)
        let (times, summary) = try recordTimes(mode: "default", frames: [(frame, receive)])
        #expect(times == [receive] && summary.anomalies["erspan_ts_implausible"] == 0)
    }

    /// The scapy fixture erspan3_switch_time: record times from the switch clock as the
    /// generator computed them (Linux-style 100 us ticks, PTP with Platf 0x5 seconds), one
    /// implausible value kept at its receive time.
    @Test func scapyFixtureRecordTimesFollowTheSwitchClock() throws {
        struct Expectation: Decodable {
            var rules: [String]
            var recordTimesNs: [String: [String]]
            var implausible: Int64
            enum CodingKeys: String, CodingKey {
                case rules, implausible
                case recordTimesNs = "record_times_ns"
            }
        }
        struct Entry: Decodable {
            var switchTimes: Expectation?
            enum CodingKeys: String, CodingKey { case switchTimes = "switch_times" }
        }
        struct Manifest: Decodable { var fixtures: [String: Entry] }
        let data = try Data(contentsOf: TestSupport.fixtures.appendingPathComponent("expected.json"))
        let expected = try #require(try JSONDecoder().decode(Manifest.self, from: data).fixtures["erspan3_switch_time"]?.switchTimes)

        let output = try TestSupport.makeTemporaryDirectory("switchfixture")
        defer { TestSupport.removeDirectory(output) }
        var configuration = CollectorConfiguration(outputDirectory: output)
        configuration.switchTimestamps.rules = expected.rules.compactMap(SwitchTimestampPolicy.parseEntry)
        let input = TestSupport.fixtures.appendingPathComponent("erspan3_switch_time.pcap").path
        let summary = try Replay(inputs: [input], configuration: configuration).run()
        #expect(summary.anomalies["erspan_ts_implausible"] == expected.implausible)
        for (session, times) in expected.recordTimesNs {
            let records = try TestSupport.captureFiles(in: output + "/" + session).flatMap { try TestSupport.readPcap($0).records }
            #expect(records.map(\.timestampNanoseconds) == times.compactMap(UInt64.init), "\(session)")
        }
    }
}
