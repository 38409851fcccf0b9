import ArgumentParser
import CaptureSystem
import CollectorCore
import Logging

extension SpanCollector {
    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the pipeline over capture files (pcap or pcapng, plain or gzip/zstd, FIFOs, - for stdin) and write per-session files.",
            discussion: """
                Inputs are read in order; written records keep the input record's timestamp. \
                The summary goes to standard output (a table, or one JSON document with --json); \
                logs go to standard error. SIGINT/SIGTERM stop reading, finish every file and \
                print the summary. Exit status (every file finished in each case): 0 when \
                everything read was kept or counted as discarded; 2 when an input could not be \
                read; 3 when frames were dropped (dropped.queue or dropped.write); 130/143 when \
                stopped by SIGINT/SIGTERM. Settings may come from --config (the [capture] table \
                and metrics_listen are ignored); flags override it.
                """
        )

        @Argument(help: ArgumentHelp("Capture files to replay.", valueName: "input"))
        var inputs: [String]

        @OptionGroup var options: PipelineOptions

        func run() throws {
            // Before any thread exists: SIGINT/SIGTERM are taken by StopSignal's thread.
            ProcessSignals.block()
            LoggingSetup.bootstrap(level: options.verbose ? .debug : .info)
            let logger = Logger(label: "span-collector")
            let file = try options.loadConfigurationFile()
            let configuration = try options.makeConfiguration(file: file)
            var replay = CollectorCore.Replay(inputs: inputs, configuration: configuration, showProgress: true)
            let stop = try StopSignal()
            defer { stop.finish() }
            replay.stop = stop
            let summary: Summary
            var status: Int32 = 0
            do {
                summary = try replay.run(logger: logger)
            } catch .inputsFailed(let errors, let partial) {
                for error in errors { logger.error("\(error)") }
                summary = partial
                status = 2
            } catch {
                logger.error("\(error)")
                throw ExitCode(2)
            }
            print(options.json ? summary.jsonText() : summary.table(), terminator: options.json ? "\n" : "")
            // The most telling status: interrupted (128 + signal), then unreadable inputs (2),
            // then frames dropped (3).
            if let signal = stop.received { throw ExitCode(128 + signal) }
            if status == 0, summary.dropped.queue + summary.dropped.write > 0 { status = 3 }
            if status != 0 { throw ExitCode(status) }
        }
    }
}
