// Unchecked big-endian loads over the captured bytes.
//
// Every decoder checks the length it needs *before* it reads, once per header, and then uses
// these helpers; the helpers themselves do not check, so the hot path pays for one comparison
// per header rather than one per field. A debug build still traps on a bad offset.

extension UnsafeRawBufferPointer {
    @inline(__always)
    func byte(at offset: Int) -> UInt8 {
        assert(offset >= 0 && offset < count)
        return load(fromByteOffset: offset, as: UInt8.self)
    }

    @inline(__always)
    func bigEndian16(at offset: Int) -> UInt16 {
        assert(offset >= 0 && offset + 2 <= count)
        return UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    func bigEndian32(at offset: Int) -> UInt32 {
        assert(offset >= 0 && offset + 4 <= count)
        return UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    func bigEndian64(at offset: Int) -> UInt64 {
        assert(offset >= 0 && offset + 8 <= count)
        return UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
