import ArgumentParser
import CollectorCore
import Logging

extension SpanCollector {
    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the pipeline over capture files (pcap or pcapng, plain or gzip/zstd, FIFOs, - for stdin) and write per-session files.",
            discussion: """
                Inputs are read in order; written records keep the input record's timestamp. \
                Exit status 0 after every file is finalized; the summary goes to standard output \
                (a table, or one JSON document with --json). Logs go to standard error. Settings \
                may come from --config (the [capture] table and metrics_listen are ignored); \
                flags override it.
                """
        )

        @Argument(help: ArgumentHelp("Capture files to replay.", valueName: "input"))
        var inputs: [String]

        @OptionGroup var options: PipelineOptions

        func run() throws {
            LoggingSetup.bootstrap(level: options.verbose ? .debug : .info)
            let logger = Logger(label: "span-collector")
            let file = try options.loadConfigurationFile()
            let configuration = try options.makeConfiguration(file: file)
            let replay = CollectorCore.Replay(inputs: inputs, configuration: configuration, showProgress: true)
            do {
                let summary = try replay.run(logger: logger)
                print(options.json ? summary.jsonText() : summary.table(), terminator: options.json ? "\n" : "")
            } catch .inputsFailed(let errors, let summary) {
                for error in errors { logger.error("\(error)") }
                print(options.json ? summary.jsonText() : summary.table(), terminator: options.json ? "\n" : "")
                throw ExitCode(2)
            } catch {
                logger.error("\(error)")
                throw ExitCode(2)
            }
        }
    }
}
