import MirrorDecoding

/// ERSPAN III switch timestamps as record times, opt-in per exporter (PROTOCOLS.md C.4). The
/// default is the receive time: the 32-bit field wraps, its epoch and unit depend on the
/// device, and PTP time is TAI. Modes:
///
/// - `receive`: the receive time (the default; nothing is trusted).
/// - `unix100us`: Gra 00 with Unix time in 100 µs ticks, truncated to 32 bits (Linux, OVS):
///   the upper bits come from the receive time, choosing the wrap closest to it.
/// - `ptp`: Gra 10 with IEEE 1588 seconds in a Platf 0x5/0x6 sub-header and nanoseconds in the
///   base field; TAI to UTC by the configured offset (37 s).
/// - `relative`: the counter unwrapped per session (Gra 00 100 µs, 01 100 ns, 10 1 ns),
///   anchored at the session's first receive time: keeps the switch's inter-arrival times.
///
/// Whatever the mode, a result further than `plausibility` from the receive time is not used:
/// the receive time is, and `erspan_ts_implausible` counts it.
public struct SwitchTimestampPolicy: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        case receive
        case relative
        case ptp
        case unix100us
    }

    public var rules: [(IPPrefix, Mode)] = []
    public var plausibilityNanoseconds: UInt64 = 2_000_000_000
    public var taiOffsetNanoseconds: UInt64 = 37_000_000_000

    public init() {}

    /// Parses `CIDR=MODE`.
    public static func parseEntry(_ text: String) -> (IPPrefix, Mode)? {
        let parts = text.split(separator: "=", omittingEmptySubsequences: false)
        guard parts.count == 2, let prefix = IPPrefix(String(parts[0])), let mode = Mode(rawValue: String(parts[1])) else {
            return nil
        }
        return (prefix, mode)
    }

    func mode(for exporter: IPAddress) -> Mode {
        for (prefix, mode) in rules where prefix.contains(exporter) { return mode }
        return .receive
    }
}

/// Per-session state for `relative` mode.
struct RelativeClock {
    var anchorReceive: UInt64 = 0
    var anchorTicks: UInt64 = 0
    var lastRaw: UInt32 = 0
    var unwrapped: UInt64 = 0
    var started = false
}

extension SwitchTimestampPolicy {
    /// The record time for `frame`, or nil to keep the receive time (not ERSPAN III, receive
    /// mode, or not usable); `implausible` is set when a computed time failed the gate.
    func recordTime(
        for frame: MirrorFrame, receive: UInt64, mode: Mode, clock: inout RelativeClock, implausible: inout Bool
    ) -> UInt64? {
        guard mode != .receive, frame.encapsulation == .erspan3 else { return nil }
        let raw = frame.erspan.timestamp
        let computed: UInt64?
        switch mode {
        case .receive:
            computed = nil
        case .unix100us:
            guard frame.erspan.granularity == 0 else { return nil }
            let receiveTicks = receive / 100_000
            let base = receiveTicks & ~UInt64(0xFFFF_FFFF) | UInt64(raw)
            // The wrap (about 4.97 days) closest to the receive time.
            let candidates = [base &- (1 << 32), base, base &+ (1 << 32)]
            let best = candidates.min { distance($0, receiveTicks) < distance($1, receiveTicks) }!
            computed = best &* 100_000
        case .ptp:
            guard frame.erspan.granularity == 2, frame.erspan.hasPlatform, [5, 6].contains(frame.erspan.platformID),
                raw < 1_000_000_000
            else { return nil }
            let seconds = UInt64(UInt32(truncatingIfNeeded: frame.erspan.platform))
            computed = (seconds * 1_000_000_000 &+ UInt64(raw)) &- taiOffsetNanoseconds
        case .relative:
            let unit: UInt64
            switch frame.erspan.granularity {
            case 0: unit = 100_000
            case 1: unit = 100
            case 2: unit = 1
            default: return nil  // Gra 11: unknown unit
            }
            if !clock.started {
                clock = RelativeClock(anchorReceive: receive, anchorTicks: 0, lastRaw: raw, unwrapped: 0, started: true)
            } else {
                clock.unwrapped &+= UInt64(raw &- clock.lastRaw)  // forward distance mod 2^32
                clock.lastRaw = raw
            }
            computed = clock.anchorReceive &+ clock.unwrapped &* unit
        }
        guard let time = computed else { return nil }
        if distance(time, receive) > plausibilityNanoseconds {
            implausible = true
            return nil
        }
        return time
    }

    private func distance(_ a: UInt64, _ b: UInt64) -> UInt64 { a > b ? a - b : b - a }
}
