import Logging
import PcapStorage

/// Start-up crash recovery of the output directory, shared by `run` and `replay`: `.part`
/// files a killed collector left are cut to their last whole record and renamed
/// (`Recovery.recoverPartFiles`), logged, and handed to the post-rotate hook like any
/// finished file.
enum PartFileRecovery {
    static func recover(in outputDirectory: String, logger: Logger, hook: PostRotateHook?) {
        for result in Recovery.recoverPartFiles(in: outputDirectory) {
            switch result.action {
            case .renamed(let path):
                logger.notice(
                    "recovered unfinished file",
                    metadata: ["path": "\(path)", "records": "\(result.recordsKept)", "bytes_cut": "\(result.bytesCut)"])
                hook?.enqueue(path: path)  // a finished file like any other
            case .removed:
                logger.notice("removed unfinished file without a whole record", metadata: ["path": "\(result.path)"])
            case .keptBecauseFinalNameExists(let path):
                logger.warning(
                    "unfinished file left alone: its final name exists", metadata: ["path": "\(result.path)", "existing": "\(path)"])
            case .skipped(let reason):
                logger.warning("unfinished file skipped: not ours to recover", metadata: ["path": "\(result.path)", "reason": "\(reason)"])
            case .failed(let error):
                logger.error("could not recover unfinished file", metadata: ["path": "\(result.path)", "error": "\(error)"])
            }
        }
    }
}
