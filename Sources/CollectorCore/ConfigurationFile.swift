import CaptureSystem
import MirrorDecoding
import PcapFormat
internal import TOMLKit

/// The configuration file (`config/span-collector.toml` is the annotated example): every
/// setting the flags have, plus named sessions. Loading reports every problem at once, each
/// with its key (`rotate_size`, `capture.workers`, `session[2].name`) and, where it can, its
/// line; a file with any problem is not used.
public enum ConfigurationFile {
    /// Where `run` looks when no `--config` is given (used only when it exists).
    public static let defaultPath = "/etc/span-collector/span-collector.toml"

    /// Larger than any sensible configuration; bounds what a mistaken path can cost.
    static let maximumSize = 1 << 20

    /// Keys of the top-level table.
    public static let topLevelKeys = [
        "output", "format", "rotate_size", "rotate_interval", "keep_files", "rspan_vlans", "vxlan_ports",
        "vxlan_gpe_ports", "geneve_ports",
        "allow_exporters", "buffer_size", "max_buffer_memory", "max_disk_usage", "min_free_space",
        "post_rotate_command", "post_rotate_concurrency", "max_sessions", "idle_timeout", "drop_duplicates", "force_erspan_type", "erspan_timestamps", "metrics_listen", "accept_unknown_sessions", "capture", "session",
    ]
    /// Keys of the `[capture]` table.
    public static let captureKeys = [
        "interfaces", "workers", "ring_size", "block_size", "block_timeout", "writer_threads", "queue_depth", "filter",
        "status_interval",
    ]
    /// Keys of a `[[session]]` entry.
    public static let sessionKeys = [
        "name", "transport", "exporter", "id", "interface", "rotate_size", "rotate_interval", "keep_files",
    ]

    /// Reads and validates the file at `path`.
    public static func load(path: String) throws(ConfigurationFileError) -> LoadedConfiguration {
        let bytes: [UInt8]
        do {
            bytes = try SmallFile.read(path, limit: maximumSize)
        } catch {
            let reason =
                switch error {
                case .notFound: "no such file"
                case .isDirectory: "is a directory"
                case .notRegular(let kind): "is \(kind), not a regular file"
                case .tooLarge(let size, let limit): "is larger than \(limit >> 20) MiB (\(size) bytes)"
                case .cannotRead(let error): "cannot read: \(error)"
                }
            throw .unreadable(path: path, reason: reason)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .unreadable(path: path, reason: "is not UTF-8 text")
        }
        return try parse(text: text, path: path)
    }

    /// Parses and validates a configuration given as text; `path` only names it in errors.
    public static func parse(text: String, path: String = "<config>") throws(ConfigurationFileError) -> LoadedConfiguration {
        let lines = KeyLines(text)
        if let nul = text.utf8.firstIndex(of: 0) {
            let line = text.utf8[..<nul].reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            throw .invalid(path: path, problems: [.init(key: "syntax", message: "the file contains a NUL byte", line: line)])
        }
        if let line = malformedTableHeaderLine(text) {
            throw .invalid(path: path, problems: [
                .init(key: "syntax", message: "a line starting with '[' needs a table name after it ([capture], [[session]])", line: line)
            ])
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let line = error.source.begin.line
            let key = lines.key(onLine: line).flatMap { $0.isEmpty ? nil : $0 } ?? "syntax"
            throw .invalid(path: path, problems: [.init(key: key, message: "TOML syntax: \(error.description)", line: line)])
        } catch {
            throw .invalid(path: path, problems: [.init(key: "syntax", message: "TOML syntax: \(error)")])
        }
        var reader = Reader(lines: lines)
        let loaded = reader.read(root, path: path)
        let problems = reader.problems + reader.semanticProblems(loaded)
        guard problems.isEmpty else {
            throw .invalid(path: path, problems: problems.enumerated().sorted { a, b in
                // By line (problems without one last), then in the order found.
                (a.element.line ?? .max, a.offset) < (b.element.line ?? .max, b.offset)
            }.map(\.element))
        }
        var result = loaded
        result.warnings = loaded.configuration.warnings()
        return result
    }

