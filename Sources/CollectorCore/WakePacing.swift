/// How long a capture thread that has emptied its rings waits before it asks for the next block.
///
/// With small ring blocks (what keeps the kernel's ring allocation cheap and a quiet link's
/// frames moving) waking at every block means hundreds of wake-ups a second, each starting on
/// caches the writer thread and the kernel have since refilled: measured, that cost more user
/// time than decoding. So the thread paces itself: when a wake-up found fewer blocks than
/// `targetBlocks` it naps a little longer the next time, when it found many it naps less. The
/// nap never exceeds the time 10 Gbit/s takes to fill three quarters of the ring (40 ms for the
/// default 64 MiB), so a burst that starts during a nap still fits, with a quarter left for
/// the walk that follows (which runs faster than 10 Gbit/s of IMIX arrives); and it is only
/// taken when the rings are empty, so it never delays frames that are already waiting.
/// Under sustained load wake-ups find many blocks and the nap shrinks to nothing.
struct WakePacing {
    /// Blocks one wake-up should find.
    let targetBlocks: Int
    let maximumNanoseconds: UInt64
    private(set) var napNanoseconds: UInt64 = 0

    static let minimumNap: UInt64 = 250_000
    static let maximumNap: UInt64 = 50_000_000
    /// The rate the ring must absorb during a nap: 10 Gbit/s per capture thread.
    static let assumedPeakBytesPerSecond: UInt64 = 1_250_000_000

    init(blockSize: Int, blockCount: Int) {
        targetBlocks = max(2, blockCount / 16)
        let threeQuarters = UInt64(blockSize) * UInt64(blockCount) / 4 * 3
        let fill = threeQuarters * 1_000_000_000 / Self.assumedPeakBytesPerSecond
        maximumNanoseconds = min(max(fill, Self.minimumNap), Self.maximumNap)
    }

    /// The rings are empty after a wake-up that found `blocks` blocks: the nap before the next
    /// look (0: wait for the kernel right away).
    mutating func caughtUp(afterBlocks blocks: Int) -> UInt64 {
        if blocks < targetBlocks {
            napNanoseconds = min(max(napNanoseconds * 2, Self.minimumNap), maximumNanoseconds)
        } else if blocks > 2 * targetBlocks {
            napNanoseconds /= 2
            if napNanoseconds < Self.minimumNap { napNanoseconds = 0 }
        }
        return napNanoseconds
    }
}
