import ArgumentParser
import CaptureSystem
import CollectorCore
import Logging

extension SpanCollector {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Capture mirror traffic live and write per-session files.",
            discussion: """
                Listens on the interface of the default route unless --interface is given (needs \
                CAP_NET_RAW, e.g. root). SIGINT/SIGTERM stop capture, drain the queues, finish \
                every file and print the summary (a table, or one JSON document with --json); \
                SIGHUP finishes every file. Settings come from --config (default \
                /etc/span-collector/span-collector.toml when it exists); flags override it. A \
                status line goes to standard error periodically.
                """
        )

        static let defaultOutput = "/var/lib/span-collector"

        @Option(name: .long, help: ArgumentHelp("Interface to capture on (repeatable; default: the default route's).", valueName: "name"))
        var interface: [String] = []

        @Option(name: .long, help: ArgumentHelp("Capture threads (default: half the cores).", valueName: "n"))
        var workers: Int?

        @Option(name: .long, help: ArgumentHelp("Ring size per capture thread and interface (default 64M).", valueName: "size"))
        var ringSize: String?

        @Option(name: .long, help: ArgumentHelp("Ring block size, a power of two (default 256K).", valueName: "size"))
        var blockSize: String?

        @Option(name: .long, help: ArgumentHelp("Milliseconds the kernel may hold a partly filled block (default 64).", valueName: "ms"))
        var blockTimeout: Int?

        @Option(name: .long, help: ArgumentHelp("Writer threads (default 1).", valueName: "n"))
        var writerThreads: Int?

        @Option(name: .long, help: ArgumentHelp("Batch buffers queued for the writers before frames are dropped as dropped.queue (default 256).", valueName: "n"))
        var queueDepth: Int?

        @Option(name: .long, help: ArgumentHelp("A tcpdump expression that further restricts what is captured (ANDed with the mirror filter).", valueName: "expr"))
        var filter: String?

        @Option(name: .long, help: ArgumentHelp("Seconds between status lines on standard error; 0 for none (default 10).", valueName: "seconds"))
        var statusInterval: Int?

        @Option(name: .long, help: ArgumentHelp("Serve /metrics (Prometheus) and the status for `stats` here; off to disable (default 127.0.0.1:9477).", valueName: "host:port|off"))
        var metricsListen: String?

        @OptionGroup var options: PipelineOptions

        func run() throws {
            LoggingSetup.bootstrap(level: options.verbose ? .debug : .info)
            let logger = Logger(label: "span-collector")
            let file = try options.loadConfigurationFile(defaultPath: ConfigurationFile.defaultPath)
            if let file { logger.info("configuration file loaded", metadata: ["path": "\(file.path)"]) }
            for warning in file?.warningLines ?? [] { logger.warning("\(warning)") }
            let (live, problems) = captureOptions(file: file)
            let configuration = try options.makeConfiguration(
                file: file, defaultOutput: Self.defaultOutput, metricsListen: metricsListen, otherProblems: problems,
                serviceDefaults: true)

            let summary: Summary
            do {
                let capture = try LiveCapture(configuration: configuration, options: live, logger: logger)
                summary = try capture.run(reload: { [self] in
                    // The file again, with the same flags on top.
                    let file = try options.loadConfigurationFile(defaultPath: ConfigurationFile.defaultPath)
                    let (_, problems) = captureOptions(file: file)
                    return try options.makeConfiguration(
                        file: file, defaultOutput: Self.defaultOutput, metricsListen: metricsListen, otherProblems: problems,
                        serviceDefaults: true)
                })
            } catch {
                logger.error("\(error)")
                throw ExitCode(2)
            }
            print(options.json ? summary.jsonText() : summary.table(), terminator: options.json ? "\n" : "")
        }

        /// The capture settings: the file's `[capture]` (or the defaults), then the flags given.
        func captureOptions(file: LoadedConfiguration?) -> (LiveCapture.Options, [ConfigurationProblem]) {
            var live = file?.capture ?? LiveCapture.Options()
            var problems: [ConfigurationProblem] = []
            if !interface.isEmpty { live.interfaces = interface }
            if let workers { live.workers = workers }
            func size(_ text: String?, key: String) -> Int? {
                guard let text else { return nil }
                guard let value = ByteSize.parse(text), value > 0 else {
                    problems.append(.init(key: key, message: "'\(text)' is not a size (examples: 64M, 4M)"))
                    return nil
                }
                return value
            }
            let ring = size(ringSize, key: "--ring-size") ?? file?.ringSize ?? live.ring.ringSize
            if let message = NumericSettings.ringSize.problem(ring) { problems.append(.init(key: "--ring-size", message: message)) }
            if let block = size(blockSize, key: "--block-size") { live.ring.blockSize = block }
            if live.ring.blockSize > 0 { live.ring.blockCount = ring / live.ring.blockSize }
            if let blockTimeout { live.ring.retireTimeoutMilliseconds = blockTimeout }
            if let writerThreads { live.writerThreads = writerThreads }
            if let queueDepth { live.queueDepth = queueDepth }
            if let filter { live.filter = filter }
            if let statusInterval { live.statusIntervalSeconds = statusInterval }
            // The file's values were checked when it loaded: what is left comes from a flag.
            problems += LiveCapture.problems(live).map { ConfigurationProblem(key: "--" + $0.key, message: $0.message) }
            return (live, problems)
        }
    }
}
