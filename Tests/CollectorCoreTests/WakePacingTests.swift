import Testing

@testable import CollectorCore

@Suite("Wake pacing")
struct WakePacingTests {
    @Test("the nap grows while wake-ups find few blocks, up to three quarters of the ring at 10 Gbit/s")
    func growsToTheCap() {
        // 64 MiB ring: three quarters of it at 1.25 GB/s is 40.3 ms.
        var pacing = WakePacing(blockSize: 256 << 10, blockCount: 256)
        #expect(pacing.targetBlocks == 16)
        #expect(pacing.maximumNanoseconds == 40_265_318)
        var naps: [UInt64] = []
        for _ in 0..<12 { naps.append(pacing.caughtUp(afterBlocks: 1)) }
        #expect(naps.prefix(4) == [250_000, 500_000, 1_000_000, 2_000_000])
        #expect(naps.last == pacing.maximumNanoseconds)
        #expect(naps == naps.sorted())
    }

    @Test("the nap halves when wake-ups find many blocks, and ends at zero")
    func shrinksUnderLoad() {
        var pacing = WakePacing(blockSize: 256 << 10, blockCount: 256)
        for _ in 0..<12 { _ = pacing.caughtUp(afterBlocks: 0) }
        let longest = pacing.napNanoseconds
        #expect(pacing.caughtUp(afterBlocks: 40) == longest / 2)
        // A wake-up inside the target band keeps the nap as it is.
        #expect(pacing.caughtUp(afterBlocks: 20) == longest / 2)
        for _ in 0..<12 { _ = pacing.caughtUp(afterBlocks: 200) }
        #expect(pacing.napNanoseconds == 0)
    }

    @Test("small rings get short naps, huge rings at most 50 ms")
    func capFollowsTheRing() {
        #expect(WakePacing(blockSize: 4096, blockCount: 2).maximumNanoseconds == WakePacing.minimumNap)
        #expect(WakePacing(blockSize: 1 << 20, blockCount: 4096).maximumNanoseconds == WakePacing.maximumNap)
        #expect(WakePacing(blockSize: 4096, blockCount: 2).targetBlocks == 2)
    }
}
