import ArgumentParser
import Logging
import PcapFormat

@main
struct SpanCollector: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "span-collector",
        abstract: "Receive ERSPAN, GRE-TEB, VXLAN and RSPAN mirror traffic and write per-session pcap files.",
        version: SpanCollectorVersion.string,
        subcommands: [Run.self, Replay.self, CheckConfig.self, Stats.self]
    )
}

/// Logs go to standard error so that `--json` output on standard output stays one document.
enum LoggingSetup {
    static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
