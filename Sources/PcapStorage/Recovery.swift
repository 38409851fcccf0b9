import CaptureSystem
import PcapFormat

#if canImport(Glibc)
import Glibc
#endif

/// What start-up recovery did with one leftover `.part` file.
public struct RecoveryResult: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Cut back to its last whole record and renamed to `to` (the name without `.part`).
        case renamed(to: String)
        /// Held no whole record (or no valid header) and was deleted: no empty files.
        case removed
        /// Left untouched because a file with its final name exists already (only possible
        /// when files were copied around by hand: numbering never reuses a name). An operator
        /// decides; the writer's numbering skips it either way.
        case keptBecauseFinalNameExists(String)
        /// A step failed; the file is left as it was (or cut, if only the rename failed).
        case failed(SystemError)
        /// Not a regular file owned by us (a symbolic link, a FIFO, another user's file):
        /// never opened, left as it is. The reason says what it is.
        case skipped(String)
    }

    /// The `.part` file found (for `.failed` from listing: the directory).
    public var path: String
    public var action: Action
    /// Packet records in the recovered file (pcap records, pcapng packet blocks).
    public var recordsKept: Int
    /// Bytes removed from the end (the whole file size when it was removed).
    public var bytesCut: Int

    public init(path: String, action: Action, recordsKept: Int, bytesCut: Int) {
        self.path = path
        self.action = action
        self.recordsKept = recordsKept
        self.bytesCut = bytesCut
    }
}

/// Crash recovery for the output directory, run once at start-up before `Storage` opens any
/// file: a writer that died (SIGKILL, power loss, OOM) leaves `<name>.pcap[ng].part` files that
/// are valid up to their last whole record (FileWriter writes whole buffers of whole records,
/// but a write can stop anywhere). Each is cut back to that record and renamed to its final
/// name, so consumers and retention see it like any finished file.
///
/// Only our own files are touched: `<dir>/<session>/<session>-<stamp>-<NNNNNN>.pcap[ng].part`
/// where `<session>` is the name of the directory it lies in (`FileNaming.sequence`).
/// Everything else (other names, finished files, the top level) is left alone.
public enum Recovery {
    /// The largest captured length a whole classic pcap record may have (libpcap's limit and
    /// the snapshot length our files announce).
    public static let maximumCapturedLength = Int(PcapFileHeader.snapshotLength)

    /// Recovers every leftover `.part` file in the session directories directly below
    /// `outputDirectory`. A missing output directory (first start) yields no results.
    /// Results are sorted by path.
    public static func recoverPartFiles(in outputDirectory: String) -> [RecoveryResult] {
        guard FileSystem.isDirectory(outputDirectory) else { return [] }
        var results: [RecoveryResult] = []
        let sessions: [String]
        do throws(SystemError) {
            sessions = try FileSystem.contents(ofDirectory: outputDirectory).sorted()
        } catch {
            return [RecoveryResult(path: outputDirectory, action: .failed(error), recordsKept: 0, bytesCut: 0)]
        }
        for session in sessions {
            let directory = outputDirectory + "/" + session
            // A session directory is a real directory: a symbolic link would lead elsewhere.
            guard FileSystem.linkStatus(directory)?.isDirectory == true else { continue }
            let names: [String]
            do throws(SystemError) {
                names = try FileSystem.contents(ofDirectory: directory).sorted()
            } catch {
                results.append(RecoveryResult(path: directory, action: .failed(error), recordsKept: 0, bytesCut: 0))
                continue
            }
            for name in names {
                guard let parsed = FileNaming.sequence(ofFileNamed: name, session: session), parsed.isPart else { continue }
                results.append(recover(partFile: directory + "/" + name))
            }
        }
        return results
    }

    /// Recovers one `.part` file (the caller has checked that its name is ours). Only a
    /// regular file owned by this process's user is opened, and never through a symbolic link:
    /// a `.part` link planted in the directory must not make recovery cut a file elsewhere.
    public static func recover(partFile path: String) -> RecoveryResult {
        let finalPath = String(path.dropLast(FileNaming.partSuffix.count))
        func skipped(_ reason: String) -> RecoveryResult {
            RecoveryResult(path: path, action: .skipped(reason), recordsKept: 0, bytesCut: 0)
        }
        // lstat first, so nothing but a regular file is ever opened (opening a FIFO or a device
        // can block or act); then the same checks on what was opened, which closes the race.
        guard let found = FileSystem.linkStatus(path) else { return skipped("gone") }
        if let reason = notOurs(found) { return skipped(reason) }
        let descriptor: FileDescriptor
        let scan: Scan
        do throws(SystemError) {
            descriptor = try FileSystem.openForUpdateNotFollowing(path)
            if let reason = notOurs(try FileSystem.status(of: descriptor, path: path)) { return skipped(reason) }
            scan = try self.scan(descriptor, path: path, format: finalPath.hasSuffix(".pcapng") ? .pcapng : .pcap)
        } catch where error.errno == ELOOP {
            return skipped("a symbolic link")
        } catch {
            return RecoveryResult(path: path, action: .failed(error), recordsKept: 0, bytesCut: 0)
        }
        let cut = scan.fileLength - scan.validLength
        if scan.records > 0, FileSystem.size(finalPath) != nil {
            return RecoveryResult(path: path, action: .keptBecauseFinalNameExists(finalPath), recordsKept: scan.records, bytesCut: 0)
        }
        do throws(SystemError) {
            guard scan.records > 0 else {
                try FileSystem.remove(path)
                return RecoveryResult(path: path, action: .removed, recordsKept: 0, bytesCut: scan.fileLength)
            }
            if cut > 0 { try FileSystem.truncate(descriptor, to: scan.validLength, path: path) }
            try descriptor.close()
            try FileSystem.rename(path, to: finalPath)
        } catch {
            return RecoveryResult(path: path, action: .failed(error), recordsKept: scan.records, bytesCut: 0)
        }
        return RecoveryResult(path: path, action: .renamed(to: finalPath), recordsKept: scan.records, bytesCut: cut)
    }

