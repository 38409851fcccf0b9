#if canImport(Glibc)
import Glibc
#endif

extension HostSystem {
    /// Physical memory in bytes (0 when the system does not say).
    public static var physicalMemory: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES))
        let pageSize = Int(getpagesize())
        guard pages > 0, pageSize > 0 else { return 0 }
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: pageSize)
        return overflow ? .max : bytes
    }
}

/// The open-file limit (RLIMIT_NOFILE): every session file, capture socket, hook pipe and
/// metrics connection takes a descriptor, and the usual soft limit (1024) is below what the
/// default session caps can use.
public enum DescriptorLimit {
    public struct Figures: Sendable, Equatable {
        /// The soft limit after `raise()`: what this process may open.
        public var soft: Int
        public var hard: Int
        /// Descriptors open right now.
        public var open: Int

        public init(soft: Int, hard: Int, open: Int) {
            self.soft = soft
            self.hard = hard
            self.open = open
        }
    }

    /// Raises the soft limit to the hard limit (allowed without privileges) and returns the
    /// figures; the limits as they were when raising fails.
    @discardableResult
    public static func raise() -> Figures {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return Figures(soft: 1024, hard: 1024, open: openCount) }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Figures(soft: clamp(limit.rlim_cur), hard: clamp(limit.rlim_max), open: openCount)
    }

    private static func clamp(_ value: rlim_t) -> Int {
        value > rlim_t(Int32.max) ? Int(Int32.max) : Int(value)  // RLIM_INFINITY included
    }

    /// Descriptors open in this process (entries of /proc/self/fd, less the one reading it).
    public static var openCount: Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { $0.first }
            if name != UInt8(ascii: ".") { count += 1 }
        }
        return max(0, count - 1)
    }
}
