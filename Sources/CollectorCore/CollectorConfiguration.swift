import CaptureSystem
public import MirrorDecoding
public import PcapFormat
import PcapStorage

/// Everything that shapes a collector run, validated. The command line (and later the
/// configuration file) fills it; nothing below the executable parses text options.
public struct CollectorConfiguration: Sendable {
    public var outputDirectory: String
    public var format: CaptureFileFormat = .pcap
    public var rotateSize: Int?
    public var rotateIntervalSeconds: Int?
    public var keepFiles: Int?
    public var rspanVLANs: [UInt16] = []
    public var vxlanPorts: [UInt16] = [4789]
    /// VXLAN-GPE is read only on these ports (a 0x04 flag on a VXLAN port is a reserved bit).
    public var vxlanGPEPorts: [UInt16] = [4790]
    public var genevePorts: [UInt16] = [6081]
    /// Exporters allowed to send; empty allows every exporter.
    public var allowedExporters: [IPPrefix] = []
    /// 256K: the buffers being filled (one per active session) stay few enough to be warm in
    /// cache, and fewer fresh pages are zero-filled at start (measured, live.sh 64-byte
    /// frames, medians of 4: capture CPU per Mpkt 0.160 s with 1M buffers, 0.150 s with 256K).
    public var bufferSize: Int = 256 << 10
    public var maximumBufferMemory: Int = 256 << 20
    /// ERSPAN III switch timestamps as record times, per exporter (default: receive time).
    public var switchTimestamps = SwitchTimestampPolicy()
    /// Exporters whose ERSPAN type is forced (`CIDR=I|II|III`), first match wins.
    public var forcedERSPANTypes: [(IPPrefix, ClassifierOverrides.ForcedType)] = []
    /// Drop transport duplicates: same session, GRE sequence number and bytes (counted as
    /// `discarded.duplicate`). Off by default: every frame is written.
    public var dropDuplicates = false
    /// Sessions one capture thread keeps at most; traffic for more is discarded as
    /// `unknown_session.session_limit`.
    public var maximumSessions = 4096
    /// A session without frames for this long finishes its file (frees the descriptor).
    public var idleTimeoutSeconds: Int? = 300
    /// Fragment reassembly: timeout and memory caps.
    public var reassemblyLimits = FragmentReassembler.Limits()

    // Service (live capture) settings.
    /// Finished files may take at most this many bytes in total; the oldest go first, across sessions.
    public var maximumDiskUsage: Int?
    /// Keep at least this much free on the output filesystem; the oldest finished files go first.
    public var minimumFreeSpace: FreeSpace?
    /// Run for every finished file, its path as the argument (like tcpdump -z).
    public var postRotateCommand: String?
    /// At most this many post-rotate commands at a time; more wait their turn.
    public var postRotateConcurrency: Int = 2
    /// `HOST:PORT` of the Prometheus and stats endpoint; nil turns it off.
    public var metricsListen: String? = "127.0.0.1:9477"
    /// When false, mirror traffic that matches no `sessionRules` entry counts as
    /// `discarded.unknown_session` (reason `unknown_session.not_configured`).
    public var acceptUnknownSessions = true
    /// Named sessions from the configuration file, first match wins.
    public var sessionRules: [SessionRule] = []

    public init(outputDirectory: String) {
        self.outputDirectory = outputDirectory
    }

    /// `run`'s defaults for a service that writes until stopped: a new file every hour or
    /// 1 GiB, whichever comes first, and 10% of the output filesystem kept free (the oldest
    /// finished files go first). Without them one file per session grows until the disk is
    /// full and the post-rotate hook never runs. `replay` does not apply them: its output is
    /// bounded by its inputs, and an offline job should not delete what it wrote.
    public static let serviceRotateSize = 1 << 30
    public static let serviceRotateIntervalSeconds = 3600
    public static let serviceMinimumFreeSpace = FreeSpace.percent(10)

    /// Fills in the service defaults where neither the file nor a flag set a value (0 turns
    /// rotation off, `min_free_space = 0` keeps nothing free).
    public mutating func applyServiceDefaults() {
        if rotateSize == nil { rotateSize = Self.serviceRotateSize }
        if rotateIntervalSeconds == nil { rotateIntervalSeconds = Self.serviceRotateIntervalSeconds }
        if minimumFreeSpace == nil { minimumFreeSpace = Self.serviceMinimumFreeSpace }
    }