    struct Scan {
        var fileLength: Int
        /// Bytes up to the end of the last whole packet record (0 when there is none).
        var validLength: Int
        var records: Int
    }

    /// Why a file found with a `.part` name is not ours to recover, or nil when it is.
    static func notOurs(_ status: FileSystem.Status) -> String? {
        if !status.isRegularFile { return "not a regular file" }
        if status.owner != FileSystem.effectiveUserID { return "owned by user \(status.owner), not by us" }
        return nil
    }

    static func scan(_ descriptor: FileDescriptor, path: String, format: CaptureFileFormat) throws(SystemError) -> Scan {
        let mapped = try MappedFile(descriptor: descriptor, path: path)
        let bytes = mapped.bytes
        let (validLength, records) = format == .pcap ? scanClassic(bytes) : scanPcapNG(bytes)
        return Scan(fileLength: bytes.count, validLength: records > 0 ? validLength : 0, records: records)
    }

    /// The length of the header plus every whole record, and the record count. A record is
    /// whole when its 16-byte header and `caplen` data bytes are present and `caplen` is at
    /// most 262144. An all-zero record header also ends the data: a file system that lost the
    /// tail in a power cut may show it as a hole of zeros (the size was updated, not the data),
    /// and we never write a record with no time and no bytes.
    static func scanClassic(_ bytes: UnsafeRawBufferPointer) -> (length: Int, records: Int) {
        guard let reader = try? ClassicPcapReader(header: bytes) else { return (0, 0) }
        let swapped = reader.isSwapped
        var offset = PcapFileHeader.length
        var records = 0
        while bytes.count - offset >= PcapRecord.headerLength {
            let words = (0..<4).map { bytes.loadUnaligned(fromByteOffset: offset + 4 * $0, as: UInt32.self) }
            if words.allSatisfy({ $0 == 0 }) { break }
            let captured = Int(swapped ? words[2].byteSwapped : words[2])
            guard captured <= maximumCapturedLength, captured <= bytes.count - offset - PcapRecord.headerLength else { break }
            offset += PcapRecord.headerLength + captured
            records += 1
        }
        return (offset, records)
    }

    /// The length of the blocks up to the last whole one, and the number of packet blocks
    /// (Enhanced, Simple, obsolete Packet). The file must start with a whole Section Header
    /// Block; a block is whole when its total length is at least 12, a multiple of 4, present
    /// in the file and repeated at its end. A packet block that names an interface no Interface
    /// Description Block of its section declared, or whose data does not fit its block, ends
    /// the data as well: capinfos would reject the file.
    static func scanPcapNG(_ bytes: UnsafeRawBufferPointer) -> (length: Int, records: Int) {
        var offset = 0
        var swapped = false
        var interfaces = 0
        var records = 0
        var lastRecordEnd = 0
        func u32(_ at: Int) -> UInt32 {
            let value = bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)
            return swapped ? value.byteSwapped : value
        }
        func u16(_ at: Int) -> UInt16 {
            let value = bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)
            return swapped ? value.byteSwapped : value
        }
        while bytes.count - offset >= 12 {
            let type = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)  // palindromic for SHB
            if type == SectionHeaderBlock.type {
                // The byte-order magic decides how this section's numbers read.
                guard bytes.count - offset >= 28 else { break }
                let magic = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
                if magic == 0x1A2B_3C4D {
                    swapped = false
                } else if magic == 0x1A2B_3C4D.byteSwapped {
                    swapped = true
                } else {
                    break
                }
                interfaces = 0
            } else if offset == 0 {
                break  // not pcapng
            }
            let length = Int(u32(offset + 4))
            guard length >= 12, length % 4 == 0, length <= bytes.count - offset,
                Int(u32(offset + length - 4)) == length
            else { break }
            if type == SectionHeaderBlock.type, length < 28 { break }
            switch swapped ? type.byteSwapped : type {
            case InterfaceDescriptionBlock.type:
                interfaces += 1
            case EnhancedPacketBlock.type:
                guard length >= 32, Int(u32(offset + 8)) < interfaces,
                    Int(u32(offset + 20)) <= length - 32
                else { return (lastRecordEnd, records) }
                records += 1
                lastRecordEnd = offset + length
            case 3:  // Simple Packet Block: interface 0
                guard length >= 16, interfaces > 0 else { return (lastRecordEnd, records) }
                records += 1
                lastRecordEnd = offset + length
            case 2:  // Packet Block (obsolete)
                guard length >= 32, Int(u16(offset + 8)) < interfaces,
                    Int(u32(offset + 20)) <= length - 32
                else { return (lastRecordEnd, records) }
                records += 1
                lastRecordEnd = offset + length
            default:
                break
            }
            offset += length
        }
        // Keep whole non-packet blocks after the last packet too (an interface statistics
        // block written at close), but only when there is a packet at all.
        return (records > 0 ? offset : 0, records)
    }
}