    /// The first line that opens a table header (`[`, or `[[`, after optional blanks) without
    /// a key after it. toml++ (inside TOMLKit) asserts that a header's first character starts
    /// a key, and aborts the process on `[#` or `[` alone (found by ConfigurationFuzzTests;
    /// release builds too), so such lines are refused before it sees them. A line of a
    /// multi-line array that starts with `[{` is refused too: no setting takes one.
    static func malformedTableHeaderLine(_ text: String) -> Int? {
        func isKeyStart(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "]"):
                true
            default: false
            }
        }
        for (index, line) in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            var rest = line.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            guard rest.first == UInt8(ascii: "[") else { continue }
            rest = rest.dropFirst().drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            if rest.first == UInt8(ascii: "[") { rest = rest.dropFirst().drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") } }
            guard let first = rest.first, isKeyStart(first) else { return index + 1 }
        }
        return nil
    }

    /// The configuration-file key for a key `CollectorConfiguration.problems()` or
    /// `LiveCapture.problems(_:)` reports (they name the flags).
    static func fileKey(forFlag key: String) -> String {
        switch key {
        case "rspan-vlan": "rspan_vlans"
        case "vxlan-port": "vxlan_ports"
        case "vxlan-gpe-port": "vxlan_gpe_ports"
        case "geneve-port": "geneve_ports"
        case "allow-exporter": "allow_exporters"
        case "interface": "capture.interfaces"
        case "workers", "ring-size", "block-size", "block-timeout", "writer-threads", "queue-depth", "filter",
            "status-interval":
            "capture." + key.replacing("-", with: "_")
        default: key.hasPrefix("session[") ? key : key.replacing("-", with: "_")
        }
    }
}

/// A configuration file as loaded: the settings (defaults where the file is silent) and which
/// keys it set, so that flags override exactly those.
public struct LoadedConfiguration: Sendable {
    public var path: String
    /// Everything but the capture settings. `outputDirectory` is empty when the file has no
    /// `output` (see `outputDirectory` below).
    public var configuration: CollectorConfiguration
    /// The `[capture]` settings.
    public var capture: LiveCapture.Options
    /// `capture.ring_size` in bytes (`capture.ring` holds it as a block count).
    public var ringSize: Int
    /// Keys the file set, as written there: `rotate_size`, `capture.workers`, `session`.
    public var setKeys: Set<String>
    /// Line of each key, for messages about values that came from the file.
    public var keyLines: [String: Int]
    /// What is valid but probably not meant (`CollectorConfiguration.warnings()`).
    public var warnings: [ConfigurationProblem] = []

    /// One line per warning: `PATH:LINE: KEY: warning: message`.
    public var warningLines: [String] {
        warnings.map { warning in
            let location = warning.line.map { "\(path):\($0)" } ?? path
            return "\(location): \(warning.key): warning: \(warning.message)"
        }
    }

    /// The file's `output`, or nil when it has none (the command's default applies).
    public var outputDirectory: String? { isSet("output") ? configuration.outputDirectory : nil }

    public func isSet(_ key: String) -> Bool { setKeys.contains(key) }

    /// `PATH:LINE` of a key, or `PATH` when its line is not known.
    public func location(of key: String) -> String {
        keyLines[key].map { "\(path):\($0)" } ?? path
    }
}

/// Why a configuration file cannot be used.
public enum ConfigurationFileError: Error, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    /// Every problem found, sorted by line.
    case invalid(path: String, problems: [ConfigurationProblem])

    public var path: String {
        switch self {
        case .unreadable(let path, _), .invalid(let path, _): path
        }
    }

    /// The problems (one for an unreadable file, with the key `file`).
    public var problems: [ConfigurationProblem] {
        switch self {
        case .unreadable(_, let reason): [.init(key: "file", message: reason)]
        case .invalid(_, let problems): problems
        }
    }

    /// One line per problem, compiler style: `PATH:LINE: KEY: message` (`PATH: KEY: message`
    /// when the line is not known; `PATH: reason` for an unreadable file).
    public var lines: [String] {
        switch self {
        case .unreadable(let path, let reason): ["\(path): \(reason)"]
        case .invalid(let path, let problems):
            problems.map { problem in
                let location = problem.line.map { "\(path):\($0)" } ?? path
                return "\(location): \(problem.key): \(problem.message)"
            }
        }
    }

    public var description: String { lines.joined(separator: "\n") }
}