    /// Every problem at once, each naming the option.
    public func problems() -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        if outputDirectory.isEmpty { problems.append(.init(key: "output", message: "must not be empty")) }
        // Every number against its range first (NumericSettings): nothing below may then
        // overflow, and the combinations are checked only on values in range.
        NumericSettings.check(NumericSettings.rotateSize, rotateSize, into: &problems)
        NumericSettings.check(NumericSettings.rotateInterval, rotateIntervalSeconds, into: &problems)
        NumericSettings.check(NumericSettings.keepFiles, keepFiles, into: &problems)
        for vlan in rspanVLANs where vlan > 4094 || vlan == 0 {
            problems.append(.init(key: "rspan-vlan", message: "\(vlan) is not a VLAN ID (1-4094)"))
        }
        NumericSettings.check(NumericSettings.maximumSessions, maximumSessions, into: &problems)
        NumericSettings.check(NumericSettings.idleTimeout, idleTimeoutSeconds, into: &problems)
        if forcedERSPANTypes.count > ClassifierOverrides.capacity {
            problems.append(.init(key: "force-erspan-type", message: "at most \(ClassifierOverrides.capacity) overrides"))
        }
        if vxlanPorts.isEmpty { problems.append(.init(key: "vxlan-port", message: "at least one port is needed")) }
        if vxlanPorts.count > VXLANPorts.capacity {
            problems.append(.init(key: "vxlan-port", message: "at most \(VXLANPorts.capacity) ports"))
        }
        for port in vxlanPorts where port == 0 {
            problems.append(.init(key: "vxlan-port", message: "0 is not a port"))
        }
        problems += udpPortProblems()
        let bufferSizeProblem = NumericSettings.bufferSize.problem(bufferSize)
        NumericSettings.check(NumericSettings.bufferSize, bufferSize, into: &problems)
        if let message = NumericSettings.maximumBufferMemory.problem(maximumBufferMemory) {
            problems.append(.init(key: "max-buffer-memory", message: message))
        } else if bufferSizeProblem == nil, maximumBufferMemory < 4 * bufferSize {
            problems.append(.init(key: "max-buffer-memory", message: "must hold at least 4 buffers (\(4 * bufferSize) bytes)"))
        } else if case let memory = HostSystem.physicalMemory, memory > 0, maximumBufferMemory > memory {
            problems.append(
                .init(key: "max-buffer-memory", message: "must be at most this host's memory (\(memory) bytes), got \(maximumBufferMemory) bytes"))
        }
        problems += serviceProblems()
        problems += sessionRuleProblems()
        return problems
    }

    /// The VXLAN-GPE and Geneve port lists (either may be empty: the transport is off), and
    /// no port in two lists: the port decides how the datagram is read. An overlap is blamed on
    /// the list changed from its default (both changed: the later one).
    private func udpPortProblems() -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        let defaults = CollectorConfiguration(outputDirectory: "")
        let lists: [(key: String, transport: String, ports: [UInt16], isDefault: Bool)] = [
            ("vxlan-port", "VXLAN", vxlanPorts, vxlanPorts == defaults.vxlanPorts),
            ("vxlan-gpe-port", "VXLAN-GPE", vxlanGPEPorts, vxlanGPEPorts == defaults.vxlanGPEPorts),
            ("geneve-port", "Geneve", genevePorts, genevePorts == defaults.genevePorts),
        ]
        for list in lists.dropFirst() {
            if list.ports.count > VXLANPorts.capacity {
                problems.append(.init(key: list.key, message: "at most \(VXLANPorts.capacity) ports"))
            }
            for port in list.ports where port == 0 { problems.append(.init(key: list.key, message: "0 is not a port")) }
        }
        for (index, later) in lists.enumerated() {
            for earlier in lists[..<index] {
                let (blamed, other) = later.isDefault && !earlier.isDefault ? (earlier, later) : (later, earlier)
                for port in Set(later.ports).intersection(earlier.ports).sorted() {
                    problems.append(
                        .init(key: blamed.key, message: "port \(port) is also a \(other.transport) port; a UDP port carries one transport"))
                }
            }
        }
        return problems
    }

    /// The service settings: disk retention, the post-rotate hook, the metrics endpoint.
    private func serviceProblems() -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        NumericSettings.check(NumericSettings.maximumDiskUsage, maximumDiskUsage, into: &problems)
        switch minimumFreeSpace {
        case .bytes(let bytes):
            NumericSettings.check(NumericSettings.minimumFreeSpace, bytes, into: &problems)
        case .percent(let percent) where !(percent >= 0 && percent < 100):
            problems.append(.init(key: "min-free-space", message: "must be a percentage from 0 to below 100"))
        default: break
        }
        if let postRotateCommand, postRotateCommand.allSatisfy({ $0 == " " || $0 == "\t" }) {
            problems.append(.init(key: "post-rotate-command", message: "must not be empty (leave it out to run nothing)"))
        }
        NumericSettings.check(NumericSettings.postRotateConcurrency, postRotateConcurrency, into: &problems)
        if let metricsListen, let message = Self.listenAddressProblem(metricsListen) {
            problems.append(.init(key: "metrics-listen", message: message))
        }
        return problems
    }

    /// Why `text` is not a `HOST:PORT` the status server can listen on (an IPv4 address, or an
    /// IPv6 address in brackets, and a port 1-65535), or nil when it is one.
    static func listenAddressProblem(_ text: String) -> String? {
        let example = "(e.g. 127.0.0.1:9477, [::1]:9477, or off)"
        guard let colon = text.lastIndex(of: ":") else { return "'\(text)' is not HOST:PORT \(example)" }
        let portText = text[text.index(after: colon)...]
        guard let port = Int(portText), portText.allSatisfy(\.isASCII), (1...65535).contains(port) else {
            return "'\(text)': '\(portText)' is not a port (1-65535) \(example)"
        }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
            guard host.contains(":"), IPAddress(host) != nil else { return "'\(text)': '\(host)' is not an IPv6 address \(example)" }
        } else {
            guard !host.contains(":"), IPAddress(host) != nil else {
                return "'\(text)': '\(host)' is not an IPv4 address or a bracketed IPv6 address \(example)"
            }
        }
        return nil
    }

    /// The named sessions, keyed `session[N].field` with N counting `[[session]]` entries from 1.
    private func sessionRuleProblems() -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        var firstUse: [String: Int] = [:]
        for (index, rule) in sessionRules.enumerated() {
            let prefix = "session[\(index + 1)]"
            func add(_ field: String?, _ message: String) {
                problems.append(.init(key: field.map { "\(prefix).\($0)" } ?? prefix, message: message, line: rule.line))
            }
            if let message = SessionRule.nameProblem(rule.name) { add("name", message) }
            if let earlier = firstUse[rule.name] {
                let line = sessionRules[earlier].line.map { " (line \($0))" } ?? ""
                add("name", "'\(rule.name)' is already the name of session[\(earlier + 1)]\(line); names must be unique")
            } else if !rule.name.isEmpty {
                firstUse[rule.name] = index
            }
            for (setting, value) in [
                (NumericSettings.sessionRotateSize, rule.rotateSize), (NumericSettings.sessionRotateInterval, rule.rotateIntervalSeconds),
                (NumericSettings.sessionKeepFiles, rule.keepFiles),
            ] {
                if let value, let message = setting.problem(value) { add(setting.key, message) }
            }
            if rule.transport == nil, rule.exporter == nil, rule.id == nil, rule.interface == nil {
                add(nil, "matches everything: give at least one of transport, exporter, id, interface")
            }
            if let interface = rule.interface, interface.isEmpty { add("interface", "must not be empty") }
            let isRSPAN = rule.transport == .rspan || (rule.transport == nil && rule.interface != nil)
            if rule.interface != nil, let transport = rule.transport, transport != .rspan {
                add("interface", "only RSPAN sessions are matched by interface (transport is \(transport.rawValue))")
            }
            if rule.exporter != nil, isRSPAN {
                add("exporter", "RSPAN has no exporter (it arrives on an interface); match it with interface and id")
            }
            if let id = rule.id {
                switch rule.transport {
                case .erspan where id > 1023: add("id", "ERSPAN session IDs are 0-1023, got \(id)")
                case .erspan1: add("id", "ERSPAN type I carries no session ID")
                case .vxlan where id > 0xFF_FFFF, .geneve where id > 0xFF_FFFF: add("id", "VNIs are 0-16777215, got \(id)")
                case _ where isRSPAN && !(1...4094).contains(id): add("id", "\(id) is not a VLAN ID (1-4094)")
                case _ where isRSPAN && !rspanVLANs.contains(UInt16(id)):
                    add("id", "VLAN \(id) is not in rspan_vlans, so no RSPAN traffic reaches this session")
                default: break
                }
            }
        }
        return problems
    }

    /// What is valid but probably not meant, for `check-config` (the file is still used):
    /// a rule exporter with host bits set (it matches the whole prefix), and a rule that an
    /// earlier one shadows (first match wins, so it never matches anything).
    public func warnings() -> [ConfigurationProblem] {
        var warnings: [ConfigurationProblem] = []
        for (index, rule) in sessionRules.enumerated() {
            let prefix = "session[\(index + 1)]"
            if let exporter = rule.exporter, exporter.network != exporter.address {
                warnings.append(.init(
                    key: prefix + ".exporter",
                    message: "'\(exporter)' has host bits set; it matches all of \(exporter.network)/\(exporter.length)"
                        + " (write that, or a /\(exporter.address.isIPv6 ? 128 : 32) for one exporter)",
                    line: rule.line))
            }
            if let earlier = sessionRules[..<index].firstIndex(where: { $0.shadows(rule) }) {
                let line = sessionRules[earlier].line.map { " (line \($0))" } ?? ""
                warnings.append(.init(
                    key: prefix,
                    message: "never matches: session[\(earlier + 1)] '\(sessionRules[earlier].name)'\(line) comes first and matches everything it does",
                    line: rule.line))
            }
        }
        return warnings
    }

    var decoderConfiguration: MirrorDecoder.Configuration {
        var decoder = MirrorDecoder.Configuration(rspanVLANs: VLANSet(rspanVLANs), vxlanPorts: VXLANPorts(vxlanPorts))
        decoder.vxlanGPEPorts = VXLANPorts(vxlanGPEPorts)
        decoder.genevePorts = VXLANPorts(genevePorts)
        decoder.classifierOverrides = ClassifierOverrides(forcedERSPANTypes)
        return decoder
    }

    /// The storage settings this configuration implies (`handoff`: `.wait` in replay, `.drop`
    /// live). Public for the tests and benchmarks that build a `Storage` of their own.
    public func storageConfiguration(handoff: StorageConfiguration.Handoff) -> StorageConfiguration {
        var storage = StorageConfiguration(directory: outputDirectory)
        storage.format = format
        // 0 turns rotation off (explicitly, so `run`'s defaults do not apply).
        storage.rotateSize = rotateSize == 0 ? nil : rotateSize
        storage.rotateIntervalSeconds = rotateIntervalSeconds == 0 ? nil : rotateIntervalSeconds
        storage.keepFiles = keepFiles
        storage.bufferSize = bufferSize
        storage.maximumBufferMemory = maximumBufferMemory
        storage.handoff = handoff
        storage.maximumDiskUsage = maximumDiskUsage
        storage.idleTimeoutNanoseconds = idleTimeoutSeconds.map { UInt64($0) * 1_000_000_000 }
        switch minimumFreeSpace {
        case .bytes(let bytes): storage.minimumFreeSpace = .bytes(bytes)
        case .percent(let percent): storage.minimumFreeSpace = .percent(percent)
        case nil: storage.minimumFreeSpace = nil
        }
        return storage
    }
}

