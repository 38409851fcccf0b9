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
                SIGHUP finishes every file. A status line goes to standard error periodically.
                """
        )

        static let defaultOutput = "/var/lib/span-collector"

        @Option(name: .long, help: ArgumentHelp("Interface to capture on (repeatable; default: the default route's).", valueName: "name"))
        var interface: [String] = []

        @Option(name: .long, help: ArgumentHelp("Capture threads (default: half the cores).", valueName: "n"))
        var workers: Int = LiveCapture.defaultWorkerCount

        @Option(name: .long, help: ArgumentHelp("Ring size per capture thread and interface (default 64M).", valueName: "size"))
        var ringSize: String = "64M"

        @Option(name: .long, help: ArgumentHelp("Ring block size, a power of two (default 4M).", valueName: "size"))
        var blockSize: String = "4M"

        @Option(name: .long, help: ArgumentHelp("Milliseconds the kernel may hold a partly filled block (default 64).", valueName: "ms"))
        var blockTimeout: Int = 64

        @Option(name: .long, help: ArgumentHelp("Writer threads (default 1).", valueName: "n"))
        var writerThreads: Int = 1

        @Option(name: .long, help: ArgumentHelp("Batch buffers queued for the writers before frames are dropped as dropped.queue (default 64).", valueName: "n"))
        var queueDepth: Int = 64

        @Option(name: .long, help: ArgumentHelp("A tcpdump expression that further restricts what is captured (ANDed with the mirror filter).", valueName: "expr"))
        var filter: String?

        @Option(name: .long, help: ArgumentHelp("Seconds between status lines on standard error; 0 for none (default 10).", valueName: "seconds"))
        var statusInterval: Int = 10

        @OptionGroup var options: PipelineOptions

        func run() throws {
            LoggingSetup.bootstrap(level: options.verbose ? .debug : .info)
            let logger = Logger(label: "span-collector")
            let configuration = try options.makeConfiguration(defaultOutput: Self.defaultOutput)
            var live = LiveCapture.Options()
            live.interfaces = interface
            live.workers = workers
            var problems: [String] = []
            if let block = ByteSize.parse(blockSize), let ring = ByteSize.parse(ringSize), block > 0 {
                live.ring.blockSize = block
                live.ring.blockCount = ring / block
            } else {
                problems.append("--ring-size/--block-size: '\(ringSize)'/'\(blockSize)' are not sizes (examples: 64M, 4M)")
            }
            live.ring.retireTimeoutMilliseconds = blockTimeout
            if !(1...10_000).contains(blockTimeout) { problems.append("--block-timeout: must be 1-10000 ms") }
            live.writerThreads = writerThreads
            live.queueDepth = queueDepth
            live.filter = filter
            live.statusIntervalSeconds = max(0, statusInterval)
            guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "\n")) }

            let summary: Summary
            do {
                let capture = try LiveCapture(configuration: configuration, options: live, logger: logger)
                summary = try capture.run()
            } catch {
                logger.error("\(error)")
                throw ExitCode(2)
            }
            print(options.json ? summary.jsonText() : summary.table(), terminator: options.json ? "\n" : "")
        }
    }
}