// MARK: - Reading the TOML tree

/// Reads the parsed tree into a configuration, collecting every problem.
private struct Reader {
    let lines: KeyLines
    var problems: [ConfigurationProblem] = []
    var setKeys: Set<String> = []

    init(lines: KeyLines) {
        self.lines = lines
    }

    mutating func problem(_ key: String, _ message: String) {
        problems.append(.init(key: key, message: message, line: lines.line(for: key)))
    }

    /// Whether reading already reported `key`, or the table entry it belongs to.
    func hasProblem(at key: String) -> Bool {
        problems.contains { $0.key == key || key.hasPrefix($0.key + ".") }
    }

    mutating func read(_ root: TOMLTable, path: String) -> LoadedConfiguration {
        var configuration = CollectorConfiguration(outputDirectory: "")
        var capture = LiveCapture.Options()
        var ringSize = capture.ring.ringSize

        for key in root.keys {
            guard let value = root[key] else { continue }
            setKeys.insert(key)
            switch key {
            case "output":
                if let text = string(value, key) { configuration.outputDirectory = text }
            case "format":
                if let text = string(value, key) {
                    if let format = CaptureFileFormat(rawValue: text) {
                        configuration.format = format
                    } else {
                        problem(key, "'\(text)' is not a format (pcap or pcapng)")
                    }
                }
            case "rotate_size": configuration.rotateSize = size(value, key)
            case "rotate_interval": configuration.rotateIntervalSeconds = integer(value, key)
            case "keep_files": configuration.keepFiles = integer(value, key)
            case "rspan_vlans":
                configuration.rspanVLANs = integers(value, key, in: 0...65535, what: "a VLAN ID (1-4094)").map { UInt16($0) }
            case "vxlan_ports":
                configuration.vxlanPorts = integers(value, key, in: 1...65535, what: "a UDP port (1-65535)").map { UInt16($0) }
            case "vxlan_gpe_ports":
                configuration.vxlanGPEPorts = integers(value, key, in: 1...65535, what: "a UDP port (1-65535)").map { UInt16($0) }
            case "geneve_ports":
                configuration.genevePorts = integers(value, key, in: 1...65535, what: "a UDP port (1-65535)").map { UInt16($0) }
            case "allow_exporters":
                configuration.allowedExporters = strings(value, key).compactMap { text in
                    guard let prefix = IPPrefix(text) else {
                        problem(key, "'\(text)' is not an address or prefix (e.g. 198.51.100.0/24, 2001:db8::/32)")
                        return nil
                    }
                    return prefix
                }
            case "erspan_timestamps":
                configuration.switchTimestamps.rules = entries(
                    value, key, parse: SwitchTimestampPolicy.parseEntry, form: "CIDR=receive|relative|ptp|unix100us")
            case "force_erspan_type":
                configuration.forcedERSPANTypes = entries(
                    value, key, parse: ClassifierOverrides.parseEntry, form: "CIDR=I|II|III (e.g. 198.51.100.7/32=I)")
            case "buffer_size": if let bytes = size(value, key) { configuration.bufferSize = bytes }
            case "max_buffer_memory": if let bytes = size(value, key) { configuration.maximumBufferMemory = bytes }
            case "max_disk_usage": configuration.maximumDiskUsage = size(value, key)
            case "min_free_space":
                if let bytes = value.int {
                    if bytes < 0 { problem(key, "must not be negative") } else { configuration.minimumFreeSpace = .bytes(bytes) }
                } else if let text = string(value, key, expected: "a size (string or integer) or a percentage") {
                    if let space = FreeSpace.parse(text) {
                        configuration.minimumFreeSpace = space
                    } else {
                        problem(key, "'\(text)' is not a size or a percentage below 100 (examples: 10G, 5%)")
                    }
                }
            case "post_rotate_command": configuration.postRotateCommand = string(value, key)
            case "post_rotate_concurrency":
                if let count = integer(value, key) { configuration.postRotateConcurrency = count }
            case "max_sessions":
                if let count = integer(value, key) { configuration.maximumSessions = count }
            case "idle_timeout":
                if let seconds = integer(value, key) { configuration.idleTimeoutSeconds = seconds }
            case "drop_duplicates":
                if let flag = bool(value, key) { configuration.dropDuplicates = flag }
            case "metrics_listen":
                if let text = string(value, key) { configuration.metricsListen = text == "off" ? nil : text }
            case "accept_unknown_sessions":
                if let flag = bool(value, key) { configuration.acceptUnknownSessions = flag }
            case "capture":
                guard let table = value.table else {
                    problem(key, "must be a table ([capture]), found \(describe(value.type))")
                    continue
                }
                readCapture(table, into: &capture, ringSize: &ringSize)
            case "session":
                configuration.sessionRules = readSessions(value)
            default:
                unknown(key, known: ConfigurationFile.topLevelKeys)
            }
        }
        if capture.ring.blockSize > 0 { capture.ring.blockCount = ringSize / capture.ring.blockSize }
        return LoadedConfiguration(
            path: path, configuration: configuration, capture: capture, ringSize: ringSize, setKeys: setKeys,
            keyLines: lines.lines)
    }

