// Little helpers that store integers at an offset of a raw destination. Encoders compute the
// exact size first (`recordLength`), the caller guarantees the room, so stores do not check.

extension UnsafeMutableRawPointer {
    @inlinable
    func store32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
    }

    @inlinable
    func store16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value, toByteOffset: offset, as: UInt16.self)
    }

    @inlinable
    func store64(_ value: UInt64, at offset: Int) {
        storeBytes(of: value, toByteOffset: offset, as: UInt64.self)
    }
}
