import CaptureSystem
import Foundation
import MirrorDecoding
import PcapStorage
import Testing

@testable import CollectorCore

/// Generated configuration files (issue 10, item 20): the values that once crashed the
/// collector (`idle_timeout = 18446744074`, `buffer_size = 9223372036854775807`) were accepted
/// by check-config and trapped later, in arithmetic on the accepted value. The libFuzzer target
/// (scripts/fuzz.sh) does not build the TOML parser, so this test is the configuration's fuzzer:
/// thousands of files made of every key with edge values, wrong types, random nesting and byte
/// mutations of the shipped example, each parsed, checked, turned into the storage and capture
/// settings the collector derives from it, and, when accepted, used for a real replay. A trap
/// anywhere ends the test process: the run fails loudly, with the seed and the text printed
/// first. Deterministic (a fixed seed), so a failure reproduces.
@Suite struct ConfigurationFuzzTests {
    /// SplitMix64: small, deterministic, good enough to pick test values.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    }

    /// Values at and around every boundary the code computes with: 32/64-bit limits, seconds
    /// whose nanoseconds overflow, sizes with suffixes, negative and fractional numbers.
    static let integers: [String] = [
        "0", "1", "-1", "2", "3", "7", "63", "64", "255", "4095", "4096", "4097", "65535", "65536", "131072", "262144",
        "1048576", "2147483647", "2147483648", "4294967295", "4294967296", "18446744074", "31622400", "31622401",
        "9223372036854775807", "-9223372036854775808", "1099511627776", "1099511627777", "281474976710656",
    ]
    static let sizes: [String] = [
        "\"4K\"", "\"0K\"", "\"1M\"", "\"64M\"", "\"1G\"", "\"1T\"", "\"2T\"", "\"16E\"", "\"9999999999999G\"", "\"-1K\"", "\"1.5M\"",
        "\"K\"", "\"\"", "\"256K\"", "\"5%\"", "\"0%\"", "\"100%\"", "\"101%\"", "\"-5%\"", "\"99.9%\"", "\"1e3\"",
        "\"18446744073709551615\"", "\"9223372036854775807K\"",
    ]
    static let others: [String] = [
        "true", "false", "1.5", "-0.0", "1e308", "nan", "inf", "\"text\"", "\"\"", "[]", "[1, 2]", "[\"a\"]", "{}",
        "{ a = 1 }", "1979-05-27T07:32:00Z", "\"198.51.100.0/24\"", "[\"198.51.100.0/24\", \"2001:db8::/32\"]",
        "[\"198.51.100.1/32=II\"]", "[\"0.0.0.0/0=unix100us\"]", "[\"198.51.100.0/24=bogus\"]", "[4789, 4789]",
        "[0]", "[65536]", "[6081]", "[4790, 6081]", "\"pcapng\"", "\"pcap\"", "\"127.0.0.1:0\"", "\"off\"", "\"lo\"",
        "[\"lo\"]", "\"udp\"", "\"not ( a filter\"",
    ]

    static func value(_ random: inout Generator) -> String {
        switch random.below(10) {
        case 0...3: random.pick(integers)
        case 4...6: random.pick(sizes)
        default: random.pick(others)
        }
    }

