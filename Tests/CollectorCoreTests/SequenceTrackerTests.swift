import Testing

@testable import CollectorCore

@Suite struct SequenceTrackerTests {
    private func track(_ numbers: [UInt32]) -> SequenceTracker {
        var tracker = SequenceTracker()
        for number in numbers { tracker.observe(number) }
        return tracker
    }

    @Test func thirtyTwoBitWrapIsInOrder() {
        let tracker = track([0xFFFF_FFFE, 0xFFFF_FFFF, 0, 1])
        #expect(tracker.lost == 0 && tracker.outOfOrder == 0 && tracker.duplicates == 0 && tracker.restarts == 0)
    }

    @Test func gapsAreLoss() {
        #expect(track([10, 11, 15, 16]).lost == 3)
        #expect(track([0xFFFF_FFFE, 2]).lost == 3)  // across the wrap
    }

    @Test func lateArrivalReconcilesLoss() {
        let tracker = track([10, 12, 11, 13])
        #expect(tracker.lost == 0 && tracker.outOfOrder == 1 && tracker.duplicates == 0)
    }

    @Test func repeatedNumbersAreDuplicates() {
        let tracker = track([5, 5])
        #expect(tracker.duplicates == 1 && tracker.lost == 0 && tracker.outOfOrder == 0)
        // A late arrival seen twice: once out of order, then a duplicate.
        let late = track([1, 3, 2, 2])
        #expect(late.outOfOrder == 1 && late.duplicates == 1 && late.lost == 0)
        // Old numbers remembered in a slot are forgotten when the window moves past them.
        let moved = track([0, UInt32(SequenceTracker.window), 1])
        #expect(moved.duplicates == 0 && moved.outOfOrder == 1)
    }

    @Test func smallBackwardJumpIsNotARestart() {
        // PROTOCOLS.md S05 under the contract: 1000002 back is below 2^24.
        let tracker = track([1_000_000, 1_000_001, 0, 1, 2])
        #expect(tracker.restarts == 0 && tracker.outOfOrder == 3 && tracker.lost == -3)
    }

    @Test func largeJumpsAreRestarts() {
        let backward = track([0x3000_0000, 0x3000_0001, 5, 6, 7])
        #expect(backward.restarts == 1 && backward.lost == 0 && backward.outOfOrder == 0)
        let forward = track([1, 2, 1 << 28 + 3, 1 << 28 + 4])
        #expect(forward.restarts == 1 && forward.lost == 0)
        let justBelow = track([1, 2, (1 << 28) + 1])
        #expect(justBelow.restarts == 0 && justBelow.lost == Int64(1 << 28) - 2)
    }
}
