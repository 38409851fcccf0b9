/// GRE sequence accounting for one session (the contract in docs/COUNTERS.md):
///
/// `next` = last in-order sequence + 1 and `d = seq - next` as signed 32-bit. d == 0 is in
/// order; a small d > 0 adds d to `lost`; a small d < 0 is a duplicate when that number was
/// already seen, otherwise a late arrival (`outOfOrder` += 1, `lost` -= 1: lost is net); a
/// forward jump ≥ 2^28 or a backward jump ≥ 2^24 is an exporter restart and counts nothing.
/// Frames are never dropped on sequence grounds (the Linux receive path's classic pitfall).
///
/// "Already seen" is answered exactly within a window of the last `window` numbers below
/// `next`; a late arrival further back than that is counted as out of order.
struct SequenceTracker {
    static let window = 2048
    static let restartForward: Int64 = 1 << 28
    static let restartBackward: Int64 = 1 << 24

    private(set) var lost: Int64 = 0
    private(set) var outOfOrder: Int64 = 0
    private(set) var duplicates: Int64 = 0
    private(set) var restarts: Int64 = 0
    private var next: UInt32 = 0
    private var started = false
    private var seen: [UInt64]

    init() {
        seen = Array(repeating: 0, count: Self.window / 64)
    }

    /// Returns true when `sequence` was already seen (a transport duplicate candidate).
    @inline(__always)
    @discardableResult
    mutating func observe(_ sequence: UInt32) -> Bool {
        guard started else {
            started = true
            next = sequence &+ 1
            mark(sequence)
            return false
        }
        let distance = Int64(Int32(bitPattern: sequence &- next))
        if distance == 0 {
            mark(sequence)
            next = sequence &+ 1
        } else if distance > 0 {
            if distance >= Self.restartForward {
                restart(at: sequence)
                return false
            }
            lost += distance
            // The skipped numbers have not been seen: clear what their slots remember.
            if distance >= Int64(Self.window) {
                clearAll()
            } else {
                var skipped = next
                while skipped != sequence {
                    unmark(skipped)
                    skipped &+= 1
                }
            }
            mark(sequence)
            next = sequence &+ 1
        } else {
            let back = -distance
            if back >= Self.restartBackward {
                restart(at: sequence)
            } else if back <= Int64(Self.window), isMarked(sequence) {
                duplicates += 1
                return true
            } else {
                outOfOrder += 1
                lost -= 1
                if back <= Int64(Self.window) { mark(sequence) }
            }
        }
        return false
    }

    /// Whether `sequence` was seen already (within the window), without counting anything.
    func hasSeen(_ sequence: UInt32) -> Bool {
        guard started else { return false }
        let back = -Int64(Int32(bitPattern: sequence &- next))
        return back > 0 && back <= Int64(Self.window) && isMarked(sequence)
    }

    private mutating func restart(at sequence: UInt32) {
        restarts += 1
        clearAll()
        next = sequence &+ 1
        mark(sequence)
    }

    @inline(__always)
    private mutating func mark(_ sequence: UInt32) {
        let slot = Int(sequence) & (Self.window - 1)
        seen[slot >> 6] |= 1 << UInt64(slot & 63)
    }

    @inline(__always)
    private mutating func unmark(_ sequence: UInt32) {
        let slot = Int(sequence) & (Self.window - 1)
        seen[slot >> 6] &= ~(1 << UInt64(slot & 63))
    }

    @inline(__always)
    private func isMarked(_ sequence: UInt32) -> Bool {
        let slot = Int(sequence) & (Self.window - 1)
        return seen[slot >> 6] & (1 << UInt64(slot & 63)) != 0
    }

    private mutating func clearAll() {
        for index in seen.indices { seen[index] = 0 }
    }
}