    mutating func readCapture(_ table: TOMLTable, into capture: inout LiveCapture.Options, ringSize: inout Int) {
        for name in table.keys {
            guard let value = table[name] else { continue }
            let key = "capture." + name
            setKeys.insert(key)
            switch name {
            case "interfaces":
                capture.interfaces = strings(value, key)
                for interface in capture.interfaces where interface.isEmpty || interface.utf8.count > 15 || interface.contains("/") {
                    problem(key, "'\(interface)' is not an interface name")
                }
            case "workers": if let count = integer(value, key) { capture.workers = count }
            case "ring_size":
                if let bytes = size(value, key) {
                    // Checked as written: the ring itself is a whole number of blocks.
                    if let message = NumericSettings.ringSize.problem(bytes) { problem(key, message) } else { ringSize = bytes }
                }
            case "block_size": if let bytes = size(value, key) { capture.ring.blockSize = bytes }
            case "block_timeout":
                if let milliseconds = integer(value, key) { capture.ring.retireTimeoutMilliseconds = milliseconds }
            case "writer_threads": if let count = integer(value, key) { capture.writerThreads = count }
            case "queue_depth": if let count = integer(value, key) { capture.queueDepth = count }
            case "filter": capture.filter = string(value, key)
            case "status_interval":
                if let seconds = integer(value, key) { capture.statusIntervalSeconds = seconds }
            default:
                unknown(key, known: ConfigurationFile.captureKeys.map { "capture." + $0 })
            }
        }
    }

