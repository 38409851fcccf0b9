import Testing

@testable import MirrorDecoding

/// A deterministic generator (SplitMix64) so a failure reproduces from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct RandomInputTests {
    /// Random bytes, and valid mirror frames with random bytes flipped, never crash the decoder
    /// and never produce a frame that lies outside the input (debug builds also assert every
    /// read against the buffer).
    @Test func randomAndMutatedFramesStayInBounds() {
        var random = SplitMix64(state: 0x5EED)
        var configuration = MirrorDecoder.Configuration()
        configuration.rspanVLANs = VLANSet([999, 100])
        configuration.vxlanPorts = VXLANPorts([4789, 8472])
        let decoder = MirrorDecoder(configuration: configuration)
        let seeds: [[UInt8]] = [
            Frames.ipv4(protocol: 47, hex("100088be00000001 1000000300000000") + Frames.inner()),
            Frames.ipv4(protocol: 47, hex("100022eb00000007 2064a1550a0b0c0d123482ad 17ff00426553f100") + Frames.inner()),
            Frames.ipv4(protocol: 47, hex("b0006558 00000000 00000064 00000001") + Frames.inner()),
            Frames.ipv4(protocol: 17, hex("d43112b5 0000 0000 08000000 00007b00") + Frames.inner()),
            Frames.ipv6(next: 60, extensions: [47, 0, 4, 1, 4, 1, 1, 0], hex("100088be00000001 1000000300000000") + Frames.inner()),
            Array(Frames.inner().prefix(12)) + hex("810003e7") + Array(Frames.inner().dropFirst(12)),
        ]
        var decodedFrames = 0
        for round in 0..<200_000 {
            var bytes: [UInt8]
            if round % 4 == 0 {
                bytes = (0..<Int.random(in: 0..<200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            } else {
                bytes = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...6, using: &random) {
                    bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
                bytes.removeLast(Int.random(in: 0..<bytes.count, using: &random) / 4)
            }
            let wire = bytes.count + (round % 3 == 0 ? Int.random(in: 0..<100, using: &random) : 0)
            bytes.withUnsafeBytes { raw in
                if case .mirror(let frame) = decoder.decode(raw, wireLength: wire) {
                    decodedFrames += 1
                    #expect(frame.innerOffset >= 0)
                    #expect(frame.innerOffset + frame.innerCapturedLength + frame.removedLength <= raw.count)
                    #expect(frame.innerCapturedLength >= 14)
                    #expect(frame.innerWireLength >= frame.innerCapturedLength)
                }
            }
        }
        #expect(decodedFrames > 10_000)  // the mutations leave many frames valid
    }
}