    /// A file of random keys (known ones mostly, some unknown), random values, a `[capture]`
    /// table and `[[session]]` entries.
    static func document(_ random: inout Generator) -> String {
        var lines: [String] = []
        for _ in 0..<random.below(12) {
            let key = random.chance(95) ? random.pick(ConfigurationFile.topLevelKeys.filter { $0 != "capture" && $0 != "session" }) : "bogus_key"
            if key == "output" || key == "post_rotate_command" { continue }  // the test chooses those
            lines.append("\(key) = \(value(&random))")
        }
        if random.chance(60) {
            lines.append("[capture]")
            for _ in 0..<random.below(8) { lines.append("\(random.pick(ConfigurationFile.captureKeys)) = \(value(&random))") }
        }
        for _ in 0..<random.below(4) {
            lines.append("[[session]]")
            for _ in 0..<random.below(7) {
                let key = random.pick(ConfigurationFile.sessionKeys)
                let text: String
                switch key {
                case "name": text = random.pick(["\"edge\"", "\"a/b\"", "\"..\"", "\"\"", "\"x\"", "1"])
                case "transport": text = random.pick(["\"erspan\"", "\"erspan1\"", "\"gre\"", "\"vxlan\"", "\"geneve\"", "\"rspan\"", "\"bogus\""])
                case "exporter": text = random.pick(["\"198.51.100.1\"", "\"198.51.100.1/24\"", "\"2001:db8::1/128\"", "\"::/0\"", "\"x\""])
                default: text = value(&random)
                }
                lines.append("\(key) = \(text)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The shipped example with every setting switched on, then a few bytes changed.
    static func mutatedExample(_ random: inout Generator, example: [UInt8]) -> String {
        var bytes = example
        for _ in 0..<(1 + random.below(6)) where !bytes.isEmpty {
            let at = random.below(bytes.count)
            switch random.below(4) {
            case 0: bytes[at] = UInt8(truncatingIfNeeded: random.next())
            case 1: bytes.remove(at: at)
            case 2: bytes.insert(random.pick(Array("9=[]\"#\n.-".utf8)), at: at)
            default: bytes.insert(contentsOf: Array(random.pick(integers).utf8), at: at)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Found by the generator below: toml++ asserts that a table header's first character
    /// starts a key, so `[#` (a comment after the bracket) aborted check-config and would have
    /// killed a running collector on SIGHUP. Now a problem with its line.
    @Test func aTableHeaderWithoutANameIsAProblemNotAnAbort() throws {
        for (text, line) in [("[# comment\n", 1), ("format = \"pcap\"\n[\n", 2), ("\n\n  [[ #\n", 3), ("[ \t=\n", 1), ("[\u{e9}]\n", 1)] {
            do {
                _ = try ConfigurationFile.parse(text: text)
                Issue.record("accepted: \(text.debugDescription)")
            } catch {
                #expect(error.problems.map(\.key) == ["syntax"], "\(text.debugDescription): \(error)")
                #expect(error.problems.first?.line == line, "\(text.debugDescription): \(error)")
            }
        }
        // Headers that are fine stay fine.
        let loaded = try ConfigurationFile.parse(text: "[ capture ]\nworkers = 2\n[[ session ]]\nname = \"a\"\nexporter = \"198.51.100.1\"\n")
        #expect(loaded.capture.workers == 2)
        // The command itself: exit 1 with the message, not SIGABRT (exit 134).
        let directory = try TestSupport.makeTemporaryDirectory("header")
        defer { TestSupport.removeDirectory(directory) }
        try "[# x\n".write(toFile: directory + "/bad.toml", atomically: true, encoding: .utf8)
        let result = try TestSupport.run([TestSupport.collectorBinary, "check-config", directory + "/bad.toml"], timeout: 60)
        #expect(result.status == 1, "\(result.status): \(result.standardError)")
        #expect(result.standardError.contains("bad.toml:1: syntax: a line starting with '['"), "\(result.standardError)")
    }

    @Test func generatedConfigurationsNeverTrap() throws {
        let example = Array(try ConfigurationTests.uncommentedExample().utf8)
        let input = TestSupport.fixtures.appendingPathComponent("mixed_sessions.pcap").path
        let records = try TestSupport.readPcap(input).records
        let output = try TestSupport.makeTemporaryDirectory("config-fuzz")
        defer { TestSupport.removeDirectory(output) }

        var random = Generator(state: 0x5EED_C0F1_6000_0010)
        var (parsed, accepted, replayed) = (0, 0, 0)
        for iteration in 0..<3_000 {
            let text = random.chance(70) ? Self.document(&random) : Self.mutatedExample(&random, example: example)
            // CONFIG_FUZZ_TRACE=FILE keeps the text being tried there: after a trap, the culprit.
            if let trace = ProcessInfo.processInfo.environment["CONFIG_FUZZ_TRACE"] {
                try text.write(toFile: trace, atomically: false, encoding: .utf8)
            }
            let loaded: LoadedConfiguration
            do {
                loaded = try ConfigurationFile.parse(text: text, path: "fuzz-\(iteration).toml")
            } catch {
                #expect(!error.problems.isEmpty, "refused without a problem:\n\(text)")
                for problem in error.problems { #expect(!problem.key.isEmpty && !problem.message.isEmpty, "\(problem) for:\n\(text)") }
                continue
            }
            parsed += 1
            _ = loaded.warningLines
            var configuration = loaded.configuration
            configuration.outputDirectory = output + "/\(iteration)"
            configuration.postRotateCommand = nil
            var run = configuration
            run.applyServiceDefaults()
            guard configuration.problems().isEmpty, run.problems().isEmpty, LiveCapture.problems(loaded.capture).isEmpty else { continue }
            accepted += 1
            // What the collector derives from an accepted configuration.
            _ = configuration.storageConfiguration(handoff: .wait)
            _ = run.storageConfiguration(handoff: .drop)
            for soft in [64, 1024, 1 << 20] {
                let figures = DescriptorLimit.Figures(soft: soft, hard: soft, open: 12)
                let capacity = LiveCapture.sessionCapacity(descriptors: figures, configuration: run, options: loaded.capture, interfaces: 2)
                #expect(capacity.perWorker >= 1 && capacity.perWorker <= run.maximumSessions)
            }
            // A real replay, for the accepted files whose buffers are small enough for a test.
            guard configuration.bufferSize <= 4 << 20, configuration.maximumBufferMemory <= 256 << 20, replayed < 150 else { continue }
            replayed += 1
            let storage = try Storage(configuration: configuration.storageConfiguration(handoff: .wait))
            let pipeline = Pipeline(configuration: configuration, storage: storage, interfaceNames: ["replay"])
            for record in records {
                record.data.withUnsafeBytes { bytes in
                    pipeline.process(bytes, wireLength: record.wireLength, timestampNanoseconds: record.timestampNanoseconds)
                }
            }
            pipeline.finishReassembly()
            storage.close()
            let summary = pipeline.summary()
            #expect(summary.isConserved, "the law does not hold with:\n\(text)")
            #expect(summary.packetsReceived == Int64(records.count))
            TestSupport.removeDirectory(configuration.outputDirectory)
        }
        // The generator must reach every stage, or the test proves little.
        #expect(parsed > 500, "parsed \(parsed)")
        #expect(accepted > 100, "accepted \(accepted)")
        #expect(replayed > 50, "replayed \(replayed)")
    }
}
