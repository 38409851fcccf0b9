import CPcap

#if canImport(Glibc)
import Glibc
#endif

/// Reads any capture file libpcap understands (pcapng above all) with nanosecond timestamps.
/// Used for what `ClassicPcapReader` does not handle.
public final class LibpcapFileReader {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    private let handle: OpaquePointer
    public let path: String

    public init(path: String) throws(Failure) {
        self.path = path
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard
            let handle = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errorBuffer)
        else {
            throw Failure(description: "\(path): " + String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        self.handle = handle
    }

    deinit { pcap_close(handle) }

    /// The link type of the capture as a LINKTYPE_* value. libpcap reports DLT_* values, which
    /// equal the LINKTYPE_* ones for what the collector reads, except raw IP (DLT 12 or 14).
    public var linkType: UInt32 {
        let dlt = pcap_datalink(handle)
        return dlt == DLT_RAW ? 101 : UInt32(bitPattern: dlt)
    }

    /// Calls `body` with each record's bytes, wire length and timestamp in nanoseconds, in order.
    /// Returns normally at the end of the file; throws on a read error (a cut file).
    public func forEachRecord(
        _ body: (UnsafeRawBufferPointer, _ wireLength: Int, _ timestampNanoseconds: UInt64) throws -> Void
    ) throws {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        while true {
            let status = pcap_next_ex(handle, &header, &data)
            if status == PCAP_ERROR_BREAK { return }
            guard status == 1, let header, let data else {
                throw Failure(description: "\(path): " + String(cString: pcap_geterr(handle)))
            }
            let captured = Int(header.pointee.caplen)
            let time = header.pointee.ts
            let nanoseconds = UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_usec)
            try body(UnsafeRawBufferPointer(start: data, count: captured), max(Int(header.pointee.len), captured), nanoseconds)
        }
    }
}
