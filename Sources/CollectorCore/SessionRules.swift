public import MirrorDecoding
public import PcapStorage

/// The named sessions of the configuration file, ready for matching: which rule, if any, a
/// new session key falls under. First match wins. Consulted only when a session key is seen for
/// the first time (the pipeline remembers the answer), never per frame.
public struct SessionRules: Sendable {
    public let rules: [SessionRule]
    private let families: [SessionFamily?]

    public init(_ rules: [SessionRule]) {
        self.rules = rules
        families = rules.map(\.family)
    }

    public var isEmpty: Bool { rules.isEmpty }

    /// The index of the first rule matching a session: its transport family, its exporter
    /// (ignored for RSPAN), its identifier (ERSPAN session ID, GRE key, VNI of VXLAN or Geneve, RSPAN VLAN; nil
    /// when the transport carries none) and the capture interface's name (`replay` in replay).
    public func firstMatch(family: SessionFamily, exporter: IPAddress, identifier: UInt32?, interfaceName: String) -> Int? {
        for index in rules.indices {
            let rule = rules[index]
            if let wanted = families[index], wanted != family { continue }
            if let prefix = rule.exporter {
                guard family != .rspan, prefix.contains(exporter) else { continue }
            }
            if let id = rule.id {
                guard let identifier, identifier == id else { continue }
            }
            if let interface = rule.interface {
                guard family == .rspan, interface == interfaceName else { continue }
            }
            return index
        }
        return nil
    }

    func firstMatch(_ key: SessionKey, interfaceName: String) -> Int? {
        firstMatch(
            family: key.family, exporter: key.exporter, identifier: key.hasIdentifier ? key.identifier : nil,
            interfaceName: interfaceName)
    }

    /// The rotation and retention a rule gives its session; unset values keep the global ones.
    public func overrides(_ index: Int) -> StorageConfiguration.SessionOverrides {
        let rule = rules[index]
        return StorageConfiguration.SessionOverrides(
            rotateSize: rule.rotateSize, rotateIntervalSeconds: rule.rotateIntervalSeconds, keepFiles: rule.keepFiles)
    }
}

/// Session keys that matched no rule while unknown sessions are refused, so that their frames
/// are discarded with one hash lookup rather than a rule scan. Bounded: a flood of distinct keys
/// (spoofed exporters, say) stops being remembered at `limit` and then costs a rule scan per
/// frame, never memory.
struct RejectedSessionKeys {
    static let limit = 65536
    private var keys: Set<SessionKey> = []

    @inline(__always)
    func contains(_ key: SessionKey) -> Bool { !keys.isEmpty && keys.contains(key) }

    mutating func insert(_ key: SessionKey) {
        if keys.count < Self.limit { keys.insert(key) }
    }

    var count: Int { keys.count }
}
