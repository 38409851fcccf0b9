import PcapStorage

/// One numeric setting: its key in the configuration file, the unit it is written in, the
/// values it may take, its default and whether SIGHUP reloads it. The flag is derived from the
/// key (`capture.ring_size` is `--ring-size`).
///
/// The ranges keep every value inside what the code downstream can compute with: seconds
/// become nanoseconds in a UInt64, sizes are multiplied by small factors, counts size arrays.
/// A value outside its range is a configuration problem naming the key, never a trap.
public struct NumericSetting: Sendable {
    public enum Unit: String, Sendable {
        case bytes, seconds, milliseconds, count
    }

    /// The key as written in the file (`rotate_size`, `capture.workers`).
    public let key: String
    public let unit: Unit
    public let range: ClosedRange<Int>
    /// Whether 0 is also accepted, meaning "off" (outside `range`).
    public let zeroTurnsOff: Bool
    /// The default as the documentation writes it ("1G", "300", "none").
    public let defaultText: String
    /// Whether a SIGHUP reload applies a changed value (else it needs a restart).
    public let reloadable: Bool

    init(
        _ key: String, _ unit: Unit, _ range: ClosedRange<Int>, zeroTurnsOff: Bool = false, default defaultText: String,
        reloadable: Bool = false
    ) {
        self.key = key
        self.unit = unit
        self.range = range
        self.zeroTurnsOff = zeroTurnsOff
        self.defaultText = defaultText
        self.reloadable = reloadable
    }

    /// The last component of the key: `workers` for `capture.workers`.
    public var name: String { key.split(separator: ".").last.map(String.init) ?? key }

    /// The command-line flag: `--ring-size`.
    public var flag: String { "--" + name.replacing("_", with: "-") }

    /// The key `CollectorConfiguration.problems()` and `LiveCapture.problems(_:)` report
    /// (the flag without dashes; `ConfigurationFile.fileKey(forFlag:)` maps it back).
    var problemKey: String { name.replacing("_", with: "-") }

    /// Why `value` is not acceptable, or nil when it is.
    public func problem(_ value: Int) -> String? {
        if range.contains(value) || (zeroTurnsOff && value == 0) { return nil }
        let off = zeroTurnsOff ? " (or 0: off)" : ""
        return "must be \(rangeText)\(off), got \(Self.describe(value, unit))"
    }

    /// The range as the documentation writes it: `4K-1T`, `1-31622400 seconds`.
    public var rangeText: String {
        switch unit {
        case .bytes: "\(Self.size(range.lowerBound))-\(Self.size(range.upperBound))"
        case .seconds, .milliseconds, .count:
            "\(range.lowerBound)-\(range.upperBound)\(unit == .count ? "" : " " + unit.rawValue)"
        }
    }

    static func describe(_ value: Int, _ unit: Unit) -> String {
        switch unit {
        case .bytes: "\(value) bytes"
        case .seconds, .milliseconds: "\(value) \(unit.rawValue)"
        case .count: "\(value)"
        }
    }

    /// 4096 → `4K`, 1 << 40 → `1T`; other values in bytes.
    static func size(_ bytes: Int) -> String {
        for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] where bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)"
    }
}

/// Every numeric setting, in one table (docs/OPERATIONS.md, "Configuration reference", lists
/// the same ranges). Flags and the file both end in `CollectorConfiguration.problems()` and
/// `LiveCapture.problems(_:)`, which check every value against this table; `[[session]]`
/// entries use the same entries for their overrides.
public enum NumericSettings {
    /// 366 days: long enough for any rotation or timeout, and `seconds * 1e9` fits a UInt64
    /// with room to add a clock reading.
    static let longestSeconds = 366 * 86_400

    public static let rotateSize = NumericSetting(
        "rotate_size", .bytes, 4096...(1 << 40), zeroTurnsOff: true, default: "1G (run), none (replay)")
    public static let rotateInterval = NumericSetting(
        "rotate_interval", .seconds, 1...longestSeconds, zeroTurnsOff: true, default: "3600 (run), none (replay)")
    public static let keepFiles = NumericSetting("keep_files", .count, 1...1_000_000, default: "none (keep all)")
    public static let bufferSize = NumericSetting(
        "buffer_size", .bytes, StorageConfiguration.minimumBufferSize...(1 << 30), default: "256K")
    /// At least 4 of the smallest buffers; at most 1T here, and at most the host's memory
    /// (checked by `CollectorConfiguration.problems()`).
    public static let maximumBufferMemory = NumericSetting(
        "max_buffer_memory", .bytes, (4 * StorageConfiguration.minimumBufferSize)...(1 << 40), default: "256M")
    public static let maximumDiskUsage = NumericSetting(
        "max_disk_usage", .bytes, (1 << 20)...(1 << 60), default: "none", reloadable: true)
    /// In bytes; a percentage (`5%`) is checked by `FreeSpace.parse`.
    public static let minimumFreeSpace = NumericSetting(
        "min_free_space", .bytes, 0...(1 << 60), default: "10% (run), none (replay)", reloadable: true)
    public static let postRotateConcurrency = NumericSetting("post_rotate_concurrency", .count, 1...64, default: "2")
    public static let maximumSessions = NumericSetting("max_sessions", .count, 1...1_000_000, default: "4096")
    public static let idleTimeout = NumericSetting("idle_timeout", .seconds, 1...longestSeconds, default: "300")

    public static let workers = NumericSetting("capture.workers", .count, 1...64, default: "half the cores, at most 8")
    public static let ringSize = NumericSetting("capture.ring_size", .bytes, (8 << 10)...(1 << 36), default: "64M")
    public static let blockSize = NumericSetting("capture.block_size", .bytes, 4096...(1 << 30), default: "256K")
    public static let blockTimeout = NumericSetting("capture.block_timeout", .milliseconds, 1...10_000, default: "64")
    public static let writerThreads = NumericSetting("capture.writer_threads", .count, 1...16, default: "1")
    public static let queueDepth = NumericSetting("capture.queue_depth", .count, 2...65_536, default: "256")
    public static let statusInterval = NumericSetting(
        "capture.status_interval", .seconds, 1...86_400, zeroTurnsOff: true, default: "10")

    /// A `[[session]]` entry's overrides: the global ranges, without "0: off" (an entry that
    /// leaves a key out already takes the global value).
    public static let sessionRotateSize = NumericSetting("rotate_size", .bytes, rotateSize.range, default: "the global value")
    public static let sessionRotateInterval = NumericSetting(
        "rotate_interval", .seconds, rotateInterval.range, default: "the global value")
    public static let sessionKeepFiles = NumericSetting("keep_files", .count, keepFiles.range, default: "the global value")

    public static let all: [NumericSetting] = [
        rotateSize, rotateInterval, keepFiles, bufferSize, maximumBufferMemory, maximumDiskUsage, minimumFreeSpace,
        postRotateConcurrency, maximumSessions, idleTimeout, workers, ringSize, blockSize, blockTimeout, writerThreads,
        queueDepth, statusInterval,
    ]

    /// Appends a problem when `value` is set and out of range.
    static func check(_ setting: NumericSetting, _ value: Int?, into problems: inout [ConfigurationProblem]) {
        guard let value, let message = setting.problem(value) else { return }
        problems.append(.init(key: setting.problemKey, message: message))
    }
}