/// Free space to keep on the output filesystem: bytes, or a percentage of its size.
public enum FreeSpace: Sendable, Equatable {
    case bytes(Int)
    case percent(Double)

    /// Parses `10G`, `500M` or `5%`.
    public static func parse(_ text: String) -> FreeSpace? {
        if text.hasSuffix("%") {
            guard let value = Double(text.dropLast()), value >= 0, value < 100 else { return nil }
            return .percent(value)
        }
        return ByteSize.parse(text).map(FreeSpace.bytes)
    }
}

/// A named session from the configuration file: which mirror traffic it matches, the name its
/// files get, and its own rotation and retention. Unset match fields match anything.
public struct SessionRule: Sendable, Equatable {
    public enum Transport: String, Sendable, CaseIterable {
        case erspan  // types II and III (they share sessions)
        case erspan1
        case gre
        case vxlan
        case rspan
        case geneve
    }

    public var name: String
    public var transport: Transport?
    /// Outer source address prefix (not for RSPAN).
    public var exporter: IPPrefix?
    /// ERSPAN session ID, GRE key, VNI (VXLAN, Geneve) or RSPAN VLAN.
    public var id: UInt32?
    /// Capture interface (RSPAN), or `replay`.
    public var interface: String?
    public var rotateSize: Int?
    public var rotateIntervalSeconds: Int?
    public var keepFiles: Int?
    /// Where it was defined, for error messages.
    public var line: Int?

