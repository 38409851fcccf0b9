import ArgumentParser
import CollectorCore
import Foundation
import MirrorDecoding
import PcapFormat

extension CaptureFileFormat: ExpressibleByArgument {}

/// The options `replay` and `run` share: where files go, how they rotate, what counts as a
/// mirror session. Every setting may also come from the configuration file (`--config`);
/// a flag that is given overrides the file, so the options with defaults are optional here and
/// the defaults live in `CollectorConfiguration`.
struct PipelineOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Configuration file (TOML); flags override it (run: default /etc/span-collector/span-collector.toml when present).",
            valueName: "path"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Output directory; one sub-directory per session.", valueName: "dir"))
    var output: String?

    @Option(name: .long, help: "Output file format: pcap (nanosecond) or pcapng.")
    var format: CaptureFileFormat?

    @Option(name: .long, help: ArgumentHelp("Rotate before a file would exceed this size (e.g. 100M, 1G; powers of 1024; 0: never). run: default 1G.", valueName: "size"))
    var rotateSize: String?

    @Option(name: .long, help: ArgumentHelp("Rotate files every N seconds of packet time, aligned to the clock (0: never). run: default 3600.", valueName: "seconds"))
    var rotateInterval: Int?

    @Option(name: .long, help: ArgumentHelp("Keep only the newest N finished files per session.", valueName: "n"))
    var keepFiles: Int?

    @Option(name: .long, help: ArgumentHelp("VLAN ID carrying RSPAN traffic (repeatable).", valueName: "vid"))
    var rspanVlan: [UInt16] = []

    @Option(name: .long, help: ArgumentHelp("Accept mirror traffic only from this prefix (repeatable, IPv4 or IPv6).", valueName: "cidr"))
    var allowExporter: [String] = []

    @Option(name: .long, help: ArgumentHelp("UDP destination port carrying VXLAN (repeatable; default 4789).", valueName: "port"))
    var vxlanPort: [UInt16] = []

    @Option(name: .long, help: ArgumentHelp("UDP destination port carrying VXLAN-GPE (repeatable; default 4790).", valueName: "port"))
    var vxlanGpePort: [UInt16] = []

    @Option(name: .long, help: ArgumentHelp("UDP destination port carrying Geneve (repeatable; default 6081).", valueName: "port"))
    var genevePort: [UInt16] = []

    @Option(name: .long, help: ArgumentHelp("Size of one session batch buffer (default 256K).", valueName: "size"))
    var bufferSize: String?

    @Option(name: .long, help: ArgumentHelp("Upper bound of all batch buffers together (default 256M).", valueName: "size"))
    var maxBufferMemory: String?

    @Option(name: .long, help: ArgumentHelp("Finished files may take at most this much in total; the oldest go first, across sessions.", valueName: "size"))
    var maxDiskUsage: String?

    @Option(name: .long, help: ArgumentHelp("Keep this much free on the output filesystem (e.g. 10G or 5%); the oldest finished files go first. run: default 10%.", valueName: "size|pct%"))
    var minFreeSpace: String?

    @Option(name: .long, help: ArgumentHelp("Run this command for every finished file, its path as the argument.", valueName: "cmd"))
    var postRotateCommand: String?

    @Option(name: .long, help: ArgumentHelp("At most N post-rotate commands at a time (default 2).", valueName: "n"))
    var postRotateConcurrency: Int?

    @Option(name: .long, help: ArgumentHelp("Decode ERSPAN from this exporter prefix as the given type whatever its flags say (repeatable), e.g. 198.51.100.7/32=I.", valueName: "cidr=I|II|III"))
    var forceErspanType: [String] = []

    @Option(name: .long, help: ArgumentHelp("Record times from ERSPAN III switch timestamps for this exporter prefix (repeatable): receive, relative, ptp or unix100us.", valueName: "cidr=mode"))
    var erspanTimestamps: [String] = []

    @Flag(name: .long, help: "Drop transport duplicates (same session, GRE sequence number and bytes); counted as discarded.duplicate.")
    var dropDuplicates = false

    @Option(name: .long, help: ArgumentHelp("Sessions per capture thread at a time (default 4096); a full table evicts the least recently active unnamed sessions (run: lowered to fit the open-file limit).", valueName: "n"))
    var maxSessions: Int?

    @Option(name: .long, help: ArgumentHelp("Finish a session's file after this many seconds without frames (default 300).", valueName: "seconds"))
    var idleTimeout: Int?

    @Option(name: .long, help: ArgumentHelp("Keep mirror traffic that matches no [[session]] of the configuration file (default true); false counts it as discarded.unknown_session.", valueName: "true|false"))
    var acceptUnknownSessions: Bool?

    @Flag(name: .long, help: "Print the summary as one JSON document on standard output.")
    var json = false

    @Flag(name: .shortAndLong, help: "Log more (debug level).")
    var verbose = false

    /// The configuration file: `--config`, else `defaultPath` when that exists, else none.
    func loadConfigurationFile(defaultPath: String? = nil) throws -> LoadedConfiguration? {
        let path: String
        if let config {
            path = config
        } else if let defaultPath, FileManager.default.fileExists(atPath: defaultPath) {
            path = defaultPath
        } else {
            return nil
        }
        do {
            return try ConfigurationFile.load(path: path)
        } catch {
            throw ConfigurationFileFailure(error: error)
        }
    }

    /// Builds the configuration: the file's settings (if any), then the flags given, reporting
    /// every problem at once with the flag it concerns. `metricsListen`, `otherProblems` and
    /// `serviceDefaults` (rotation and free space a service needs) are `run`'s.
    /// The entries of a repeatable `CIDR=value` flag; a text that does not parse is a problem
    /// named after the flag, with the form it should have.
    private static func entries<Entry>(
        _ texts: [String], flag: String, form: String, parse: (String) -> Entry?, problems: inout [ConfigurationProblem]
    ) -> [Entry] {
        texts.compactMap { text in
            guard let entry = parse(text) else {
                problems.append(.init(key: flag, message: "'\(text)' is not \(form)"))
                return nil
            }
            return entry
        }
    }

    func makeConfiguration(
        file: LoadedConfiguration? = nil, defaultOutput: String? = nil, metricsListen: String? = nil,
        otherProblems: [ConfigurationProblem] = [], serviceDefaults: Bool = false
    ) throws -> CollectorConfiguration {
        var problems: [ConfigurationProblem] = []
        let resolvedOutput = output ?? file?.outputDirectory ?? defaultOutput
        if resolvedOutput == nil { problems.append(.init(key: "--output", message: "is required")) }
        var configuration = file?.configuration ?? CollectorConfiguration(outputDirectory: "")
        configuration.outputDirectory = resolvedOutput ?? ""
        if let format { configuration.format = format }
        func size(_ text: String?, key: String) -> Int? {
            guard let text else { return nil }
            guard let value = ByteSize.parse(text) else {
                problems.append(.init(key: key, message: "'\(text)' is not a size (examples: 4096, 512K, 100M, 2G)"))
                return nil
            }
            return value
        }
        if let value = size(rotateSize, key: "--rotate-size") { configuration.rotateSize = value }
        if let value = size(bufferSize, key: "--buffer-size") { configuration.bufferSize = value }
        if let value = size(maxBufferMemory, key: "--max-buffer-memory") { configuration.maximumBufferMemory = value }
        if let value = size(maxDiskUsage, key: "--max-disk-usage") { configuration.maximumDiskUsage = value }
        if let rotateInterval { configuration.rotateIntervalSeconds = rotateInterval }
        if let keepFiles { configuration.keepFiles = keepFiles }
        if !rspanVlan.isEmpty { configuration.rspanVLANs = rspanVlan }
        if !vxlanPort.isEmpty { configuration.vxlanPorts = vxlanPort }
        if !vxlanGpePort.isEmpty { configuration.vxlanGPEPorts = vxlanGpePort }
        if !genevePort.isEmpty { configuration.genevePorts = genevePort }
        if !allowExporter.isEmpty {
            configuration.allowedExporters = []
            for text in allowExporter {
                if let prefix = IPPrefix(text) {
                    configuration.allowedExporters.append(prefix)
                } else {
                    problems.append(.init(key: "--allow-exporter", message: "'\(text)' is not an address or prefix (e.g. 198.51.100.0/24, 2001:db8::/32)"))
                }
            }
        }
        if let minFreeSpace {
            if let space = FreeSpace.parse(minFreeSpace) {
                configuration.minimumFreeSpace = space
            } else {
                problems.append(.init(key: "--min-free-space", message: "'\(minFreeSpace)' is not a size or a percentage below 100 (examples: 10G, 5%)"))
            }
        }
        if let postRotateCommand { configuration.postRotateCommand = postRotateCommand }
        if let postRotateConcurrency { configuration.postRotateConcurrency = postRotateConcurrency }
        if let maxSessions { configuration.maximumSessions = maxSessions }
        if dropDuplicates { configuration.dropDuplicates = true }
        if !erspanTimestamps.isEmpty {
            configuration.switchTimestamps.rules = Self.entries(
                erspanTimestamps, flag: "--erspan-timestamps", form: "CIDR=receive|relative|ptp|unix100us",
                parse: SwitchTimestampPolicy.parseEntry, problems: &problems)
        }
        if !forceErspanType.isEmpty {
            configuration.forcedERSPANTypes = Self.entries(
                forceErspanType, flag: "--force-erspan-type", form: "CIDR=I|II|III (e.g. 198.51.100.7/32=I)",
                parse: ClassifierOverrides.parseEntry, problems: &problems)
        }
        if let idleTimeout { configuration.idleTimeoutSeconds = idleTimeout }
        if let acceptUnknownSessions { configuration.acceptUnknownSessions = acceptUnknownSessions }
        if let metricsListen { configuration.metricsListen = metricsListen == "off" ? nil : metricsListen }
        if serviceDefaults { configuration.applyServiceDefaults() }

        // The file was valid on its own, so what is left comes from a flag (or a flag meeting a
        // file value); session problems name the file's key and line.
        problems += configuration.problems().filter { !(resolvedOutput == nil && $0.key == "output") }.map { problem in
            if problem.key.hasPrefix("session["), let file {
                return ConfigurationProblem(key: "\(file.location(of: problem.key)): \(problem.key)", message: problem.message)
            }
            return ConfigurationProblem(key: "--" + problem.key, message: problem.message)
        }
        problems += otherProblems
        guard problems.isEmpty else {
            throw ValidationError(problems.map(\.description).joined(separator: "\n"))
        }
        return configuration
    }
}

/// An invalid or unreadable configuration file: every problem, one per line, then exit 1
/// (without the usage text a flag mistake gets).
struct ConfigurationFileFailure: Error, CustomStringConvertible {
    var error: ConfigurationFileError

    var description: String {
        "invalid configuration file \(error.path):\n" + error.lines.joined(separator: "\n")
    }
}
