import ArgumentParser
import CollectorCore
import MirrorDecoding
import PcapFormat

extension CaptureFileFormat: ExpressibleByArgument {}

/// The options `replay` and `run` share: where files go, how they rotate, what counts as a
/// mirror session.
struct PipelineOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Output directory; one sub-directory per session.", valueName: "dir"))
    var output: String?

    @Option(name: .long, help: "Output file format: pcap (nanosecond) or pcapng.")
    var format: CaptureFileFormat = .pcap

    @Option(name: .long, help: ArgumentHelp("Rotate before a file would exceed this size (e.g. 100M, 1G; powers of 1024).", valueName: "size"))
    var rotateSize: String?

    @Option(name: .long, help: ArgumentHelp("Rotate files every N seconds of packet time, aligned to the clock.", valueName: "seconds"))
    var rotateInterval: Int?

    @Option(name: .long, help: ArgumentHelp("Keep only the newest N finished files per session.", valueName: "n"))
    var keepFiles: Int?

    @Option(name: .long, help: ArgumentHelp("VLAN ID carrying RSPAN traffic (repeatable).", valueName: "vid"))
    var rspanVlan: [UInt16] = []

    @Option(name: .long, help: ArgumentHelp("Accept mirror traffic only from this prefix (repeatable, IPv4 or IPv6).", valueName: "cidr"))
    var allowExporter: [String] = []

    @Option(name: .long, help: ArgumentHelp("UDP destination port carrying VXLAN (repeatable; default 4789).", valueName: "port"))
    var vxlanPort: [UInt16] = []

    @Option(name: .long, help: ArgumentHelp("Size of one session batch buffer (default 1M).", valueName: "size"))
    var bufferSize: String?

    @Option(name: .long, help: ArgumentHelp("Upper bound of all batch buffers together (default 256M).", valueName: "size"))
    var maxBufferMemory: String?

    @Flag(name: .long, help: "Print the summary as one JSON document on standard output.")
    var json = false

    @Flag(name: .shortAndLong, help: "Log more (debug level).")
    var verbose = false

    /// Builds the configuration, reporting every problem at once with the flag it concerns.
    func makeConfiguration(defaultOutput: String? = nil) throws -> CollectorConfiguration {
        var problems: [ConfigurationProblem] = []
        if output == nil && defaultOutput == nil { problems.append(.init(key: "--output", message: "is required")) }
        var configuration = CollectorConfiguration(outputDirectory: output ?? defaultOutput ?? "")
        configuration.format = format
        func size(_ text: String?, key: String) -> Int? {
            guard let text else { return nil }
            guard let value = ByteSize.parse(text) else {
                problems.append(.init(key: key, message: "'\(text)' is not a size (examples: 4096, 512K, 100M, 2G)"))
                return nil
            }
            return value
        }
        configuration.rotateSize = size(rotateSize, key: "--rotate-size")
        if let value = size(bufferSize, key: "--buffer-size") { configuration.bufferSize = value }
        if let value = size(maxBufferMemory, key: "--max-buffer-memory") { configuration.maximumBufferMemory = value }
        configuration.rotateIntervalSeconds = rotateInterval
        configuration.keepFiles = keepFiles
        configuration.rspanVLANs = rspanVlan
        if !vxlanPort.isEmpty { configuration.vxlanPorts = vxlanPort }
        for text in allowExporter {
            if let prefix = IPPrefix(text) {
                configuration.allowedExporters.append(prefix)
            } else {
                problems.append(.init(key: "--allow-exporter", message: "'\(text)' is not an address or prefix (e.g. 198.51.100.0/24, 2001:db8::/32)"))
            }
        }
        problems += configuration.problems().filter { !(output == nil && $0.key == "output") }
            .map { ConfigurationProblem(key: "--" + $0.key, message: $0.message) }
        guard problems.isEmpty else {
            throw ValidationError(problems.map(\.description).joined(separator: "\n"))
        }
        return configuration
    }
}