    mutating func readSessions(_ value: any TOMLValueConvertible) -> [SessionRule] {
        guard let array = value.array else {
            let hint = value.type == .table ? ": write [[session]] (two brackets) for each session" : ""
            problem("session", "must be an array of tables ([[session]]), found \(describe(value.type))\(hint)")
            return []
        }
        var rules: [SessionRule] = []
        for (index, element) in array.enumerated() {
            let prefix = "session[\(index + 1)]"
            guard let table = element.table else {
                problem(prefix, "must be a table, found \(describe(element.type))")
                rules.append(SessionRule(name: ""))  // keeps session[N] numbering; its checks are skipped
                continue
            }
            var rule = SessionRule(name: "")
            rule.line = lines.line(for: prefix)
            for name in table.keys {
                guard let value = table[name] else { continue }
                let key = "\(prefix).\(name)"
                switch name {
                case "name": if let text = string(value, key) { rule.name = text }
                case "transport":
                    if let text = string(value, key) {
                        if let transport = SessionRule.Transport(rawValue: text) {
                            rule.transport = transport
                        } else {
                            let known = SessionRule.Transport.allCases.map(\.rawValue).joined(separator: ", ")
                            problem(key, "'\(text)' is not a transport (\(known))")
                        }
                    }
                case "exporter":
                    if let text = string(value, key) {
                        if let exporter = IPPrefix(text) {
                            rule.exporter = exporter
                        } else {
                            problem(key, "'\(text)' is not an address or prefix (e.g. 198.51.100.0/24, 2001:db8::/32)")
                        }
                    }
                case "id":
                    if let id = integer(value, key) {
                        if let narrow = UInt32(exactly: id) {
                            rule.id = narrow
                        } else {
                            problem(key, "\(id) is not a session ID, GRE key, VNI or VLAN (0-4294967295)")
                        }
                    }
                case "interface": rule.interface = string(value, key)
                case "rotate_size": rule.rotateSize = size(value, key)
                case "rotate_interval": rule.rotateIntervalSeconds = integer(value, key)
                case "keep_files": rule.keepFiles = integer(value, key)
                default: unknown(key, known: ConfigurationFile.sessionKeys.map { "\(prefix).\($0)" })
                }
            }
            rules.append(rule)
        }
        return rules
    }

    /// The checks on values (ranges, combinations, session names), keyed as in the file and
    /// without repeating a key whose value could not be read at all.
    func semanticProblems(_ loaded: LoadedConfiguration) -> [ConfigurationProblem] {
        var configuration = loaded.configuration
        let outputSet = loaded.isSet("output")
        if !outputSet { configuration.outputDirectory = "unset" }
        var found = configuration.problems() + LiveCapture.problems(loaded.capture)
        if let filter = loaded.capture.filter, !hasProblem(at: "capture.filter") {
            // Compiled as live capture will, so a typo shows here rather than at start-up.
            do {
                _ = try BPFProgram.compile(LiveCapture.mirrorFilterExpression(configuration, user: filter))
            } catch {
                found.append(.init(key: "filter", message: "'\(filter)': \(error.message)"))
            }
        }
        return found.compactMap { problem in
            let key = ConfigurationFile.fileKey(forFlag: problem.key)
            if hasProblem(at: key) { return nil }
            // A session entry whose fields could not be read is reported by those fields.
            if key.hasPrefix("session["), !key.contains("."), problems.contains(where: { $0.key.hasPrefix(key + ".") }) {
                return nil
            }
            return ConfigurationProblem(key: key, message: problem.message, line: lines.line(for: key) ?? problem.line)
        }
    }

    // MARK: Values

    mutating func string(_ value: any TOMLValueConvertible, _ key: String, expected: String = "a string") -> String? {
        guard let text = value.string else {
            problem(key, "must be \(expected), found \(describe(value.type))")
            return nil
        }
        return text
    }

    mutating func integer(_ value: any TOMLValueConvertible, _ key: String) -> Int? {
        guard let number = value.int else {
            let hint = value.type == .string ? " (write it without quotes)" : ""
            problem(key, "must be an integer, found \(describe(value.type))\(hint)")
            return nil
        }
        return number
    }

    mutating func bool(_ value: any TOMLValueConvertible, _ key: String) -> Bool? {
        guard let flag = value.bool else {
            problem(key, "must be true or false, found \(describe(value.type))")
            return nil
        }
        return flag
    }

    /// A byte size: an integer, or a string such as `100M` (powers of 1024).
    mutating func size(_ value: any TOMLValueConvertible, _ key: String) -> Int? {
        if let bytes = value.int {
            guard bytes >= 0 else {
                problem(key, "must not be negative")
                return nil
            }
            return bytes
        }
        guard let text = string(value, key, expected: "a size (a string such as \"100M\", or bytes)") else { return nil }
        guard let bytes = ByteSize.parse(text) else {
            problem(key, "'\(text)' is not a size (examples: 4096, 512K, 100M, 2G)")
            return nil
        }
        return bytes
    }