    public init(name: String) {
        self.name = name
    }

    /// The family of session keys the rule is limited to (nil: any).
    var family: SessionFamily? {
        switch transport {
        case .erspan: .erspan
        case .erspan1: .erspan1
        case .gre: .gre
        case .vxlan: .vxlan
        case .geneve: .geneve
        case .rspan: .rspan
        case nil: interface != nil ? .rspan : nil
        }
    }

    /// Whether every session key `later` matches is matched by this rule too (so, coming
    /// first, it takes them all: `SessionRules.firstMatch`).
    func shadows(_ later: SessionRule) -> Bool {
        if let family, family != later.family { return false }
        if let exporter {
            guard let other = later.exporter, exporter.covers(other) else { return false }
        }
        if let id, id != later.id { return false }
        if let interface, interface != later.interface { return false }
        return true
    }

    /// The longest name accepted, in UTF-8 bytes (file names are at most 255 bytes, and the
    /// name is followed by a timestamp there).
    public static let maximumNameLength = 128

    /// Why `name` cannot name a session (it becomes a directory below the output directory),
    /// or nil when it can.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "a name is required" }
        if name == "." || name == ".." { return "must not be '.' or '..'" }
        if name.contains("..") { return "must not contain '..'" }
        if name.contains("/") { return "must not contain '/' (the name is a directory)" }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "must not contain control characters"
        }
        if name.utf8.count > maximumNameLength {
            return "must be at most \(maximumNameLength) bytes (UTF-8), got \(name.utf8.count)"
        }
        return nil
    }
}

