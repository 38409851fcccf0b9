import Logging
import PcapStorage

#if canImport(Glibc)
import Glibc
#endif

/// Turns storage events into log lines (storage itself takes no logger) and hands finished
/// files to the post-rotate hook.
struct StorageEventLogger: Sendable {
    let logger: Logger
    var hook: PostRotateHook? = nil

    func handle(_ event: StorageEvent) {
        switch event {
        case .writeFailed(let session, let error):
            logger.error("session cannot write; its frames count as dropped.write until a new file works",
                metadata: ["session": "\(session)", "error": "\(error)"])
        case .writeRecovered(let session):
            logger.notice("session writes again", metadata: ["session": "\(session)"])
        case .fileFinished(let session, let path, let records, _):
            logger.debug("file finished", metadata: ["session": "\(session)", "path": "\(path)", "records": "\(records)"])
            hook?.enqueue(path: path)
        case .fileRemoved(let path):
            logger.debug("retention removed file", metadata: ["path": "\(path)"])
        case .fileLost(let session, let path, let records, let error):
            logger.error(
                "file removed before it was published (output directory deleted?); its frames count as dropped.write, the next file recreates the directory",
                metadata: ["session": "\(session)", "path": "\(path)", "records": "\(records)", "error": "\(error)"])
        case .maintenanceFailed(let error):
            logger.error("file maintenance failed", metadata: ["error": "\(error)"])
        }
    }
}

/// Unbuffered writes to standard error, for progress lines.
enum StandardError {
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = Glibc.write(2, bytes.baseAddress, bytes.count) }
    }
}