    mutating func array(_ value: any TOMLValueConvertible, _ key: String) -> TOMLArray? {
        guard let array = value.array else {
            problem(key, "must be an array ([...]), found \(describe(value.type))")
            return nil
        }
        return array
    }

    /// A list of `CIDR=value` strings, each parsed by `parse`; every bad one is a problem.
    mutating func entries<Entry>(
        _ value: any TOMLValueConvertible, _ key: String, parse: (String) -> Entry?, form: String
    ) -> [Entry] {
        strings(value, key).compactMap { text in
            guard let entry = parse(text) else {
                problem(key, "'\(text)' is not \(form)")
                return nil
            }
            return entry
        }
    }

    mutating func strings(_ value: any TOMLValueConvertible, _ key: String) -> [String] {
        guard let array = array(value, key) else { return [] }
        return array.compactMap { element in
            guard let text = element.string else {
                problem(key, "every element must be a string, found \(describe(element.type))")
                return nil
            }
            return text
        }
    }

    mutating func integers(_ value: any TOMLValueConvertible, _ key: String, in range: ClosedRange<Int>, what: String) -> [Int] {
        guard let array = array(value, key) else { return [] }
        return array.compactMap { element in
            guard let number = element.int else {
                problem(key, "every element must be an integer, found \(describe(element.type))")
                return nil
            }
            guard range.contains(number) else {
                problem(key, "\(number) is not \(what)")
                return nil
            }
            return number
        }
    }

    mutating func unknown(_ key: String, known: [String]) {
        let name = key.split(separator: ".").last.map(String.init) ?? key
        let suggestion = known.min { editDistance(name, $0.lastComponent) < editDistance(name, $1.lastComponent) }
        if let suggestion, editDistance(name, suggestion.lastComponent) <= max(2, name.count / 3) {
            problem(key, "unknown key (did you mean \(suggestion.lastComponent)?)")
        } else {
            problem(key, "unknown key")
        }
    }

    func describe(_ type: TOMLType) -> String {
        switch type {
        case .table: "a table"
        case .array: "an array"
        case .string: "a string"
        case .int: "an integer"
        case .double: "a floating-point number"
        case .bool: "a boolean"
        case .date: "a date"
        case .time: "a time"
        case .dateTime: "a date-time"
        }
    }
}

extension String {
    fileprivate var lastComponent: String {
        split(separator: ".").last.map(String.init) ?? self
    }
}