extension IPPrefix {
    /// The address with its host bits cleared.
    var network: IPAddress {
        if !address.isIPv6 {
            let mask: UInt32 = length == 0 ? 0 : UInt32.max << UInt32(32 - length)
            return IPAddress(ipv4: UInt32(truncatingIfNeeded: address.low) & mask)
        }
        let highMask: UInt64 = length >= 64 ? .max : (length == 0 ? 0 : ~(UInt64.max >> UInt64(length)))
        let lowMask: UInt64 = length <= 64 ? 0 : (length == 128 ? .max : ~(UInt64.max >> UInt64(length - 64)))
        return IPAddress(ipv6High: address.high & highMask, low: address.low & lowMask)
    }

    /// Whether every address of `other` lies inside this prefix.
    func covers(_ other: IPPrefix) -> Bool {
        other.address.isIPv6 == address.isIPv6 && length <= other.length && contains(other.network)
    }
}

/// One invalid setting: which key and why.
public struct ConfigurationProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var message: String
    public var line: Int?

    public init(key: String, message: String, line: Int? = nil) {
        self.key = key
        self.message = message
        self.line = line
    }

    public var description: String {
        if let line { return "\(key) (line \(line)): \(message)" }
        return "\(key): \(message)"
    }
}

/// Byte sizes as operators write them: `4096`, `512K`, `100M`, `2G`, `1T` (powers of 1024;
/// a trailing `B` or `iB` is accepted).
public enum ByteSize {
    public static func parse(_ text: String) -> Int? {
        var body = Substring(text.trimmingCharacters(in: " "))
        for suffix in ["iB", "ib", "B", "b"] where body.hasSuffix(suffix) && body.count > suffix.count {
            body = body.dropLast(suffix.count)
            break
        }
        var multiplier = 1
        if let last = body.last, let power = "KMGT".firstIndex(of: Character(last.uppercased())) {
            multiplier = 1 << (10 * ("KMGT".distance(from: "KMGT".startIndex, to: power) + 1))
            body = body.dropLast()
        }
        guard !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(body),
            value <= Int.max / multiplier
        else { return nil }
        return value * multiplier
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var view = Substring(self)
        while view.first == set { view = view.dropFirst() }
        while view.last == set { view = view.dropLast() }
        return String(view)
    }
}