/// Levenshtein distance, for "did you mean" on unknown keys (short strings only).
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8)
    let b = Array(b.utf8)
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var previous = Array(0...b.count)
    var current = Array(repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

// MARK: - Lines of keys

/// The line of each key in the text. TOMLKit 0.6.0 exposes source positions only for parse
/// errors (toml++ keeps them for every node, but the wrapper does not pass them on), so the
/// lines of values are found here by scanning the text: table headers (`[capture]`,
/// `[[session]]`, numbered from 1 as in `session[2]`) and `key = value` lines, skipping
/// comments, multi-line strings and arrays that continue over several lines. Keys inside inline
/// tables get the line of the table's key.
struct KeyLines {
    private(set) var lines: [String: Int] = [:]
    private var keysByLine: [Int: String] = [:]

    init(_ text: String) {
        var prefix = ""
        var arrayTableCounts: [String: Int] = [:]
        var openString: String?  // `"""` or `'''` while inside a multi-line string
        var depth = 0  // open brackets and braces of a value spanning lines
        for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            let line = Substring(rawLine)
            if let delimiter = openString {
                if line.contains(delimiter) { openString = nil }
                continue
            }
            if depth > 0 {
                (depth, openString) = Self.scanValue(line, depth: depth)
                continue
            }
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if trimmed.hasPrefix("[[") {
                guard let end = trimmed.firstRange(of: "]]") else { continue }
                let name = Self.normalizeKey(trimmed[trimmed.index(trimmed.startIndex, offsetBy: 2)..<end.lowerBound])
                arrayTableCounts[name, default: 0] += 1
                prefix = "\(name)[\(arrayTableCounts[name]!)]"
                record(prefix, number)
                continue
            }
            if trimmed.hasPrefix("[") {
                guard let end = trimmed.firstIndex(of: "]") else { continue }
                prefix = Self.normalizeKey(trimmed[trimmed.index(after: trimmed.startIndex)..<end])
                record(prefix, number)
                continue
            }
            guard let equals = Self.firstUnquoted("=", in: trimmed) else { continue }
            let key = Self.normalizeKey(trimmed[..<equals])
            let full = prefix.isEmpty ? key : prefix + "." + key
            record(full, number)
            keysByLine[number] = full
            (depth, openString) = Self.scanValue(trimmed[trimmed.index(after: equals)...], depth: 0)
        }
    }

    private mutating func record(_ key: String, _ line: Int) {
        if lines[key] == nil { lines[key] = line }
        // Dotted keys (`capture.workers = 4`) also place their parents.
        var parent = key
        while let cut = parent.lastIndex(where: { $0 == "." }) {
            parent = String(parent[..<cut])
            if lines[parent] == nil { lines[parent] = line }
        }
    }

    /// The line of `key`, else of the nearest enclosing key or table that has one.
    func line(for key: String) -> Int? {
        var current = key
        while true {
            if let line = lines[current] { return line }
            guard let cut = current.lastIndex(where: { $0 == "." || $0 == "[" }) else { return nil }
            current = String(current[..<cut])
        }
    }

    /// The key assigned on a line, if one is.
    func key(onLine line: Int) -> String? { keysByLine[line] }

    /// `a . "b"` → `a.b`.
    private static func normalizeKey(_ text: Substring) -> String {
        text.split(separator: ".").map { part in
            var part = part.trimmingCharacters(" \t")
            if part.count >= 2, let first = part.first, first == "\"" || first == "'", part.last == first {
                part = part.dropFirst().dropLast()
            }
            return String(part)
        }.joined(separator: ".")
    }

    private static func firstUnquoted(_ target: Character, in text: Substring) -> Substring.Index? {
        var quote: Character?
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if let open = quote {
                if character == "\\" && open == "\"" {
                    index = text.index(after: index)
                    if index == text.endIndex { break }
                } else if character == open {
                    quote = nil
                }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == target {
                return index
            } else if character == "#" {
                return nil
            }
            index = text.index(after: index)
        }
        return nil
    }

    /// Follows a value: bracket depth at its end, and the delimiter of a multi-line string
    /// left open.
    private static func scanValue(_ text: Substring, depth start: Int) -> (Int, String?) {
        var depth = start
        var index = text.startIndex
        while index < text.endIndex {
            let rest = text[index...]
            for delimiter in ["\"\"\"", "'''"] where rest.hasPrefix(delimiter) {
                let after = text.index(index, offsetBy: 3)
                guard let close = text[after...].firstRange(of: delimiter) else { return (depth, delimiter) }
                index = close.upperBound
                break
            }
            guard index < text.endIndex else { break }
            let character = text[index]
            switch character {
            case "#": return (depth, nil)
            case "\"", "'":
                var scan = text.index(after: index)
                while scan < text.endIndex, text[scan] != character {
                    if character == "\"", text[scan] == "\\" { scan = text.index(after: scan) }
                    if scan < text.endIndex { scan = text.index(after: scan) }
                }
                index = scan < text.endIndex ? text.index(after: scan) : scan
                continue
            case "[", "{": depth += 1
            case "]", "}": depth = max(0, depth - 1)
            default: break
            }
            index = text.index(after: index)
        }
        return (depth, nil)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(_ set: String) -> Substring {
        var view = self
        while let first = view.first, set.contains(first) { view = view.dropFirst() }
        while let last = view.last, set.contains(last) { view = view.dropLast() }
        return view
    }
}
